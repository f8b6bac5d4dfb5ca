"""The sequential executor: one try at a time, for debugging and for the simplest setups.

It is the local executor with a single slot: tries run in submission order, each in a
process of its own supervised from this process (``executors.local``). With
``[core] task_isolation = thread`` the try runs in the slot's thread instead, inside the
scheduler's process: a debugger attached to the scheduler then stops in task code, and a
task that crashes the interpreter takes the scheduler with it.
"""

from __future__ import annotations

from executors.local import LocalExecutor


class SequentialExecutor(LocalExecutor):
    """Runs tries one after the other."""

    name = "sequential"

    def __init__(self, parallelism: int | None = None, **options) -> None:
        # One slot, but the slot count tells the scheduler how much to queue ahead.
        super().__init__(parallelism=1 if parallelism is None else parallelism, **options)
        from updraft.isolation import configured_isolation

        self.isolation = configured_isolation()

    def submit(self, requests) -> None:
        """Queue the tries; the single slot runs them in order."""
        self._check_accepting()
        tokens = [self._accept(request) for request in requests]
        with self._ready:
            self._pending.extend(tokens)
            if not self._threads:
                import threading

                thread = threading.Thread(target=self._work, name="updraft-sequential",
                                          daemon=True)
                self._threads.append(thread)
                thread.start()
            self._ready.notify_all()


__all__ = ["SequentialExecutor"]
