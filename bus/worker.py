"""``updraft worker``: runs the tries the NATS queue executor puts on the JetStream work queue.

A worker serves one or more queues. For each it binds the durable pull consumer that all the
workers of that queue share (so each message goes to one worker at a time), and fetches only
as many messages as it has free slots (``concurrency``), so a message it holds is a message
it runs. Each try runs with ``run_task_try`` in a thread pool; while it runs, the worker
sends ``in_progress()`` every ``in_progress_interval`` (default ``ack_wait / 3``) so a long
task is not redelivered, and it acks only after ``run_task_try`` returned: the outcome is in
the store before the message leaves the queue. It then publishes a ``TryEnded`` hint so the
executor looks at the store at once. Each line of the try's log is published live
(``bus.logs``).

Redelivery rule (a message comes back after ``ack_wait`` when its worker died or lost NATS).
The store decides, by the try's row (same try number):

- the try is over (another state, or a later try number): ack, nothing to do;
- ``queued``: nobody claimed it: run it, unless this is the last delivery allowed
  (``num_delivered >= max_deliver``): then fail it (compare-and-set from ``queued``, retry
  policy applies) with "the task was delivered N times and no worker finished it", since a
  worker dying on this delivery would leave it queued with nobody to fail it;
- ``running`` with a heartbeat older than ``[scheduler] zombie_threshold``: the worker that
  claimed it died: fail it now (compare-and-set on ``running`` and the stale heartbeat) so
  the scheduler retries it, exactly as its zombie check would later; ack;
- ``running`` with a fresh heartbeat: its runner may be alive (it lost NATS, not the store):
  nak with a delay of the time left until the heartbeat would be stale, so the message comes
  back then and is judged again; on the last delivery, ack and leave it to the scheduler's
  zombie check, which fails it if the heartbeat stops.

Both failures are compare-and-sets, so a scheduler zombie check racing with a worker fails
the try once. A redelivered message whose try another worker runs or finished is refused by
the ``run_task_try`` claim anyway; it is acked.

Each try runs in a process of its own (``[core] task_isolation = process``, the default):
the slot thread supervises it (``updraft.isolation``), so a try that crashes, leaks or hangs
fails alone, with the cause in its log, and the worker goes on.

SIGTERM (or ``stop()``): stop fetching, let running tries finish for up to
``shutdown_grace`` seconds, then stop the rest as interruptions (recorded ``up_for_retry``
without using a retry, so they run again elsewhere), ack them and exit: well within ten
seconds. With thread isolation, tries still running after the grace are left to the
redelivery rule above. The worker's liveness is published on ``P.hb.<node>`` and kept in
the ``node`` table (kind ``worker``) every ``heartbeat_interval``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bus import subjects
from bus.schemas import Heartbeat, SchemaError, TaskMessage, decode, encode
from bus.work_queue import TryEnded, done_subject, ensure_consumer
from updraft.state import IN_FLIGHT_STATES, UNCLAIMED_STATES

log = logging.getLogger("updraft.worker")

_parse_lock = threading.Lock()

MAX_FETCH = 64
"""At most this many messages per fetch (never more than the free slots)."""


# -- store: failing a try nobody will finish (scheduler-independent) ----------------------

def fail_undelivered_try(request: Any, *, reason: str, from_states: tuple[str, ...],
                         stale_before: datetime | None = None, node: str | None = None,
                         now: datetime | None = None) -> str | None:
    """End a lost try (``updraft.store.lost_tries``), compare-and-set on its state (and on
    ``heartbeat_at < stale_before`` if given); returns the new state or None."""
    from updraft.store.dags import read_dag
    from updraft.store.engine import session_scope
    from updraft.store.lost_tries import fail_lost_try
    from updraft.store.models import utcnow

    now = now or utcnow()
    with session_scope(request.store_url) as session:
        dag = read_dag(session, request.dag_id)
        task = dag.task_dict.get(request.task_id) if dag is not None else None
        state = fail_lost_try(session, dag_id=request.dag_id, run_id=request.run_id,
                              task_id=request.task_id, map_index=request.map_index,
                              try_number=request.try_number, reason=reason, task=task,
                              now=now, node=node, from_states=from_states,
                              stale_before=stale_before, executor="nats_queue")
    return str(state) if state is not None else None


def _try_row(request: Any):
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope(request.store_url) as session:
        return session.execute(select(
            TaskInstanceModel.state, TaskInstanceModel.try_number,
            TaskInstanceModel.heartbeat_at, TaskInstanceModel.hostname).where(
            TaskInstanceModel.dag_id == request.dag_id,
            TaskInstanceModel.run_id == request.run_id,
            TaskInstanceModel.task_id == request.task_id,
            TaskInstanceModel.map_index == request.map_index)).first()


# -- the worker ------------------------------------------------------------------------------

@dataclass
class Verdict:
    """What to do with a delivery once its thread is done."""

    action: str  # "ack" or "nak"
    delay: float | None = None
    ended: TryEnded | None = None
    note: str = ""


class _Slots:
    """Free task slots, shared by the fetch loops of every queue."""

    def __init__(self, size: int) -> None:
        self.free = size
        self._changed = asyncio.Condition()

    async def take(self, at_most: int) -> int:
        async with self._changed:
            await self._changed.wait_for(lambda: self.free > 0)
            taken = min(self.free, at_most)
            self.free -= taken
            return taken

    async def give(self, count: int) -> None:
        if count <= 0:
            return
        async with self._changed:
            self.free += count
            self._changed.notify_all()


class _LoopPublisher:
    """A thread-safe ``publish`` onto the worker's own NATS connection (for live logs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, nc: Any) -> None:
        self._loop = loop
        self._nc = nc

    @property
    def connected(self) -> bool:
        return self._nc.is_connected

    def publish(self, subject: str, data: bytes, headers: dict | None = None) -> None:
        try:
            self._loop.call_soon_threadsafe(self._send, subject, data)
        except RuntimeError:  # the loop is closed: the worker is exiting
            pass

    def _send(self, subject: str, data: bytes) -> None:
        task = self._loop.create_task(self._nc.publish(subject, data))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def flush(self, timeout: float = 2.0) -> None:
        asyncio.run_coroutine_threadsafe(self._nc.flush(timeout), self._loop).result(timeout + 1)


