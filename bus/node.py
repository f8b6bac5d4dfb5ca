"""The scheduler's side of the bus: commands, durable outside triggers, events, heartbeats.

``SchedulerBus(scheduler).start()`` attaches itself as ``scheduler.bus`` and, once NATS is
reachable (in the background: the scheduler never waits for NATS):

- serves ``P.cmd.<verb>`` in the queue group ``schedulers`` (several schedulers share the
  load). Each request is checked against its schema, applied with the store commands in one
  transaction, and answered ``{"v":1,"ok":true,"result":{...}}`` or
  ``{"v":1,"ok":false,"error":"<precise>","code":"not_found|bad_request|conflict|forbidden"}``;
- consumes the JetStream stream of ``P.trigger.>`` through the durable pull consumer
  ``schedulers``. A message starts a run; it is acked only after the run is committed. Its
  ``Nats-Msg-Id`` is written to ``trigger_dedup`` in the run's transaction, so a redelivery
  (crash between commit and ack, or a re-publish after JetStream's duplicate window) starts no
  second run. A bad message is terminated and a ``TriggerRejected`` is published on
  ``P.trigger.rejected``. Store trouble naks the message, to be retried;
- consumes ``P.asset.>`` and the subjects of asset watchers the same way (``bus.assets``):
  each message records an asset event and wakes the scheduler;
- publishes run and task instance state changes and heartbeats; while NATS is away they wait
  in the BusThread buffer and go out in order when it is back.

The DB work of a command or trigger runs in a worker thread so the bus loop stays free.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from datetime import datetime
from typing import Any, Self

from bus import schemas, subjects
from bus.connection import BusThread

log = logging.getLogger("updraft.bus")

#: How long JetStream drops a re-published Nats-Msg-Id by itself; trigger_dedup covers later.
DUPLICATE_WINDOW = 120.0
#: A trigger is redelivered if not acked within this time (a scheduler died mid-way).
TRIGGER_ACK_WAIT = 30.0


class _Refused(Exception):
    """A command or trigger the store refused: ``code`` and a precise message."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def error_code(exc: BaseException) -> str:
    """The CommandReply code of a store error."""
    from updraft.exceptions import (
        DagRunAlreadyExists,
        UpdraftBadRequest,
        UpdraftConflict,
        UpdraftNotFoundException,
    )

    if isinstance(exc, (DagRunAlreadyExists, UpdraftConflict)):
        return "conflict"
    if isinstance(exc, UpdraftNotFoundException):
        return "not_found"
    if isinstance(exc, PermissionError) or getattr(exc, "status_code", None) == 403:
        return "forbidden"
    if isinstance(exc, (UpdraftBadRequest, ValueError)) or \
            getattr(exc, "status_code", None) == 400:
        return "bad_request"
    return "internal"


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda v: v.isoformat()
                                 if hasattr(v, "isoformat") else str(v)))


def _date(value: str | None, what: str) -> datetime | None:
    from updraft.exceptions import UpdraftBadRequest
    from updraft.schedules import coerce_datetime

    try:
        return coerce_datetime(value)
    except ValueError as exc:
        raise UpdraftBadRequest(f"{what}: {exc}") from None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# --- the commands (sync; each runs in one transaction) ----------------------------------

