"""What the Dask executor ships to Dask workers: the function each try runs, the DAG
warm-up, the stop requests and the worker plugin.

Each Dask task is an executor slot. With ``[core] task_isolation = process`` (the default)
the slot supervises the try in a process of its own, forked by this worker's zygote
(``updraft.isolation``); nothing the try does can take the worker, its heartbeat or the
other tries down with it. With ``thread`` the try runs in the Dask worker thread itself.

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

_supervisors: dict[str, Any] = {}
_supervisors_lock = threading.Lock()


def _worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # called outside a Dask worker (tests, debugging)
        return None


def _worker_name(worker: Any = None) -> str:
    worker = worker or _worker()
    if worker is None:
        return f"{socket.gethostname()}:{os.getpid()}"
    return str(worker.name)


def worker_supervisor(worker: Any = None):
    """This Dask worker's supervisor (and zygote), made on first use."""
    from updraft.isolation.supervisor import Supervisor

    worker = worker or _worker()
    ident = getattr(worker, "id", None) or f"process-{os.getpid()}"
    with _supervisors_lock:
        supervisor = _supervisors.get(ident)
        if supervisor is None:
            supervisor = _supervisors[ident] = Supervisor("dask", node=_worker_name(worker))
        return supervisor


def _close_supervisor(worker: Any) -> None:
    """The worker is closing: interrupt its tries (recorded ``up_for_retry`` without using
    a retry; their processes get SIGTERM and ``on_kill()``), give them the kill grace to
    end, then stop the zygote (which kills whatever is left)."""
    import time

    ident = getattr(worker, "id", None)
    with _supervisors_lock:
        supervisor = _supervisors.pop(ident, None)
    if supervisor is None:
        return
    if supervisor.stop_all("interrupted: its Dask worker closed (the worker was stopped or "
                           "lost its scheduler); it runs again without using one of its "
                           "retries"):
        deadline = time.monotonic() + supervisor.kill_grace + 2.0
        while supervisor.running() and time.monotonic() < deadline:
            time.sleep(0.05)
    supervisor.close()


def run_on_dask(request_json: dict[str, Any], store_url: str | None,
                isolation: str = "process", session: Any = None) -> dict[str, Any]:
    """Run one try in this Dask worker; return its outcome and worker.

    ``store_url`` overrides the request's so every worker writes to the scheduler's store,
    whatever its own configuration says. Errors of the task runner itself (the store gone
    for good, no process could be forked) propagate: Dask marks the future as erred and the
    executor reports an error event.
    """
    from executors.live_logs import run_with_live_logs
    from updraft.runtime import TryRequest

    data = dict(request_json)
    if store_url:
        data["store_url"] = store_url
    worker = _worker()
    name = _worker_name(worker)
    request = TryRequest.from_json(data)
    if request.fileloc.startswith("bundle://"):  # a pinned run's code, by hash (ADR 12)
        from updraft.bundles.cache import localize_request

        request = localize_request(request)
    if isolation == "thread":
        from updraft.runtime import run_task_try

        outcome = run_with_live_logs(request, lambda on_line: run_task_try(
            request, node=name, executor="dask", on_log_line=on_line))
    else:
        runner = session or worker_supervisor(worker)
        outcome = run_with_live_logs(request, lambda on_line: runner.run(
            request, node=name, on_log_line=on_line))
    return {"outcome": outcome, "worker": name}