class Worker:
    """Pulls tries from the work queues and runs them; see the module docstring."""

    def __init__(self, queues: list[str] | str | None = None, concurrency: int | None = None,
                 *, servers: str | list[str] | None = None, node_id: str | None = None,
                 ack_wait: float | None = None, max_deliver: int | None = None,
                 in_progress_interval: float | None = None,
                 heartbeat_interval: float | None = None,
                 shutdown_grace: float | None = None,
                 zombie_threshold: float | None = None) -> None:
        from updraft.config import conf

        def pick(value, section, key, kind):
            return kind(conf.get(section, key)) if value is None else kind(value)

        if queues is None:
            queues = conf.get("worker", "queues")
        if isinstance(queues, str):
            queues = [q.strip() for q in queues.split(",") if q.strip()]
        if not queues:
            raise ValueError("a worker needs at least one queue")
        self.queues = list(dict.fromkeys(queues))
        self.concurrency = pick(concurrency, "worker", "concurrency", int)
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        self.servers = servers
        self.ack_wait = pick(ack_wait, "worker", "ack_wait", float)
        self.max_deliver = pick(max_deliver, "worker", "max_deliver", int)
        interval = pick(in_progress_interval, "worker", "in_progress_interval", float)
        self.in_progress_interval = interval if interval > 0 else self.ack_wait / 3
        self.heartbeat_interval = pick(heartbeat_interval, "worker", "heartbeat_interval", float)
        self.shutdown_grace = pick(shutdown_grace, "worker", "shutdown_grace", float)
        self.zombie_threshold = pick(zombie_threshold, "scheduler", "zombie_threshold", float)
        self.node_id = node_id or (f"worker-{socket.gethostname()}-{os.getpid()}-"
                                   f"{uuid.uuid4().hex[:6]}")
        self.started_at = datetime.now(UTC)
        self.stats = {"received": 0, "ran": 0, "refused": 0, "failed_lost": 0,
                      "redelivered": 0, "naked": 0}
        self.abandoned = 0
        self._running: dict[int, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._io_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._log_publisher = None
        self._stop_requested = False
        from updraft.isolation import configured_isolation

        self.isolation = configured_isolation()
        self._supervisor = None
        from updraft.store.outage import OutageReporter

        self._store_outage = OutageReporter(f"worker {self.node_id}", log)

    # -- control -----------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until ``stop()`` (or SIGTERM via the CLI); returns tries abandoned at exit."""
        from updraft.listeners import notify_before_stopping, notify_starting
        from updraft.runtime import apply_switch_interval

        apply_switch_interval()
        notify_starting(self)
        try:
            asyncio.run(self.serve())
        finally:
            notify_before_stopping(self)
        return self.abandoned

    def stop(self) -> None:
        """Stop fetching and finish the running tries (thread-safe, idempotent)."""
        self._stop_requested = True
        loop, event = self._loop, self._stop
        if loop is not None and event is not None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:
                pass

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the consumers are bound and fetching."""
        return self._ready.wait(timeout)

    # -- the loop ----------------------------------------------------------------------------

    async def serve(self) -> None:
        """Connect, bind a consumer per queue, fetch and run until stopped."""
        from bus.connection import connect
        from bus.logs import LogPublisher

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        nc = await connect(self.servers, name=self.node_id)
        js = nc.jetstream()
        self._nc = nc
        self._log_publisher = LogPublisher(_LoopPublisher(self._loop, nc))
        self._pool = concurrent.futures.ThreadPoolExecutor(self.concurrency,
                                                           thread_name_prefix="updraft-try")
        self._io_pool = concurrent.futures.ThreadPoolExecutor(1,
                                                              thread_name_prefix="updraft-hb")
        if self.isolation == "process":
            from updraft.isolation.supervisor import Supervisor

            self._supervisor = Supervisor("nats_queue", node=self.node_id)
            self._supervisor.start()
        slots = _Slots(self.concurrency)
        subscriptions = {}
        for queue in self.queues:
            durable = await ensure_consumer(js, queue, self.ack_wait, self.max_deliver)
            subscriptions[queue] = await js.pull_subscribe_bind(
                durable=durable, stream=subjects.tasks_stream(queue))
        log.info("Worker %s serving queue(s) %s with %d slot(s) (ack_wait %gs, max_deliver %d)",
                 self.node_id, ", ".join(self.queues), self.concurrency, self.ack_wait,
                 self.max_deliver)
        handlers: set[asyncio.Task] = set()
        fetchers = [asyncio.create_task(self._fetch_loop(queue, sub, slots, handlers))
                    for queue, sub in subscriptions.items()]
        beats = asyncio.create_task(self._heartbeat_loop())
        self._ready.set()
        if self._stop_requested:
            self._stop.set()
        try:
            await self._stop.wait()
        finally:
            log.info("Worker %s stopping: %d tr%s running", self.node_id, len(self._running),
                     "y" if len(self._running) == 1 else "ies")
            for task in fetchers:
                task.cancel()
            await asyncio.gather(*fetchers, return_exceptions=True)
            if handlers:
                _, pending = await asyncio.wait(set(handlers), timeout=self.shutdown_grace)
                if pending and self._supervisor is not None:
                    stopped = self._supervisor.stop_all()
                    log.info("Worker %s: interrupting %d tr%s still running (they run again "
                             "without using a retry)", self.node_id, stopped,
                             "y" if stopped == 1 else "ies")
                    _, pending = await asyncio.wait(
                        pending, timeout=self._supervisor.kill_grace + 1)
                self.abandoned = len(pending)
                if pending:
                    log.warning("Worker %s: %d tr%s still running after %gs; leaving them to "
                                "redelivery and zombie detection", self.node_id, len(pending),
                                "y" if len(pending) == 1 else "ies", self.shutdown_grace)
            beats.cancel()
            await asyncio.gather(beats, return_exceptions=True)
            await self._beat(state="stopped")
            try:
                await nc.flush(2)
                await nc.close()
            except Exception:  # noqa: BLE001, S110
                pass
            self._io_pool.shutdown(wait=False)
            self._pool.shutdown(wait=False, cancel_futures=True)
            if self._supervisor is not None:
                self._supervisor.close()

    async def _fetch_loop(self, queue: str, sub: Any, slots: _Slots,
                          handlers: set[asyncio.Task]) -> None:
        import nats.errors

        # With several queues, short polls keep one queue from holding every free slot.
        timeout = 1.0 if len(self.queues) == 1 else 0.25
        share = max(1, self.concurrency // len(self.queues)) if len(self.queues) > 1 \
            else MAX_FETCH
        while True:
            taken = await slots.take(min(MAX_FETCH, share))
            messages: list = []
            try:
                messages = await sub.fetch(taken, timeout=timeout)
            except (TimeoutError, nats.errors.TimeoutError):
                pass
            except asyncio.CancelledError:
                await slots.give(taken)
                raise
            except Exception as exc:  # noqa: BLE001  (NATS away: try again shortly)
                log.warning("fetching from queue %s failed: %s", queue, exc)
                await asyncio.sleep(1.0)
            await slots.give(taken - len(messages))
            for msg in messages:
                task = asyncio.create_task(self._handle(queue, msg, slots))
                handlers.add(task)
                task.add_done_callback(handlers.discard)

    async def _handle(self, queue: str, msg: Any, slots: _Slots) -> None:
        self.stats["received"] += 1
        try:
            try:
                request = decode(TaskMessage, msg.data).try_request()
            except (SchemaError, TypeError) as exc:
                log.error("Dropping a malformed message on %s: %s", msg.subject, exc)
                await msg.term()
                return
            delivered = msg.metadata.num_delivered if msg.metadata else 1
            ticker = asyncio.create_task(self._keep_in_progress(msg))
            token = id(ticker)
            self._running[token] = request.label
            try:
                verdict = await self._loop.run_in_executor(self._pool, self._process, request,
                                                           delivered)
            except Exception:  # store unreachable...: let it come back
                log.exception("running %s failed in the worker; it will be redelivered",
                              request.label)
                verdict = Verdict("nak", delay=min(5.0, self.ack_wait))
            finally:
                ticker.cancel()
                self._running.pop(token, None)
            if verdict.note:
                log.info("%s (delivery %d): %s", request.label, delivered, verdict.note)
            try:
                if verdict.action == "ack":
                    await msg.ack()
                else:
                    self.stats["naked"] += 1
                    await msg.nak(delay=verdict.delay)
            except Exception as exc:  # noqa: BLE001  (redelivered; the store refuses it then)
                log.warning("could not %s %s: %s", verdict.action, request.label, exc)
            if verdict.ended is not None:
                try:
                    await self._nc.publish(done_subject(request.dag_id), encode(verdict.ended))
                except Exception:  # the executor polls the store anyway
                    log.debug("could not publish TryEnded", exc_info=True)
        finally:
            await slots.give(1)

    async def _keep_in_progress(self, msg: Any) -> None:
        while True:
            await asyncio.sleep(self.in_progress_interval)
            try:
                await msg.in_progress()
            except Exception as exc:  # noqa: BLE001  (NATS away: the redelivery rule copes)
                log.debug("in_progress failed: %s", exc)

    # -- in a pool thread ------------------------------------------------------------------

    def _ended(self, request: Any, state: str | None, *, refused: bool = False,
               error: str | None = None, log_path: str | None = None,
               duration: float | None = None) -> TryEnded:
        return TryEnded(dag_id=request.dag_id, run_id=request.run_id, task_id=request.task_id,
                        map_index=request.map_index, try_number=request.try_number,
                        state=state, refused=refused, error=error, worker=self.node_id,
                        log_path=log_path, duration=duration)

    def _judge_redelivery(self, request: Any, delivered: int) -> Verdict | None:
        """Apply the redelivery rule; None means: run the try."""
        from updraft.store.models import utcnow

        self.stats["redelivered"] += 1
        row = _try_row(request)
        if row is None or row.try_number != request.try_number or \
                row.state not in IN_FLIGHT_STATES:
            state = row.state if row is not None else "gone"
            return Verdict("ack", note=f"redelivered, but the try is over ({state})")
        last = delivered >= self.max_deliver
        now = utcnow()
        if row.state in UNCLAIMED_STATES:
            if not last:
                return None
            reason = (f"the task was delivered {delivered} times and no worker finished it "
                      f"(max_deliver {self.max_deliver}); last delivery to {self.node_id}")
            state = fail_undelivered_try(request, reason=reason, node=self.node_id, now=now,
                                         from_states=UNCLAIMED_STATES)
            self.stats["failed_lost"] += state is not None
            return Verdict("ack", ended=self._ended(request, state, error=reason),
                           note=f"failed ({state}): {reason}" if state else "")
        stale_before = now - timedelta(seconds=self.zombie_threshold)
        beat = row.heartbeat_at
        if beat is not None and beat.tzinfo is None:
            beat = beat.replace(tzinfo=UTC)
        if beat is None or beat < stale_before:
            since = beat.isoformat() if beat is not None else "never"
            reason = (f"the worker running it died: the task was redelivered (delivery "
                      f"{delivered}) and the try on {row.hostname} has not heartbeated since "
                      f"{since} (zombie threshold {self.zombie_threshold:g}s)")
            state = fail_undelivered_try(request, reason=reason, node=self.node_id, now=now,
                                         from_states=("running",), stale_before=stale_before)
            self.stats["failed_lost"] += state is not None
            return Verdict("ack", ended=self._ended(request, state, error=reason),
                           note=f"failed ({state}): {reason}" if state else "")
        if last:
            return Verdict("ack", note="redelivered while its runner still heartbeats; left to "
                                       "the scheduler's zombie check")
        delay = max(0.5, (beat - stale_before).total_seconds() + 0.5)
        return Verdict("nak", delay=delay,
                       note=f"runner still heartbeats; judged again in {delay:.1f}s")

    def _process(self, request: Any, delivered: int) -> Verdict:
        """Judge a redelivery, or run the try; runs in a pool thread."""
        from updraft.bundles.cache import localize_request
        from updraft.runtime import run_task_try
        from updraft.task_execution import load_dag

        request = localize_request(request)  # a pinned run's code, by hash (ADR 12)
        if delivered > 1:
            verdict = self._judge_redelivery(request, delivered)
            if verdict is not None:
                return verdict
        dag = None
        if self._supervisor is None:
            try:
                # DagBag parsing is not thread-safe (DagContext is process-global): parse
                # one file at a time; run_task_try then finds the DAG in its cache.
                with _parse_lock:
                    dag = load_dag(request.fileloc, request.dag_id)
            except Exception:  # noqa: BLE001  (run_task_try parses again, records the error)
                dag = None
        stream = None
        try:
            stream = self._log_publisher.for_try(request)
        except Exception:  # live logs are best effort
            log.debug("live logs unavailable for %s", request.label, exc_info=True)
        try:
            if self._supervisor is not None:
                outcome = self._supervisor.run(request, node=self.node_id, on_log_line=stream)
            else:
                outcome = run_task_try(request, dag, node=self.node_id, executor="nats_queue",
                                       on_log_line=stream)
        finally:
            if stream is not None:
                stream.close()
        if outcome.refused:
            self.stats["refused"] += 1
        else:
            self.stats["ran"] += 1
        state = str(outcome.state) if outcome.state is not None else None
        return Verdict("ack", ended=self._ended(
            request, state, refused=outcome.refused, error=outcome.error,
            log_path=outcome.log_path, duration=outcome.duration))

    # -- heartbeats ----------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        import time

        last_stored = 0.0
        while True:
            store = time.monotonic() - last_stored >= max(5.0, self.heartbeat_interval)
            if store:
                last_stored = time.monotonic()
            await self._beat(store=store)
            await asyncio.sleep(self.heartbeat_interval)

    def _info(self) -> dict[str, Any]:
        return {"queues": self.queues, "concurrency": self.concurrency,
                "running": len(self._running), **self.stats}

    async def _beat(self, state: str = "running", store: bool = True) -> None:
        info = self._info()
        body = Heartbeat(node_id=self.node_id, kind="worker",
                         timestamp=datetime.now(UTC).isoformat(),
                         hostname=socket.gethostname(), pid=os.getpid(),
                         info={**info, "state": state})
        try:
            await self._nc.publish(subjects.hb(self.node_id), encode(body))
        except Exception:
            log.debug("heartbeat publish failed", exc_info=True)
        if not store:
            return
        try:
            await self._loop.run_in_executor(self._io_pool, self._store_heartbeat, state, info)
        except Exception as exc:  # a missed beat is retried next interval
            from updraft.store.outage import is_store_unavailable

            if is_store_unavailable(exc):
                self._store_outage.failed(exc)
            else:
                log.warning("worker heartbeat to the store failed", exc_info=True)
        else:
            self._store_outage.succeeded()

    def _store_heartbeat(self, state: str, info: dict[str, Any]) -> None:
        from updraft.store.engine import session_scope
        from updraft.store.nodes import record_node

        with session_scope() as session:
            record_node(session, self.node_id, "worker", state, info)


def wait_for_stop_signals(worker: Worker) -> None:
    """Install SIGTERM/SIGINT handlers that stop ``worker`` (a second signal exits at once)."""
    import signal

    received = []

    def _handler(signum, _frame):
        if received:
            log.warning("Second signal: exiting without waiting for running tries")
            os._exit(128 + signum)
        received.append(signum)
        log.info("Signal %d: stop fetching, finish running tries (grace %gs)", signum,
                 worker.shutdown_grace)
        worker.stop()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)


__all__ = ["Verdict", "Worker", "fail_undelivered_try", "wait_for_stop_signals"]
