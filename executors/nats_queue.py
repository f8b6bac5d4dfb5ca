"""The NATS queue executor: tries go to a JetStream work queue that ``updraft worker``s drain.

``submit`` publishes each TryRequest as a ``TaskMessage`` on ``P.tasks.<queue>`` (one
work-queue stream per queue, see ``bus.work_queue``) with a ``Nats-Msg-Id`` made of the
try's key and try number (plus the time it was queued), so submitting the same try twice
puts one message in the queue. Whichever worker takes the message runs it with
``run_task_try`` and acks it once the outcome is in the store.

Outcomes come from the store, which is the truth: a poller thread reads the rows of the
tries in flight every ``poll_interval`` seconds, and at once when a worker's ``TryEnded``
hint arrives on ``P.worker.done.<dag_id>`` (the hint adds what the store does not keep: the
worker's name, whether its claim was refused). A try is over for the executor when its row
has left ``queued``/``scheduled``/``running`` or moved to a later try number. Each
submission then gets one event: the first submission of a try gets the outcome, any
duplicate gets a refused outcome ("the work queue kept one message"). If the store shows
that the try ended but no ``task_instance_try`` row recorded it (the row moved on, e.g. a
clear), the event is an error without outcome.

``cancel`` deletes the try's message from the stream (if no worker acked it yet) and reports
the submission cancelled; a worker already running it runs it to its end, and the store
records it only if it still expects it. ``stop(wait=False)`` does the same for every try in
flight. A queue that no worker serves keeps its tries waiting (they count in ``running()``).

``health()`` reports each queue's stream and consumer (messages waiting, delivered but not
acked, redeliveries) and the workers heard from on ``P.hb.*`` in the last 30 s.

Faults: while NATS is unreachable (and for a short backoff after a publish failed)
``slots_available()`` is 0, so the scheduler queues nothing it cannot send; a try whose
publish failed is reported lost, and the scheduler queues it again without counting it (it
never reached a worker; if the publish did land after all, the try's new identity makes
that message's claim be refused). A worker that stops heartbeating on ``P.hb.<node>`` for
three intervals is reported by ``lost_workers()``, so its running tries are failed within
seconds rather than at the zombie threshold.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from executors.base import BaseExecutor, TryKey, try_key
from updraft.runtime import TryOutcome, TryRequest
from updraft.state import IN_FLIGHT_STATES, UNCLAIMED_STATES, TaskInstanceState as TI

log = logging.getLogger(__name__)

WAITING_STATES = IN_FLIGHT_STATES
"""Row states in which the try may still be run (``scheduled``: the claim accepts it)."""

LATE_DELETE_AFTER = 5.0
"""Seconds after a try ended without a worker's hint before its message is deleted."""

WORKER_SEEN_FOR = 30.0
"""A worker heard from within this many seconds counts as alive in ``health()``."""


