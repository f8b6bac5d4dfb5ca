"""What the Dask executor ships to Dask workers: the function each try runs, the DAG
warm-up and the worker warm-up plugin.

It must stay importable on every worker (the ``executors`` package is installed with
Updraft) and cheap to import: Dask imports it by reference when it unpickles the task.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

log = logging.getLogger(__name__)


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


def run_bundle_on_dask(requests_json: list[dict[str, Any]],
                       store_url: str | None) -> list[dict[str, Any]]:
    """Run several tries (a bundle) in this worker thread, one after the other unless one
    holds up the rest (``executors.bundles``); return their results in order. An error of
    the task runner on one try does not stop the others; the bundle then fails with the
    first error, once every try has run, and the executor reports it for each of its tries
    (the store already holds the outcomes of the ones that ran: the scheduler's check of a
    lost try leaves those alone)."""
    from executors.bundles import run_bundle

    results, errors = run_bundle(requests_json,
                                 lambda request_json: run_on_dask(request_json, store_url))
    if errors:
        raise errors[0]
    return results


def noop() -> None:
    """The task that warms Dask's path from the client to a worker thread."""


def warm_dags(dags: list[tuple[str, str]]) -> None:
    """Parse these ``(fileloc, dag_id)`` pairs in a background thread of this worker, so
    its first tries of them find the DAG parsed. Runs via ``Client.run`` on the worker's
    event loop, which it must not block: it returns at once."""

    def parse():
        from updraft.task_execution import load_dag, settle_heap

        for fileloc, dag_id in dags:
            try:
                load_dag(fileloc, dag_id)
            except Exception:  # noqa: BLE001  (the try that needs it reports the error)
                log.debug("could not parse %s from %s ahead of time", dag_id, fileloc,
                          exc_info=True)
        settle_heap(min_interval=0)

    threading.Thread(target=parse, name="updraft-warm-dags", daemon=True).start()


class WarmWorker(WorkerPlugin):
    """Dask worker plugin: when a worker starts (or the plugin is registered), import the
    task runner, open the store and the live-log connection in the background, so the
    worker's first try does not pay for them."""

    name = "updraft-warm-worker"

    def __init__(self, store_url: str | None) -> None:
        self.store_url = store_url

    def setup(self, worker: Any = None) -> None:
        threading.Thread(target=self._warm, name="updraft-warm-worker", daemon=True).start()

    def _warm(self) -> None:
        try:
            from executors.live_logs import run_with_live_logs  # noqa: F401  (the import)
            from updraft.runtime import preload, warm_statements

            preload()
            warm_statements(self.store_url)
            try:
                from bus.logs import process_publisher

                publisher = process_publisher()
                if publisher is not None:
                    publisher.bus  # noqa: B018  (starts the connection)
            except ImportError:
                pass
        except Exception:  # noqa: BLE001  (the first try does it again and reports)
            log.debug("warming the worker failed", exc_info=True)
