"""What the Dask executor ships to Dask workers: one module-level function per try.

It must stay importable on every worker (the ``executors`` package is installed with
Updraft) and cheap to import: Dask imports it by reference when it unpickles the task.
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):  # called outside a Dask worker (tests, debugging)
        return f"{socket.gethostname()}:{os.getpid()}"


def run_on_dask(request_json: dict[str, Any], store_url: str | None) -> dict[str, Any]:
    """Run one try with ``run_task_try`` inside a Dask worker; return its outcome and worker.

    ``store_url`` overrides the request's so every worker writes to the scheduler's store,
    whatever its own configuration says. Errors of the task runner itself (store
    unreachable, DAG file missing on this worker) propagate: Dask marks the future as erred
    and the executor reports an error event.
    """
    from executors.live_logs import run_with_live_logs
    from updraft.runtime import TryRequest, run_task_try

    data = dict(request_json)
    if store_url:
        data["store_url"] = store_url
    worker = _worker_name()
    request = TryRequest.from_json(data)
    outcome = run_with_live_logs(request, lambda on_line: run_task_try(
        request, node=worker, executor="dask", on_log_line=on_line))
    return {"outcome": outcome, "worker": worker}