def run_bundle_on_dask(requests_json: list[dict[str, Any]], store_url: str | None,
                       isolation: str = "process") -> list[dict[str, Any]]:
    """Run several tries (a bundle) in this worker thread, one after the other unless one
    holds up the rest (``executors.bundles``); return their results in order.

    With process isolation the tries a thread runs share one process while each leaves
    nothing behind (``Supervisor.session``): the fork is paid once per bundle, not per try.
    An error of the task runner on one try does not stop the others; the bundle then fails
    with the first error, once every try has run, and the executor reports it for each of
    its tries (the store already holds the outcomes of the ones that ran)."""
    from executors.bundles import run_bundle

    sessions: dict[int, Any] = {}
    supervisor = worker_supervisor() if isolation != "thread" else None

    def run_one(request_json: dict[str, Any]) -> dict[str, Any]:
        session = None
        if supervisor is not None:
            me = threading.get_ident()
            session = sessions.get(me)
            if session is None:
                from updraft.isolation.supervisor import Session

                session = sessions[me] = Session(supervisor)
        return run_on_dask(request_json, store_url, isolation, session)

    try:
        # A thread that takes over gets a try process of its own (a fresh one costs tens
        # of milliseconds of CPU to warm): let slow tries hold the rest a little longer.
        results, errors = run_bundle(requests_json, run_one,
                                     release_after=2.0 if supervisor is not None else 0.5)
    finally:
        for session in sessions.values():
            session.close()
    if errors:
        raise errors[0]
    return results


def noop() -> None:
    """The task that warms Dask's path from the client to a worker thread."""


def warm_dags(dags: list[tuple[str, str]], isolation: str = "process",
              store_url: str | None = None, dask_worker: Any = None) -> None:
    """Parse these ``(fileloc, dag_id)`` pairs ahead of their first tries: in the zygote
    (process isolation) or in a background thread of this worker (thread isolation). A
    ``bundle://`` fileloc is fetched into this machine's cache first. Runs via
    ``Client.run`` (which passes ``dask_worker``) on the worker's event loop, which it must
    not block: the work happens in a thread."""
    def localized() -> list[tuple[str, str]]:
        from updraft.bundles.cache import local_dag_refs

        return local_dag_refs(dags, store_url)

    if isolation != "thread":
        supervisor = worker_supervisor(dask_worker)
        threading.Thread(target=lambda: supervisor.warm(localized()),
                         name="updraft-warm-dags", daemon=True).start()
        return

    def parse():
        from updraft.task_execution import load_dag, settle_heap

        for fileloc, dag_id in localized():
            try:
                load_dag(fileloc, dag_id)
            except Exception:  # noqa: BLE001  (the try that needs it reports the error)
                log.debug("could not parse %s from %s ahead of time", dag_id, fileloc,
                          exc_info=True)
        settle_heap(min_interval=0)

    threading.Thread(target=parse, name="updraft-warm-dags", daemon=True).start()


async def stop_try(key: tuple[str, str, str, int], reason: str,
                   dask_worker: Any = None) -> bool:
    """Stop the try of task instance ``key`` if it runs on this worker (``Client.run``)."""
    with _supervisors_lock:
        supervisors = list(_supervisors.values())
    return any([supervisor.stop(tuple(key), reason) for supervisor in supervisors])


async def interrupt_all(dask_worker: Any = None) -> int:
    """Stop every try on this worker as an interruption (the executor shuts its cluster
    down): they are recorded ``up_for_retry`` without using a retry."""
    with _supervisors_lock:
        supervisors = list(_supervisors.values())
    return sum(supervisor.stop_all() for supervisor in supervisors)


class WarmWorker(WorkerPlugin):
    """Dask worker plugin: when a worker starts (or the plugin is registered), start its
    zygote and import the task runner, open the store and the live-log connection in the
    background, so the worker's first try does not pay for them. On teardown, stop the
    worker's tries and its zygote."""

    name = "updraft-warm-worker"

    def __init__(self, store_url: str | None, isolation: str = "process") -> None:
        self.store_url = store_url
        self.isolation = isolation

    def setup(self, worker: Any = None) -> None:
        self._worker = worker
        from updraft.runtime import apply_switch_interval

        apply_switch_interval()
        threading.Thread(target=self._warm, args=(worker,), name="updraft-warm-worker",
                         daemon=True).start()

    def teardown(self, worker: Any = None) -> None:
        _close_supervisor(worker)

    def _warm(self, worker: Any) -> None:
        try:
            from executors.live_logs import run_with_live_logs  # noqa: F401  (the import)
            from updraft.runtime import preload, warm_statements

            if self.isolation != "thread":
                worker_supervisor(worker).start()
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