def apply_command(verb: str, msg: schemas.Message, store_url: str | None,
                  owner: str = "bus") -> tuple[dict, list[tuple[str, str]]]:
    """Apply a command to the store; returns (result, runs to mark dirty). Raises store errors."""
    from updraft.store import commands
    from updraft.store.engine import session_scope

    if verb == "asset_event":
        from bus.assets import apply_asset_event_command

        return _json_safe(apply_asset_event_command(msg, store_url)), []
    who = getattr(msg, "owner", None) or owner
    dirty: list[tuple[str, str]] = []
    with session_scope(store_url) as session:
        if verb == "trigger":
            run = commands.trigger_dag_run(session, msg.dag_id, conf=msg.conf,
                                           run_id=msg.run_id,
                                           logical_date=_date(msg.logical_date, "logical_date"),
                                           triggered_by="bus", owner=who)
            result = {"dag_id": run.dag_id, "run_id": run.run_id,
                      "logical_date": _iso(run.logical_date), "state": run.state}
            dirty.append((run.dag_id, run.run_id))
        elif verb in ("pause", "unpause"):
            was = commands.set_paused(session, msg.dag_id, verb == "pause", owner=who)
            result = {"dag_id": msg.dag_id, "is_paused": verb == "pause", "was_paused": was}
        elif verb == "clear":
            rows = commands.clear_task_instances(
                session, msg.dag_id, task_regex=msg.task_regex, task_ids=msg.task_ids,
                run_id=msg.run_id, start_date=_date(msg.start_date, "start_date"),
                end_date=_date(msg.end_date, "end_date"), upstream=msg.upstream,
                downstream=msg.downstream, only_failed=msg.only_failed,
                only_running=msg.only_running, map_indexes=msg.map_indexes,
                dry_run=msg.dry_run, owner=who)
            result = {"count": len(rows), "task_instances": rows, "dry_run": msg.dry_run}
            dirty.extend(sorted({(r["dag_id"], r["run_id"]) for r in rows}))
        elif verb == "set_state":
            rows = commands.set_task_instance_state(
                session, msg.dag_id, msg.run_id, msg.task_id, state=msg.state,
                map_indexes=msg.map_indexes, upstream=msg.upstream, downstream=msg.downstream,
                future=msg.future, past=msg.past, owner=who)
            result = {"count": len(rows), "task_instances": rows}
            dirty.extend(sorted({(r["dag_id"], r["run_id"]) for r in rows}))
        elif verb == "set_run_state":
            run = commands.set_dag_run_state(session, msg.dag_id, msg.run_id, msg.state,
                                             owner=who)
            result = {"dag_id": run.dag_id, "run_id": run.run_id, "state": run.state}
            dirty.append((run.dag_id, run.run_id))
        elif verb == "delete_run":
            commands.delete_dag_run(session, msg.dag_id, msg.run_id, owner=who)
            result = {"dag_id": msg.dag_id, "run_id": msg.run_id, "deleted": True}
        elif verb == "set_note":
            from updraft.store.actions import set_note

            result = set_note(session, msg.dag_id, msg.run_id, msg.note, task_id=msg.task_id,
                              map_index=msg.map_index, owner=who)
        elif verb == "delete_dag":
            from updraft.store.actions import delete_dag

            result = {"dag_id": msg.dag_id, "deleted": delete_dag(session, msg.dag_id,
                                                                  owner=who)}
        elif verb == "backfill":
            from updraft.store.actions import backfill

            result = backfill(session, msg.dag_id, msg.start_date, msg.end_date,
                              reset_existing=msg.reset_dagruns, dry_run=msg.dry_run, owner=who)
            dirty.extend((msg.dag_id, r) for r in result.get("created", []))
        else:  # the schemas table and this function disagree: a bug, not a user error
            raise RuntimeError(f"no handler for command {verb!r}")
    return _json_safe(result), dirty


def create_triggered_run(dag_id: str, body: schemas.TriggerMessage, msg_id: str | None,
                         store_url: str | None, subject: str) -> tuple[str, str]:
    """Create the run an outside trigger asks for; ("created"|"duplicate", run_id).

    Raises _Refused for a message that can never succeed; other errors are transient.
    """
    from sqlalchemy.exc import IntegrityError

    from updraft.exceptions import UpdraftException
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.models import TriggerDedup

    try:
        with session_scope(store_url) as session:
            if msg_id:
                seen = session.get(TriggerDedup, msg_id)
                if seen is not None:
                    return "duplicate", seen.run_id
            try:
                run = trigger_dag_run(session, dag_id, conf=body.conf, run_id=body.run_id,
                                      logical_date=_date(body.logical_date, "logical_date"),
                                      triggered_by="nats", owner=f"nats:{subject}")
            except (UpdraftException, ValueError) as exc:
                code = error_code(exc)
                if code == "internal":
                    raise
                raise _Refused(str(exc), code) from None
            run_id = run.run_id
            if msg_id:
                session.add(TriggerDedup(msg_id=msg_id, dag_id=dag_id, run_id=run_id))
    except IntegrityError:
        # Another scheduler committed the same msg id first: that run is the one.
        with session_scope(store_url) as session:
            seen = session.get(TriggerDedup, msg_id) if msg_id else None
            if seen is None:
                raise
            return "duplicate", seen.run_id
    return "created", run_id


