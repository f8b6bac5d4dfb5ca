"""An executor registered as ``sample_recording``: the sequential executor, counting tries."""

from __future__ import annotations

from typing import ClassVar

from executors.sequential import SequentialExecutor


class RecordingExecutor(SequentialExecutor):
    """Runs tries one at a time and remembers the keys of those it was given."""

    name = "sample_recording"
    submitted: ClassVar[list] = []

    def submit(self, requests) -> None:
        requests = list(requests)
        type(self).submitted.extend((r.dag_id, r.task_id) for r in requests)
        super().submit(requests)