class NatsQueueExecutor(BaseExecutor):
    """Publishes tries to the JetStream work queue; ``updraft worker`` processes run them."""

    name = "nats_queue"

    def __init__(self, parallelism: int | None = None, *, servers: str | list[str] | None = None,
                 poll_interval: float = 0.2, publish_timeout: float = 10.0,
                 connect_timeout: float = 5.0) -> None:
        super().__init__(parallelism)
        self.servers = servers
        self.poll_interval = poll_interval
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self._bus: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._seqs: dict[int, tuple[str, int]] = {}  # token -> (stream, sequence)
        self._primary: dict[int, bool] = {}  # token -> first submission of its try here
        self._states: dict[int, str] = {}  # token -> last state read from the store
        self._hints: dict[tuple, Any] = {}  # (key, try) -> TryEnded
        self._workers: dict[str, tuple[float, dict]] = {}
        self._queued_at: dict[int, str | None] = {}  # token -> queued time in its message id
        self._seen_done: dict[tuple, float] = {}  # (key, try) -> when a worker said it ended
        self._late_deletes: list[tuple[float, tuple, tuple[str, int]]] = []
        self._poke = threading.Event()
        self._poller: threading.Thread | None = None
        self._closing = False
        self._default_store_url: str | None = None
        self._unavailable_until = 0.0
        self._publish_backoff = 0.5
        self._lost_reported: set[str] = set()
        from updraft.config import conf

        self.worker_lost_after = max(3.0, 3 * conf.getfloat("worker", "heartbeat_interval"))

    # -- interface -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect to NATS (raises BusUnavailable if unreachable) and start the poller."""
        if self._poller is not None:
            return
        from bus.connection import BusThread, BusUnavailable
        from updraft.config import conf

        self._default_store_url = conf.sql_alchemy_conn()
        self._bus = BusThread(self.servers, name="updraft-nats-executor")
        self._bus.on_connect(self._subscribe)
        if not self._bus.start(wait=self.connect_timeout) and \
                not self._bus.wait_connected(self.connect_timeout):
            error = self._bus.last_error or "not connected"
            self._bus.stop()
            raise BusUnavailable(f"the nats_queue executor cannot reach NATS at "
                                 f"{', '.join(self._bus.servers)}: {error}")
        self._js = self._bus.nc.jetstream()
        super().start()
        self._poller = threading.Thread(target=self._poll_loop, name="updraft-nats-poller",
                                        daemon=True)
        self._poller.start()

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Publish the tries (one round trip for the batch); never waits for them to run."""
        self._check_accepting()
        items = []
        with self._lock:
            waiting = {(try_key(r), r.try_number) for r in self._in_flight.values()}
        for request in requests:
            if request.store_url is None and self._default_store_url:
                request = TryRequest(**{**request.to_json(),
                                        "store_url": self._default_store_url})
            token = self._accept(request)
            ident = (try_key(request), request.try_number)
            with self._lock:
                self._primary[token] = ident not in waiting
                self._states[token] = "queued"
            waiting.add(ident)
            items.append((token, request))
        if not items:
            return
        queued_at = self._queued_times([request for _, request in items])
        with self._lock:
            for token, request in items:
                self._queued_at[token] = queued_at.get((try_key(request), request.try_number))
        try:
            acks = self._bus.call(self._publish(items, queued_at),
                                  timeout=self.publish_timeout + 5)
        except Exception as exc:  # noqa: BLE001  (reported per try: the scheduler retries)
            acks = [exc] * len(items)
        failed = 0
        for (token, request), ack in zip(items, acks):
            if isinstance(ack, BaseException):
                failed += 1
                self._finish(token, error=f"could not publish the try to NATS: "
                                          f"{type(ack).__name__}: {ack}")
                continue
            with self._lock:
                if token in self._in_flight:
                    self._seqs[token] = (ack.stream, ack.seq)
        if failed:
            log.warning("could not publish %d of %d tr%s to NATS (%s); they are queued again "
                        "after %.1f s", failed, len(items), "y" if len(items) == 1 else "ies",
                        next(a for a in acks if isinstance(a, BaseException)),
                        self._publish_backoff)
            self._unavailable_until = time.monotonic() + self._publish_backoff
            self._publish_backoff = min(self._publish_backoff * 2, 10.0)
        else:
            self._publish_backoff = 0.5
        self._poke.set()

    def slots_available(self) -> int:
        """0 while NATS is unreachable or a publish just failed; else as ``BaseExecutor``."""
        if self._bus is None or not self._bus.connected or \
                time.monotonic() < self._unavailable_until:
            return 0
        return super().slots_available()

    def cancel(self, key: TryKey) -> bool:
        """Delete the messages of ``key`` not yet acked; report its submissions cancelled."""
        tokens = self._tokens_for(key)
        with self._lock:
            seqs = {self._seqs[t] for t in tokens if t in self._seqs}
            running = any(self._states.get(t) == "running" for t in tokens)
        for stream, seq in seqs:
            self._delete_message(stream, seq)
        cancelled = False
        for token in tokens:
            cancelled |= self._finish_token(
                token, error="cancelled" + ("; a worker had started it: it runs to its end, "
                                           "and the store records it only if it still "
                                           "expects it" if running else " before a worker "
                                                                        "took it"))
        return cancelled

    def queue_depth(self) -> int:
        """Tries in flight that no worker has claimed yet (as of the last store poll)."""
        with self._lock:
            return sum(1 for token in self._in_flight
                       if self._states.get(token) in UNCLAIMED_STATES)

    def stop(self, wait: bool = True) -> None:
        """Wait for the tries in flight (or cancel them), then close the connection."""
        self._stopping = True
        if self._poller is None:
            return
        if wait:
            self.join()
        else:
            with self._lock:
                keys = {try_key(request) for request in self._in_flight.values()}
            for key in keys:
                self.cancel(key)
        self._closing = True
        self._poke.set()
        self._poller.join(10)
        self._poller = None
        self._bus.stop()

    def health(self) -> dict[str, Any]:
        """Adds each queue's stream/consumer figures and the workers seen (one round trip)."""
        info = super().health()
        now = time.monotonic()
        with self._lock:
            workers = [{"node_id": node, "seconds_ago": round(now - seen, 1), **details}
                       for node, (seen, details) in self._workers.items()
                       if now - seen <= WORKER_SEEN_FOR]
        info.update(workers=workers, queues={},
                    connected=bool(self._bus is not None and self._bus.connected))
        if self._bus is None or not self._bus.connected:
            return info
        try:
            info["queues"] = self._bus.call(self._queue_info(), timeout=10)
        except Exception as exc:  # noqa: BLE001  (the health page shows the problem)
            info["error"] = f"{type(exc).__name__}: {exc}"
        return info

    # -- NATS side (in the bus thread) -----------------------------------------------------

    async def _subscribe(self, nc: Any) -> None:
        from bus import subjects
        from bus.work_queue import done_subject

        await nc.subscribe(done_subject(), cb=self._on_done)
        await nc.subscribe(subjects.hb(), cb=self._on_heartbeat)

    async def _on_done(self, msg: Any) -> None:
        from bus.schemas import SchemaError, decode
        from bus.work_queue import TryEnded

        try:
            hint = decode(TryEnded, msg.data)
        except SchemaError as exc:
            log.debug("ignoring a bad TryEnded: %s", exc)
            return
        ident = ((hint.dag_id, hint.run_id, hint.task_id, hint.map_index), hint.try_number)
        with self._lock:
            self._seen_done[ident] = time.monotonic()
            if not any((try_key(r), r.try_number) == ident for r in self._in_flight.values()):
                return
            self._hints[ident] = hint
        self._poke.set()

    async def _on_heartbeat(self, msg: Any) -> None:
        from bus.schemas import Heartbeat, SchemaError, decode

        try:
            beat = decode(Heartbeat, msg.data)
        except SchemaError:
            return
        if beat.kind != "worker":
            return
        with self._lock:
            if beat.info.get("state") == "stopped":
                self._workers.pop(beat.node_id, None)
            else:
                self._lost_reported.discard(beat.node_id)
                self._workers[beat.node_id] = (time.monotonic(), {
                    "hostname": beat.hostname, "pid": beat.pid,
                    "queues": beat.info.get("queues"), "running": beat.info.get("running"),
                    "concurrency": beat.info.get("concurrency")})

    async def _publish(self, items: list[tuple[int, TryRequest]],
                       queued_at: dict[tuple, str]) -> list[Any]:
        from bus import subjects
        from bus.schemas import TaskMessage, encode
        from bus.work_queue import ensure_stream, message_id
        from updraft.store.models import utcnow

        for queue in {request.queue or "default" for _, request in items}:
            stream = subjects.tasks_stream(queue)
            if stream not in self._streams:
                await ensure_stream(self._js, queue)
                self._streams.add(stream)
        now = utcnow().isoformat()

        async def one(request: TryRequest):
            ident = (try_key(request), request.try_number)
            body = encode(TaskMessage(request=request.to_json(), enqueued_at=now))
            return await self._js.publish(
                subjects.tasks(request.queue or "default"), body,
                timeout=self.publish_timeout,
                headers={"Nats-Msg-Id": message_id(request, queued_at.get(ident))})

        results: list[Any] = []
        for start in range(0, len(items), 256):  # bounded bursts of async publishes
            chunk = items[start:start + 256]
            results.extend(await asyncio.gather(*(one(request) for _, request in chunk),
                                                return_exceptions=True))
        return results

    async def _delete(self, stream: str, seq: int) -> None:
        try:
            await self._js.delete_msg(stream, seq)
        except Exception as exc:  # noqa: BLE001  (already acked and gone: fine)
            log.debug("message %s/%d not deleted: %s", stream, seq, exc)

    def _delete_message(self, stream: str, seq: int) -> None:
        try:
            self._bus.call(self._delete(stream, seq), timeout=5)
        except Exception:
            log.debug("deleting message %s/%d failed", stream, seq, exc_info=True)

    async def _queue_info(self) -> dict[str, Any]:
        from bus import subjects

        queues: dict[str, Any] = {}
        names = {stream for stream in self._streams}
        for stream in sorted(names):
            entry: dict[str, Any] = {"stream": stream}
            try:
                sinfo = await self._js.stream_info(stream)
                entry["messages"] = sinfo.state.messages
                queue = sinfo.config.subjects[0].rsplit(".", 1)[-1]
                entry["queue"] = subjects.decode_token(queue)
                cinfo = await self._js.consumer_info(stream,
                                                     subjects.tasks_consumer(entry["queue"]))
                entry.update(pending=cinfo.num_pending, ack_pending=cinfo.num_ack_pending,
                             redelivered=cinfo.num_redelivered, waiting=cinfo.num_waiting,
                             ack_wait=cinfo.config.ack_wait,
                             max_deliver=cinfo.config.max_deliver)
            except Exception as exc:  # noqa: BLE001  (no consumer yet: no worker ever came)
                entry.setdefault("error", f"{type(exc).__name__}: {exc}")
            queues[entry.get("queue", stream)] = entry
        return queues

    # -- the store side (poller thread) ----------------------------------------------------

    def _queued_times(self, requests: list[TryRequest]) -> dict[tuple, str]:
        """When each try was queued (part of its message id); empty on any problem."""
        from sqlalchemy import select, tuple_

        from updraft.store.engine import session_scope
        from updraft.store.models import TaskInstanceModel as T

        found: dict[tuple, str] = {}
        by_url: dict[str | None, list[TryRequest]] = {}
        for request in requests:
            by_url.setdefault(request.store_url, []).append(request)
        try:
            for url, group in by_url.items():
                with session_scope(url) as session:
                    for start in range(0, len(group), 400):
                        chunk = group[start:start + 400]
                        rows = session.execute(select(
                            T.dag_id, T.run_id, T.task_id, T.map_index, T.try_number,
                            T.queued_dttm).where(tuple_(T.dag_id, T.run_id, T.task_id,
                                                        T.map_index).in_(
                            [try_key(r) for r in chunk]))).all()
                        for row in rows:
                            if row.queued_dttm is not None:
                                key = (row.dag_id, row.run_id, row.task_id, row.map_index)
                                found[(key, row.try_number)] = row.queued_dttm.strftime(
                                    "%Y%m%dT%H%M%S%f")
        except Exception:  # the bare key still makes a valid message id
            log.debug("could not read queued times", exc_info=True)
        return found

    def _poll_loop(self) -> None:
        while not self._closing:
            self._poke.wait(self.poll_interval)
            self._poke.clear()
            if self._closing:
                break
            try:
                self._poll_once()
                self._late_delete()
            except Exception:  # the store may be busy; next poll retries
                log.warning("nats_queue executor: reading the store failed", exc_info=True)
            self._check_workers()

    def _check_workers(self) -> None:
        """Report workers that stopped heartbeating (each once, until heard again)."""
        now = time.monotonic()
        with self._lock:
            silent = {node: now - heard for node, (heard, _info) in self._workers.items()
                      if now - heard > self.worker_lost_after}
            for node in silent:
                self._workers.pop(node, None)
        for node, quiet in silent.items():
            if node not in self._lost_reported:
                self._lost_reported.add(node)
                self._worker_lost(node, f"no heartbeat on NATS for {quiet:.1f} s")

    def _late_delete(self) -> None:
        """Delete the messages of tries that ended without a worker's hint (see _settle)."""
        now = time.monotonic()
        with self._lock:
            due = [item for item in self._late_deletes if item[0] <= now]
            if not due:
                return
            self._late_deletes = [item for item in self._late_deletes if item[0] > now]
            seqs = [seq for _, ident, seq in due if ident not in self._seen_done]
            self._seen_done = {ident: when for ident, when in self._seen_done.items()
                               if now - when < 60}
        if seqs:
            async def delete_all():
                await asyncio.gather(*(self._delete(stream, seq) for stream, seq in seqs))

            try:
                self._bus.call(delete_all(), timeout=10)
            except Exception:
                log.debug("deleting %d message(s) failed", len(seqs), exc_info=True)

    def _poll_once(self) -> None:
        from sqlalchemy import select, tuple_

        from updraft.store.engine import session_scope
        from updraft.store.models import TaskInstanceModel as T
        from updraft.store.models import TaskInstanceTry as Try

        with self._lock:
            flight = dict(self._in_flight)
        if not flight:
            return
        by_url: dict[str | None, dict[TryKey, list[int]]] = {}
        for token, request in flight.items():
            by_url.setdefault(request.store_url, {}).setdefault(try_key(request), []).append(
                token)
        for url, keys in by_url.items():
            rows: dict[TryKey, Any] = {}
            tries: dict[tuple, str] = {}
            key_list = list(keys)
            with session_scope(url) as session:
                for start in range(0, len(key_list), 400):
                    chunk = key_list[start:start + 400]
                    for row in session.execute(select(
                            T.dag_id, T.run_id, T.task_id, T.map_index, T.state,
                            T.try_number, T.queued_dttm).where(tuple_(T.dag_id, T.run_id, T.task_id,
                                                       T.map_index).in_(chunk))).all():
                        rows[(row.dag_id, row.run_id, row.task_id, row.map_index)] = row
                ended = [key for key in key_list if self._over(rows.get(key), flight, keys[key])]
                for start in range(0, len(ended), 400):
                    chunk = ended[start:start + 400]
                    for row in session.execute(select(
                            Try.dag_id, Try.run_id, Try.task_id, Try.map_index,
                            Try.try_number, Try.state).where(tuple_(
                            Try.dag_id, Try.run_id, Try.task_id, Try.map_index).in_(chunk))):
                        tries[((row.dag_id, row.run_id, row.task_id, row.map_index),
                               row.try_number)] = row.state
            for key in key_list:
                row = rows.get(key)
                for token in keys[key]:
                    self._settle(token, flight[token], row, tries)

    def _over(self, row: Any, flight: dict[int, TryRequest], tokens: list[int]) -> bool:
        if row is None:
            return True
        return any(not self._waiting(t, flight[t], row) for t in tokens)

    def _waiting(self, token: int, request: TryRequest, row: Any) -> bool:
        """Whether the store says the try of ``token`` may still run."""
        if row is None or row.try_number != request.try_number or \
                row.state not in WAITING_STATES:
            return False
        with self._lock:
            queued_at = self._queued_at.get(token)
        # Queued again since (a sensor's reschedule continues the same try): this
        # submission is over.
        return queued_at is None or row.queued_dttm is None or \
            row.queued_dttm.strftime("%Y%m%dT%H%M%S%f") == queued_at

    def _settle(self, token: int, request: TryRequest, row: Any,
                tries: dict[tuple, str]) -> None:
        """Finish ``token`` if the store shows its try is over; else note its state."""
        ident = (try_key(request), request.try_number)
        if self._waiting(token, request, row):
            with self._lock:
                self._states[token] = row.state
            return
        with self._lock:
            primary = self._primary.get(token, True)
            hint = self._hints.get(ident)
            seq = self._seqs.get(token)
        worker = hint.worker if hint is not None else None
        log_path = hint.log_path if hint is not None else self._log_path(request)
        if not primary:
            outcome = TryOutcome(state=None, try_number=request.try_number, refused=True,
                                 error="duplicate submission: the work queue kept one message "
                                       "for this try (Nats-Msg-Id)")
            self._finish_token(token, outcome, worker=worker)
            return
        if hint is None and seq is not None:
            # No worker said it acked it (the try may have been cleared, marked or failed
            # meanwhile, or the hint is late): delete it later unless a hint comes.
            with self._lock:
                self._late_deletes.append((time.monotonic() + LATE_DELETE_AFTER, ident, seq))
        if row is not None and row.try_number == request.try_number:
            recorded = tries.get(ident, row.state)
            if recorded in WAITING_STATES:  # queued again within the same try
                recorded = str(TI.UP_FOR_RESCHEDULE)
        else:
            recorded = tries.get(ident)
        if recorded is None:
            where = "gone" if row is None else f"{row.state}, try {row.try_number}"
            self._finish_token(token, error=f"the try ended without being recorded (the task "
                                            f"instance is now {where})", worker=worker)
            return
        try:
            state: TI | None = TI(recorded)
        except ValueError:
            state = None
        outcome = TryOutcome(state=state, try_number=request.try_number,
                             error=hint.error if hint is not None and not hint.refused else None,
                             log_path=log_path,
                             duration=hint.duration if hint is not None else None)
        self._finish_token(token, outcome, worker=worker)

    def _finish_token(self, token: int, outcome: TryOutcome | None = None,
                      error: str | None = None, worker: str | None = None) -> bool:
        with self._lock:
            request = self._in_flight.get(token)
            self._seqs.pop(token, None)
            self._primary.pop(token, None)
            self._states.pop(token, None)
            self._queued_at.pop(token, None)
            if request is not None:
                ident = (try_key(request), request.try_number)
                if not any(t != token and (try_key(r), r.try_number) == ident
                           for t, r in self._in_flight.items()):
                    self._hints.pop(ident, None)
        return self._finish(token, outcome, error, worker=worker)

    @staticmethod
    def _log_path(request: TryRequest) -> str:
        from updraft.config import conf
        from updraft.tasklog import try_log_path

        return str(try_log_path(conf.log_folder(), request.dag_id, request.run_id,
                                request.task_id, request.map_index, request.try_number))