async def ensure_trigger_stream(js) -> None:
    """Create the triggers stream if it is missing, replicated on a cluster (idempotent;
    several schedulers race)."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    from bus.streams import ensure_replicated_stream

    # File storage, work-queue retention: a trigger stays until a scheduler acks or
    # terminates it, however long the schedulers are down. JetStream fsyncs every 2 min
    # by default (server option sync_interval), so on a single server an acked publish can
    # be lost if the machine crashes; `sync_interval: always` (what `updraft standalone`
    # sets) or 3 replicas (bus.streams, on a cluster) close that gap at ~4x less publish
    # throughput, which triggers, a low-volume stream, can afford.
    config = StreamConfig(name=subjects.triggers_stream(), subjects=[subjects.trigger_all()],
                          storage=StorageType.FILE, retention=RetentionPolicy.WORK_QUEUE,
                          discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
                          description="Updraft: durable DAG triggers from outside systems")
    await ensure_replicated_stream(js, config)


class SchedulerBus:
    """The bus node of one scheduler (see the module docstring); also its publishing sink."""

    def __init__(self, scheduler, servers: str | list[str] | None = None,
                 bus: BusThread | None = None) -> None:
        self.scheduler = scheduler
        self.store_url = scheduler.store_url
        self.node_id = scheduler.node_id
        self.bus = bus or BusThread(servers, name=self.node_id)
        self._owns_bus = bus is None
        self._stopping = False
        self._tasks: list[asyncio.Task] = []
        self._subs: list[Any] = []
        #: counters, for logs and tests
        self.stats = {"commands": 0, "triggers": 0, "duplicates": 0, "rejected": 0}
        from bus.assets import AssetEvents

        #: outside asset events and asset watchers (ADR 10)
        self.assets = AssetEvents(self)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, wait: float = 0.0) -> bool:
        """Attach to the scheduler and connect in the background; returns whether connected
        within ``wait`` seconds (never raises because NATS is down)."""
        self.scheduler.bus = self
        self.bus.on_connect(self._serve)
        if self._owns_bus:
            return self.bus.start(wait=wait)
        return self.bus.connected

    def stop(self) -> None:
        """Stop serving, send what is buffered, close the connection."""
        self._stopping = True
        if getattr(self.scheduler, "bus", None) is self:
            self.scheduler.bus = None

        async def _halt():
            for task in self._tasks:
                task.cancel()
            for sub in self._subs:
                try:
                    await sub.unsubscribe()
                except Exception:
                    log.debug("unsubscribing failed", exc_info=True)
            await self.assets.close()
        if self.bus.connected:
            try:
                self.bus.call(_halt(), timeout=5)
            except Exception:
                log.debug("stopping the bus consumers failed", exc_info=True)
        if self._owns_bus:
            self.bus.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    async def _serve(self, nc) -> None:
        self._subs.append(await nc.subscribe(subjects.cmd(),
                                             queue=subjects.COMMAND_QUEUE_GROUP,
                                             cb=self._on_command))
        # A triggerer woke deferred tasks (ADR 11): they are scheduled in the store, the
        # next pass queues them; without this nudge the slow timer would.
        self._subs.append(await nc.subscribe(subjects.wake_scheduler(), cb=self._on_wake))
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._consume_triggers(nc)))
        self._tasks.append(loop.create_task(self.assets.consume(nc)))
        self._tasks.append(loop.create_task(self.assets.watch(nc)))
        log.info("Serving commands on %s and triggers from stream %s", subjects.cmd(),
                 subjects.triggers_stream())

    # -- the publishing sink the Scheduler calls ------------------------------------------

    def publish_run_state(self, dag_id: str, run_id: str, old: str | None, new: str,
                          when: datetime) -> None:
        """Publish a run state change on ``P.evt.run.<dag_id>`` (never blocks)."""
        event = schemas.RunStateEvent(dag_id=dag_id, run_id=run_id,
                                      old_state=None if old is None else str(old),
                                      new_state=str(new), timestamp=_iso(when) or "",
                                      node=self.node_id)
        self.bus.publish(subjects.evt_run(dag_id), schemas.encode(event))

    def publish_ti_events(self, rows) -> None:
        """Publish task instance state changes (TiEvent rows, in order) on ``P.evt.ti.<dag>``."""
        for row in rows:
            event = schemas.TiStateEvent(
                dag_id=row.dag_id, run_id=row.run_id, task_id=row.task_id,
                map_index=row.map_index, try_number=row.try_number,
                old_state=row.old_state, new_state=row.new_state,
                timestamp=_iso(row.timestamp) or "", cause=row.cause, node=row.node)
            self.bus.publish(subjects.evt_ti(row.dag_id), schemas.encode(event))

    def heartbeat(self, node_id: str, kind: str, info: dict | None = None) -> None:
        """Publish a heartbeat on ``P.hb.<node_id>``."""
        from updraft.store.models import utcnow

        beat = schemas.Heartbeat(node_id=node_id, kind=kind, timestamp=_iso(utcnow()) or "",
                                 hostname=socket.gethostname(), pid=os.getpid(),
                                 info=_json_safe(info or {}))
        self.bus.publish(subjects.hb(node_id), schemas.encode(beat))

    async def _on_wake(self, _msg) -> None:
        self.scheduler.wake()

    # -- commands -------------------------------------------------------------------------

    async def _on_command(self, msg) -> None:
        verb = msg.subject.rsplit(".", 1)[-1]
        try:
            verb = subjects.decode_token(verb)
        except ValueError:
            pass
        reply = await self._answer(verb, msg.data)
        if msg.reply:
            await msg.respond(schemas.encode(reply))

    async def _answer(self, verb: str, data: bytes) -> schemas.CommandReply:
        schema = schemas.COMMANDS.get(verb)
        if schema is None:
            return schemas.CommandReply(ok=False, code="bad_request",
                                        error=f"unknown command {verb!r}; known: "
                                              f"{', '.join(schemas.COMMANDS)}")
        try:
            request = schemas.decode(schema, data)
        except schemas.SchemaError as exc:
            return schemas.CommandReply(ok=False, code="bad_request", error=str(exc))
        loop = asyncio.get_running_loop()
        try:
            result, dirty = await loop.run_in_executor(None, apply_command, verb, request,
                                                       self.store_url)
        except Exception as exc:
            code = error_code(exc)
            if code == "internal":
                log.exception("Command %s failed", verb)
                return schemas.CommandReply(ok=False, code=code,
                                            error=f"internal error: {type(exc).__name__}: {exc}")
            return schemas.CommandReply(ok=False, code=code, error=str(exc))
        self.stats["commands"] += 1
        for dag_id, run_id in dirty:
            self.scheduler.mark_dirty(dag_id, run_id)
        self.scheduler.wake()
        return schemas.CommandReply(ok=True, result=result)

    # -- outside triggers -----------------------------------------------------------------

    def _scheduler_ready(self) -> bool:
        """Consume triggers once the DAG processor finished its first pass: before, a DAG
        that exists would look unknown and its trigger would be wrongly rejected."""
        processor = getattr(self.scheduler, "processor", None)
        return processor is None or bool(processor.stats)

    async def _consume_triggers(self, nc) -> None:
        # The stream is made at once, so outside systems can publish while DAGs are parsed.
        await self.consume_stream(
            nc, what="Trigger", ensure_stream=ensure_trigger_stream,
            subject=subjects.trigger_all(), durable=subjects.triggers_consumer(),
            stream=subjects.triggers_stream(), ack_wait=TRIGGER_ACK_WAIT, batch=20,
            handle=self._handle_trigger)

    async def consume_stream(self, nc, *, what: str, ensure_stream, subject: str,
                             durable: str, stream: str, ack_wait: float, batch: int,
                             handle) -> None:
        """Pull ``subject`` from a JetStream ``stream`` through the durable consumer
        ``durable`` and ``await handle(message)`` each, until the node stops: once the DAG
        processor finished its first pass, recreating the stream and the consumer when NATS
        lost them. ``what`` names the consumer in the log."""
        import nats.errors
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        js = nc.jetstream()
        psub = None
        stream_ready = False
        while not self._stopping:
            if not nc.is_connected:
                await asyncio.sleep(0.1)
                continue
            try:
                if not stream_ready:
                    await ensure_stream(js)
                    stream_ready = True
                if not self._scheduler_ready():
                    await asyncio.sleep(0.1)
                    continue
                if psub is None:
                    psub = await js.pull_subscribe(
                        subject, durable=durable, stream=stream,
                        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                              deliver_policy=DeliverPolicy.ALL,
                                              ack_wait=ack_wait, max_ack_pending=1000))
                    self._subs.append(psub)
                messages = await psub.fetch(batch=batch, timeout=1.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (NATS away, stream deleted: retry)
                if not self._stopping:
                    log.warning("%s consumer: %s: %s; retrying", what, type(exc).__name__,
                                exc)
                    if "not found" in str(exc).lower():
                        psub, stream_ready = None, False
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                try:
                    await handle(message)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s on %s failed", what, message.subject)

    async def _handle_trigger(self, msg) -> None:
        subject = msg.subject
        if subject == subjects.trigger_rejected():
            await msg.ack()  # our own rejection notices also land in the stream
            return
        msg_id = (msg.headers or {}).get("Nats-Msg-Id")
        try:
            dag_id = subjects.dag_id_from_trigger(subject)
        except ValueError as exc:
            await self._reject(msg, None, f"bad subject: {exc}", msg_id)
            return
        if dag_id is None:
            await self._reject(msg, None, f"subject {subject!r} is not "
                               f"{subjects.prefix()}.trigger.<encoded dag id>", msg_id)
            return
        try:
            body = schemas.decode(schemas.TriggerMessage, msg.data)
        except schemas.SchemaError as exc:
            await self._reject(msg, dag_id, str(exc), msg_id)
            return
        loop = asyncio.get_running_loop()
        try:
            outcome, run_id = await loop.run_in_executor(
                None, create_triggered_run, dag_id, body, msg_id, self.store_url, subject)
        except _Refused as exc:
            await self._reject(msg, dag_id, str(exc), msg_id)
            return
        except Exception as exc:  # noqa: BLE001  (the store is away: try again later)
            log.warning("Trigger of %s not applied (%s: %s); will be redelivered", dag_id,
                        type(exc).__name__, exc)
            await msg.nak(delay=2.0)
            return
        await msg.ack()
        if outcome == "created":
            self.stats["triggers"] += 1
            log.info("Outside trigger on %s created run %s", subject, run_id)
            self.scheduler.mark_dirty(dag_id, run_id)
        else:
            self.stats["duplicates"] += 1
            log.info("Outside trigger on %s (Nats-Msg-Id %s) already made run %s", subject,
                     msg_id, run_id)

    async def _reject(self, msg, dag_id: str | None, reason: str, msg_id: str | None) -> None:
        self.stats["rejected"] += 1
        log.warning("Rejected the trigger on %s: %s", msg.subject, reason)
        try:
            seq = msg.metadata.sequence.stream
        except Exception:  # noqa: BLE001
            seq = None
        await msg.term()
        notice = schemas.TriggerRejected(subject=msg.subject, dag_id=dag_id, reason=reason,
                                         msg_id=msg_id, stream_seq=seq)
        self.bus.publish(subjects.trigger_rejected(), schemas.encode(notice))


def start_scheduler_bus(scheduler, wait: float = 1.0) -> SchedulerBus | None:
    """Attach a SchedulerBus to ``scheduler``; None if the bus cannot even be set up
    (bad configuration). An unreachable NATS is not an error: it connects later."""
    try:
        node = SchedulerBus(scheduler)
    except Exception as exc:  # noqa: BLE001  (the scheduler runs without the bus)
        log.warning("The scheduler runs without the NATS bus: %s", exc)
        return None
    if not node.start(wait=wait):
        log.warning("NATS is not reachable yet; the scheduler runs from the store and "
                    "connects to the bus when NATS is back")
    return node
