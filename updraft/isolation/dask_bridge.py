"""Dask from inside a try's process: the cluster the try runs on, without deadlocks.

With process isolation a try supervised by a Dask worker runs in a child process, which is
not the Dask worker. Task code written for Dask workers still works there:

- ``distributed.get_worker()`` returns a ``WorkerFacts``: the name, address, scheduler
  address, threads and resources of the Dask worker supervising the try (not the live
  ``Worker`` object, which stays in the worker's process);
- ``distributed.get_client()`` and ``distributed.worker_client()`` return a client that the
  try's process connects to the same cluster (made on first use, closed with the process).

While the try uses that client its supervisor *secedes* from the worker's thread pool, as
``worker_client()`` does in a worker: a try waiting on sub-tasks never holds a thread those
sub-tasks need. The supervisor rejoins the pool when the try ends.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("updraft.isolation")


@dataclass(frozen=True)
class WorkerFacts:
    """The Dask worker supervising this try, as seen from the try's process."""

    name: str
    address: str
    scheduler_address: str
    nthreads: int = 1
    resources: dict[str, float] = field(default_factory=dict)
    id: str = ""

    def log_event(self, topic: Any, msg: Any) -> None:
        """Accepted and dropped (``worker_client`` logs an event on its worker)."""


def worker_facts() -> dict[str, Any] | None:
    """Facts about the Dask worker of the calling thread (None outside a Dask worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    return {"name": str(worker.name), "address": worker.address,
            "scheduler_address": worker.scheduler.address, "nthreads": worker.state.nthreads,
            "resources": dict(worker.state.total_resources or {}), "id": str(worker.id)}


_client: list[Any] = []
_client_lock = threading.Lock()
_installed: list[bool] = []


def bridge_installed() -> bool:
    """True in a try's process supervised by a Dask worker (``install_in_child`` ran)."""
    return bool(_installed)


def preload_bridge() -> None:
    """Import what ``install_in_child`` needs (in the zygote, before it forks tries)."""
    try:
        import distributed  # noqa: F401
        import distributed.worker  # noqa: F401
        import distributed.worker_client  # noqa: F401
    except ImportError:
        pass


def install_in_child(facts: dict[str, Any], on_first_use) -> None:
    """Make ``get_worker``/``get_client``/``worker_client`` work in this try's process.

    ``on_first_use()`` is called when the try first connects to the cluster (the
    supervisor then secedes)."""
    import sys

    try:
        import distributed
        import distributed.worker
        import distributed.worker_client  # noqa: F401  (the module, not the function)
    except ImportError:
        return
    # ``distributed.worker_client`` is the function (the package re-exports it): the module
    # whose globals ``worker_client()`` reads is in sys.modules.
    worker_client_module = sys.modules["distributed.worker_client"]
    stand_in = WorkerFacts(**facts)

    def get_worker() -> WorkerFacts:
        return stand_in

    def get_client(address=None, timeout=None, resolve_address=True) -> Any:
        target = address or stand_in.scheduler_address
        if str(target).startswith("inproc://"):
            raise RuntimeError(
                f"the Dask cluster of worker {stand_in.name} runs in one process (in-process "
                f"transport, {target}): a try's own process cannot reach it. Run the cluster "
                "with worker processes or over TCP, or set [core] task_isolation = thread")
        with _client_lock:
            if not _client:
                on_first_use()
                _client.append(distributed.Client(target,
                                                  timeout=timeout or 30,
                                                  set_as_default=True,
                                                  name=f"updraft-try-{stand_in.name}"))
            client = _client[0]
        # The try's performance report starts at its first use of the cluster.
        from updraft.dask_support import note_cluster_use

        note_cluster_use(client)
        return client

    for module in (distributed, distributed.worker, worker_client_module):
        module.get_worker = get_worker
        module.get_client = get_client
    _installed.append(True)


def secede_here() -> bool:
    """Leave the Dask worker's thread pool for the rest of this task (the supervisor's
    thread, when its try waits on the cluster); False outside a Dask task thread."""
    try:
        from distributed.metrics import time
        from distributed.threadpoolexecutor import secede
        from distributed.worker import get_worker, thread_state
        from distributed.worker_state_machine import SecedeEvent

        worker = get_worker()
        start, key = thread_state.start_time, thread_state.key
    except (ImportError, ValueError, AttributeError):
        return False
    try:
        secede()
    except KeyError:  # already seceded
        return False
    worker.loop.add_callback(worker.handle_stimulus, SecedeEvent(
        key=key, compute_duration=time() - start, stimulus_id=f"updraft-secede-{time()}"))
    return True


def rejoin_here() -> None:
    """Take a thread of the pool again (blocks until one is free)."""
    from distributed.threadpoolexecutor import rejoin

    rejoin()


__all__ = ["WorkerFacts", "install_in_child", "preload_bridge", "rejoin_here", "secede_here",
           "worker_facts"]
