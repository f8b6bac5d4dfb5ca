"""The executor interface: how the scheduler hands queued tries to something that runs them.

An executor accepts :class:`~updraft.runtime.TryRequest` objects (tries the scheduler has
already moved to ``queued`` in the store), runs each with ``run_task_try`` somewhere, and
reports one :class:`ExecutorEvent` per accepted submission. The store stays the source of
truth: ``run_task_try`` records the outcome with a compare-and-set before the event exists,
so an event is only a hint that tells the scheduler *when* to look again.

The contract every implementation keeps (checked by ``tests/integration/test_executors.py``):

- Every accepted submission produces exactly one event, whatever happens: success, failure,
  refusal by the store, a dead worker, a cancel, or ``stop(wait=False)``.
- Events are queued in a thread-safe buffer; ``events()`` drains it without blocking, and the
  wakeup function set with ``set_wakeup`` is called (from any thread) after each event is
  queued, so the scheduler can evaluate downstream tasks at once instead of sleeping.
- ``submit``, ``events``, ``cancel``, ``slots_available``, ``running`` and ``queue_depth`` may
  be called from any thread; none of them waits for a try to run.

Reading an event (``ExecutorEvent``):

- ``error is None``: the try ran; ``outcome.state`` is what ``run_task_try`` recorded, or
  ``outcome`` is None when the executor does not fetch outcomes (Dask, by default: fetching
  costs a round trip per try and the store already has it). Read the store either way.
- ``error`` set and ``outcome.refused``: the store refused the claim or the outcome. The try
  is owned by another runner (a duplicate delivery, or Dask re-ran it after the worker that
  claimed it died) or was changed meanwhile. Do not fail the try on this alone: if the store
  still says ``running`` for that try number, apply zombie detection (a live owner keeps
  ``heartbeat_at`` fresh; a dead one stops, and the zombie threshold then fails it under the
  retry policy).
- ``error`` set and ``outcome is None``: the executor lost track of the submission (it could
  not be shipped, the cluster was lost, it was cancelled before it ran). If the store still
  says ``queued`` for that try and identity, it never reached a worker: that is not a try,
  and it is queued again without counting. A try that started is recorded by its
  supervisor; if the supervisor's worker died, ``lost_workers()`` says so (or the zombie
  check notices).

With process isolation a try's supervisor (``updraft.isolation``) records every outcome,
including a try whose process crashed or was stopped, so a lost submission never needs
the scheduler to fail a try that ran.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

from updraft.runtime import TryOutcome, TryRequest

log = logging.getLogger(__name__)

TryKey = tuple[str, str, str, int]
"""(dag_id, run_id, task_id, map_index): a task instance, whatever its try."""


def try_key(request: TryRequest) -> TryKey:
    """The task-instance key of a request."""
    return (request.dag_id, request.run_id, request.task_id, request.map_index)


@dataclass(frozen=True)
class ExecutorEvent:
    """One submission finished or was lost; see the module docstring for how to read it."""

    key: TryKey
    try_number: int
    outcome: TryOutcome | None
    error: str | None = None
    worker: str | None = None  # where it ran, when known (process id, Dask worker name)
    try_id: str | None = None  # the identity of the submitted try

    @property
    def lost(self) -> bool:
        """True when the scheduler must check the store (refused or lost try)."""
        return self.error is not None

    @property
    def refused(self) -> bool:
        """True when the store refused this runner: another runner owns or owned the try."""
        return self.outcome is not None and self.outcome.refused


class BaseExecutor:
    """Runs tries somewhere; subclasses implement start, submit, cancel, stop and health.

    The base class keeps the bookkeeping every executor shares: the in-flight submissions
    (each under a private token, so the same request submitted twice is two submissions),
    the event buffer and the wakeup. Subclasses call ``_accept`` when they take a request and
    ``_finish`` exactly once per token; ``_finish`` ignores a token already finished, which
    makes races between a cancel and a completion harmless.
    """

    name: str = "base"
    """Short name, as in ``[core] executor``; also written to ``task_instance.executor``."""

    def __init__(self, parallelism: int | None = None) -> None:
        if parallelism is None:
            from updraft.config import conf

            parallelism = conf.getint("core", "parallelism")
        if parallelism < 1:
            raise ValueError(f"parallelism must be at least 1, got {parallelism}")
        self.parallelism = parallelism
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._tokens = itertools.count(1)
        self._in_flight: dict[int, TryRequest] = {}
        self._events: deque[ExecutorEvent] = deque()
        self._wakeup: Callable[[], None] | None = None
        self._lost: list[tuple[str, str]] = []
        self._started = False
        self._stopping = False

    # -- the interface ---------------------------------------------------------------------

    def start(self) -> None:
        """Start workers or connect to the cluster. Blocks until ready to accept tries.

        Call once, before ``submit``. Raises if the backend cannot be reached.
        """
        self._started = True

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Accept tries the scheduler has queued in the store. Never waits for them to run.

        Every request is accepted (beyond ``slots_available()`` it waits inside the executor:
        see ``queue_depth``) and will produce exactly one event. Thread-safe. Raises
        RuntimeError before ``start`` or after ``stop``. A request that cannot be handed to
        the backend is reported as an error event, not raised.
        """
        raise NotImplementedError

    def events(self) -> list[ExecutorEvent]:
        """Return the events queued since the last call, oldest first. Never blocks.

        Thread-safe and atomic: each event is returned by exactly one call.
        """
        with self._lock:
            drained = list(self._events)
            self._events.clear()
        return drained

    def set_wakeup(self, fn: Callable[[], None] | None) -> None:
        """Have ``fn()`` called after each event is queued (None removes it).

        ``fn`` runs in whichever thread queued the event (a worker-monitor or Dask callback
        thread), so it must be quick and thread-safe: set an Event, or post to a loop with
        ``loop.call_soon_threadsafe``. Its exceptions are logged and ignored.
        """
        self._wakeup = fn

    def cancel(self, key: TryKey) -> bool:
        """Stop every in-flight submission of task instance ``key``; True if any was stopped.

        A cancelled submission produces an error event (``outcome`` None) at once. A try not
        yet started never starts (except in a Dask bundle that still carries other tries:
        see ``executors.dask``). What happens to a try already running depends on the
        executor (see its docstring); the store is left as it is: the scheduler, which asked
        for the cancel, decides the task instance's state. Thread-safe; may block for one
        round trip to the backend.
        """
        raise NotImplementedError

    def lost_workers(self) -> list[tuple[str, str]]:
        """Workers lost since the last call, as ``(worker node, what happened)``; never
        blocks. The scheduler fails their running tries at once (their ``worker`` column
        names the node). Executors whose slots live in this process lose none."""
        with self._lock:
            lost, self._lost = self._lost, []
        return lost

    def _worker_lost(self, worker: str, detail: str) -> None:
        """For subclasses: report a lost worker node (from any thread) and wake the loop."""
        with self._lock:
            self._lost.append((worker, detail))
        wakeup = self._wakeup
        if wakeup is not None:
            try:
                wakeup()
            except Exception:  # noqa: BLE001
                log.exception("executor wakeup function failed")

    def warm(self, dags: list[tuple[str, str]]) -> None:
        """Let the workers parse these DAGs, ``(fileloc, dag_id)`` pairs, ahead of their
        first tries. Best effort, never blocks; executors whose workers are short-lived
        processes ignore it."""

    def slots_available(self) -> int:
        """How many more tries may be submitted now: parallelism minus tries in flight.

        Never negative, never blocks. The scheduler should queue at most this many per loop.
        """
        with self._lock:
            return max(0, self.parallelism - len(self._in_flight))

    def running(self) -> set[TryKey]:
        """Keys of the submissions that have not produced their event yet (waiting or running).

        Never blocks. A snapshot: it may change as soon as it is returned.
        """
        with self._lock:
            return {try_key(request) for request in self._in_flight.values()}

    def queue_depth(self) -> int:
        """How many accepted tries wait for a free worker (not yet started). Never blocks.

        Exact for the sequential and local executors; an estimate for Dask, whose own
        scheduler does the waiting.
        """
        with self._lock:
            return max(0, len(self._in_flight) - self.parallelism)

    def join(self, timeout: float | None = None) -> bool:
        """Block until every accepted submission has produced its event; False on timeout.

        Does not drain ``events()``. For tests and for ``stop(wait=True)``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self, wait: bool = True) -> None:
        """Stop accepting tries and release workers, connections and threads.

        ``wait=True`` blocks until every accepted try has produced its event. ``wait=False``
        cancels what has not started and returns promptly (each cancelled try gets its error
        event). Idempotent.
        """
        raise NotImplementedError

    def health(self) -> dict[str, Any]:
        """A JSON-friendly summary for the health page: kind, workers, load, links.

        May block for one round trip to the backend (Dask); call it off the scheduling path.
        """
        with self._lock:
            in_flight = len(self._in_flight)
        return {"kind": self.name, "started": self._started, "stopping": self._stopping,
                "parallelism": self.parallelism, "in_flight": in_flight,
                "slots_available": max(0, self.parallelism - in_flight),
                "queue_depth": self.queue_depth()}

    # -- bookkeeping for subclasses --------------------------------------------------------

    def _check_accepting(self) -> None:
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.start() has not been called")
        if self._stopping:
            raise RuntimeError(f"{type(self).__name__} is stopping: it accepts no more tries")

    def _accept(self, request: TryRequest) -> int:
        """Register one submission; returns its token."""
        with self._lock:
            token = next(self._tokens)
            self._in_flight[token] = request
        return token

    def _request(self, token: int) -> TryRequest | None:
        with self._lock:
            return self._in_flight.get(token)

    def _tokens_for(self, key: TryKey) -> list[int]:
        with self._lock:
            return [token for token, request in self._in_flight.items()
                    if try_key(request) == key]

    def _finish(self, token: int, outcome: TryOutcome | None = None, error: str | None = None,
                worker: str | None = None) -> bool:
        """Queue the event of submission ``token`` (once); False if it was already finished.

        A refused outcome becomes an error event, so the scheduler checks the store.
        """
        if outcome is not None and outcome.refused and error is None:
            error = f"refused by the store: {outcome.error}"
        with self._lock:
            request = self._in_flight.pop(token, None)
            if request is None:
                return False
            self._events.append(ExecutorEvent(try_key(request), request.try_number, outcome,
                                              error, worker, request.try_id))
            if not self._in_flight:
                self._idle.notify_all()
        wakeup = self._wakeup
        if wakeup is not None:
            try:
                wakeup()
            except Exception:  # a faulty wakeup must not lose the event
                log.exception("executor wakeup function failed")
        return True

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop(wait=exc_info[0] is None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} parallelism={self.parallelism}>"
