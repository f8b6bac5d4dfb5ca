"""Dask-native tasks: the cluster a try runs on, from inside the try.

- ``cluster_client()``: a ``distributed.Client`` connected to the cluster the try runs on.
  With process isolation the try's process connects its own client
  (``updraft.isolation.dask_bridge``) and its supervisor secedes from the worker's thread
  pool meanwhile; with thread isolation the worker's client is used and the worker thread
  secedes itself. Either way a try that waits on sub-tasks never holds a thread they need.
  Outside a Dask worker (local executor, ``dag.test``) it connects to
  ``[dask] scheduler_address`` when that is set.
- ``LazyDaskClient``: the context's ``dask_client``; it connects on first use, so a task
  that never touches it costs nothing.
- ``@task.dask`` (``DaskDecoratedOperator``): a TaskFlow task connected to the cluster
  before its code runs; its ``dask_client`` (or ``client``) parameter gets the client, and
  ``.compute()`` in it runs on the cluster. Without a cluster (``dag.test()``, the local
  executor) it gets None and Dask computes in the try's process.
- ``finish_try_on_cluster``: at the end of a try that used the cluster, Dask's performance
  report (``[dask] performance_report``) is written next to the try's log
  (``attempt=<n>.dask-report.html``), where the task page links to it.

Importing this module imports no Dask.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from updraft.decorators import PythonDecoratedOperator

log = logging.getLogger("updraft.task")

_local = threading.local()
_external: list[Any] = []


class NoDaskCluster(RuntimeError):
    """The try runs without a Dask cluster to connect to."""


def _in_worker_thread() -> bool:
    try:
        from distributed.worker import thread_state

        return getattr(thread_state, "key", None) is not None
    except ImportError:
        return False


def _bridged() -> bool:
    """True in a try's process supervised by a Dask worker (process isolation)."""
    try:
        from updraft.isolation.dask_bridge import bridge_installed

        return bridge_installed()
    except ImportError:
        return False


def cluster_reachable() -> bool:
    """Whether this try can reach a Dask cluster (without connecting)."""
    if _bridged() or _in_worker_thread():
        return True
    from updraft.config import conf

    return bool(conf.get("dask", "scheduler_address"))


def cluster_client() -> Any:
    """The client of the cluster this try runs on (see the module docstring)."""
    import distributed

    if _bridged():
        client = distributed.get_client()  # the bridge's: the supervisor secedes
    elif _in_worker_thread():
        client = distributed.get_client()
        if getattr(_local, "seceded", None) != distributed.worker.thread_state.key:
            # Thread isolation: leave the pool like worker_client() does, for the rest of
            # this Dask task (the thread is replaced in the pool).
            distributed.secede()
            _local.seceded = distributed.worker.thread_state.key
    else:
        from updraft.config import conf

        address = conf.get("dask", "scheduler_address")
        if not address:
            raise NoDaskCluster(
                "this try runs without a Dask cluster (not on the Dask executor, and "
                "[dask] scheduler_address is not set): dask_client is not available")
        if not _external or _external[0].status not in ("running", "connecting"):
            _external[:] = [distributed.Client(address, set_as_default=False, timeout=30)]
        client = _external[0]
    note_cluster_use(client)
    return client


def note_cluster_use(client: Any) -> None:
    """Remember that the running try uses the cluster (for its performance report): the
    start time and the scheduler's monitor count, taken at first use."""
    from updraft.xcom_backends import current_scope

    scope = current_scope()
    if scope is None or scope.cluster_used:
        return
    scope.cluster_used = True
    from updraft.config import conf

    if not conf.getboolean("dask", "performance_report"):
        return
    try:
        start = time.time()
        # A lambda travels by value: the Dask scheduler needs no Updraft to run it.
        count = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.monitor.count)
        client.get_task_stream(start=0, stop=0)  # the task stream plugin must be there
        scope.report_path = f"{start}|{count}"
    except Exception:  # noqa: BLE001  (a report is an extra)
        log.debug("could not start the performance report", exc_info=True)


def report_path_for(dag_id: str, run_id: str, task_id: str, map_index: int,
                    try_number: int):
    """Where the performance report of a try lives: beside its log."""
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    log_path = try_log_path(conf.log_folder(), dag_id, run_id, task_id, map_index, try_number)
    return log_path.with_name(f"attempt={try_number}.dask-report.html")


def finish_try_on_cluster(scope: Any) -> None:
    """Write the performance report of a try that used the cluster (see the docstring)."""
    if not scope.cluster_used or not scope.report_path:
        return
    import distributed

    client = distributed.get_client() if (_bridged() or _in_worker_thread()) else \
        (_external[0] if _external else None)
    if client is None:
        return
    start, count = scope.report_path.split("|")
    code = f"# {scope.dag_id}.{scope.task_id} run {scope.run_id} try {scope.try_number}"
    html = client.sync(client.scheduler.performance_report, start=float(start),
                       last_count=int(count), code=code, mode=None)
    path = report_path_for(scope.dag_id, scope.run_id, scope.task_id, scope.map_index,
                           scope.try_number)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    log.info("Dask performance report of this try: %s", path.name)


class LazyDaskClient:
    """The context's ``dask_client``: connects on first use (``cluster_client()``)."""

    __slots__ = ("_client",)

    def __init__(self) -> None:
        self._client = None

    def get(self) -> Any:
        """The connected client."""
        if self._client is None:
            self._client = cluster_client()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return "<dask_client: connects to the try's Dask cluster on first use>" \
            if self._client is None else repr(self._client)

    def __deepcopy__(self, memo: dict) -> LazyDaskClient:
        return self


class DaskDecoratedOperator(PythonDecoratedOperator):
    """The operator behind ``@task.dask``: connected to the cluster before its code runs."""

    custom_operator_name = "@task.dask"

    def execute(self, context: dict) -> Any:
        try:
            client = cluster_client()
        except NoDaskCluster as exc:
            # dag.test(), the local executor: Dask's own schedulers in this process.
            log.warning("%s; @task.dask runs its Dask code in the try's process", exc)
            client = None
        lazy = context.get("dask_client")
        if isinstance(lazy, LazyDaskClient):
            lazy._client = client
        import inspect

        params = inspect.signature(self.python_callable).parameters
        if "client" in params and "client" not in self.op_kwargs:
            self.op_kwargs = {**self.op_kwargs, "client": client}
        return super().execute(context)


__all__ = ["DaskDecoratedOperator", "LazyDaskClient", "NoDaskCluster", "cluster_client",
           "cluster_reachable", "finish_try_on_cluster", "note_cluster_use",
           "report_path_for"]
