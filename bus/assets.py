"""Outside asset events on the bus (ADR 10): the JetStream subject per asset and watchers.

- ``P.asset.<name>`` (stream ``<PREFIX>_ASSETS``, durable pull consumer ``schedulers``):
  an outside system publishes ``{"extra": {...}, "id": "..."}`` (both optional) to record
  an event of the asset ``name``. The message is acked after the event is committed; its
  ``Nats-Msg-Id`` (or, without one, the body's ``id``) is kept with the event, so a
  redelivery or a re-publish records nothing more. A message that can never succeed (an
  unknown asset, a bad body) is terminated and an ``AssetEventRejected`` is published on
  ``P.asset.rejected`` with the reason; store trouble naks it, to be retried. Exactly as
  the run triggers on ``P.trigger.<dag_id>`` (``bus.node``).
- Asset watchers (``AssetWatcher(name, NatsSubjectTrigger(subject))`` on an asset): the
  schedulers subscribe to each watched subject, core NATS included, in one queue group, so
  one scheduler records each message as an event (source ``watcher``). Core NATS keeps
  nothing while no scheduler listens; the JetStream subject does.

Every recorded event wakes the scheduler, which creates the consumer runs at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from bus import schemas, subjects
from updraft.store.outage import OutageReporter, is_store_unavailable

log = logging.getLogger("updraft.bus.assets")

#: How long JetStream drops a re-published Nats-Msg-Id by itself; the event's msg_id after.
DUPLICATE_WINDOW = 120.0
#: An asset event is redelivered if not acked within this time (a scheduler died mid-way).
ACK_WAIT = 30.0
#: How often the watched subjects are read again from the store.
WATCH_SYNC_INTERVAL = 2.0


class Refused(Exception):
    """An asset event that can never be recorded; the text says why."""


def record_asset_message(name: str, extra: dict, msg_id: str | None, store_url: str | None,
                         source: str) -> tuple[str, int]:
    """Record an outside event of asset ``name``: ("created"|"duplicate", event id).
    Raises Refused for an unknown asset; other errors are transient."""
    from updraft.store.assets import UnknownAsset, record_outside_event
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow

    if msg_id is not None and len(msg_id) > 250:
        raise Refused(f"the message id is {len(msg_id)} characters long; at most 250")
    try:
        with session_scope(store_url, write=True) as session:
            event_id, duplicate = record_outside_event(session, name=name, extra=extra,
                                                       source=source, now=utcnow(),
                                                       msg_id=msg_id)
    except UnknownAsset:
        raise Refused(f"no asset named {name!r}: an asset exists once a DAG defines it or "
                      "schedules on it") from None
    return ("duplicate" if duplicate else "created"), event_id


async def ensure_asset_stream(js) -> None:
    """Create the assets stream if it is missing, replicated on a cluster (idempotent;
    several schedulers race)."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    from bus.streams import ensure_replicated_stream

    # As the triggers stream (bus.node): file storage, work-queue retention.
    config = StreamConfig(name=subjects.assets_stream(), subjects=[subjects.asset_all()],
                          storage=StorageType.FILE, retention=RetentionPolicy.WORK_QUEUE,
                          discard=DiscardPolicy.OLD, duplicate_window=DUPLICATE_WINDOW,
                          description="Updraft: durable asset events from outside systems")
    await ensure_replicated_stream(js, config)


def watcher_extra(data: bytes) -> tuple[dict, str | None]:
    """The extra (and id) of a watched message: a JSON object is the extra (its ``extra``
    and ``id`` when those are its only keys); any other body is ``{"data": text}``."""
    text = data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        if set(body) <= {"extra", "id"} and isinstance(body.get("extra", {}), dict):
            return dict(body.get("extra") or {}), \
                (str(body["id"]) if body.get("id") is not None else None)
        return body, None
    return ({"data": text} if text else {}), None


class AssetEvents:
    """The asset-event side of a scheduler's bus node (``bus.node.SchedulerBus``)."""

    def __init__(self, node) -> None:
        self.node = node
        self.stats = {"asset_events": 0, "asset_duplicates": 0, "asset_rejected": 0,
                      "watched": 0}
        #: (subject, servers) -> (subscription, asset names, connection)
        self._watching: dict[tuple[str, str | None], tuple[Any, set[str], Any]] = {}
        self._connections: dict[str, Any] = {}
        self._watch_outage = OutageReporter("Asset watchers", log)
        self._last_watch_error: str | None = None

    # -- the stream ----------------------------------------------------------------------

    async def consume(self, nc) -> None:
        """Consume ``P.asset.>`` until the node stops."""
        await self.node.consume_stream(
            nc, what="Asset event", ensure_stream=ensure_asset_stream,
            subject=subjects.asset_all(), durable=subjects.assets_consumer(),
            stream=subjects.assets_stream(), ack_wait=ACK_WAIT, batch=50,
            handle=self._handle)

    async def _handle(self, msg) -> None:
        subject = msg.subject
        if subject == subjects.asset_rejected():
            await msg.ack()  # our own rejection notices also land in the stream
            return
        header_id = (msg.headers or {}).get("Nats-Msg-Id")
        try:
            name = subjects.asset_name_from_subject(subject)
        except ValueError as exc:
            await self._reject(msg, None, f"bad subject: {exc}", header_id)
            return
        if name is None:
            await self._reject(msg, None, f"subject {subject!r} is not "
                               f"{subjects.prefix()}.asset.<encoded asset name>", header_id)
            return
        try:
            body = schemas.decode(schemas.AssetEventMessage, msg.data)
        except schemas.SchemaError as exc:
            await self._reject(msg, name, str(exc), header_id)
            return
        msg_id = header_id or body.id
        loop = asyncio.get_running_loop()
        try:
            outcome, event_id = await loop.run_in_executor(
                None, record_asset_message, name, body.extra, msg_id, self.node.store_url,
                "nats")
        except Refused as exc:
            await self._reject(msg, name, str(exc), msg_id)
            return
        except Exception as exc:  # noqa: BLE001  (the store is away: try again later)
            log.warning("Asset event of %s not recorded (%s: %s); will be redelivered", name,
                        type(exc).__name__, exc)
            await msg.nak(delay=2.0)
            return
        await msg.ack()
        self._recorded(outcome, name, event_id, msg_id, subject)

    def _recorded(self, outcome: str, name: str, event_id: int, msg_id: str | None,
                  subject: str) -> None:
        if outcome == "created":
            self.stats["asset_events"] += 1
            log.info("Outside event %d of asset %s (on %s)", event_id, name, subject)
            self.node.scheduler.wake()
        else:
            self.stats["asset_duplicates"] += 1
            log.info("Outside event of asset %s on %s (id %s) was already recorded as %d",
                     name, subject, msg_id, event_id)

    async def _reject(self, msg, name: str | None, reason: str, msg_id: str | None) -> None:
        self.stats["asset_rejected"] += 1
        log.warning("Rejected the asset event on %s: %s", msg.subject, reason)
        try:
            seq = msg.metadata.sequence.stream
        except Exception:  # noqa: BLE001
            seq = None
        await msg.term()
        notice = schemas.AssetEventRejected(subject=msg.subject, asset=name, reason=reason,
                                            msg_id=msg_id, stream_seq=seq)
        self.node.bus.publish(subjects.asset_rejected(), schemas.encode(notice))

    # -- watchers --------------------------------------------------------------------------

    async def watch(self, nc) -> None:
        """Keep one queue-group subscription per watched subject, following the store."""
        while not self.node._stopping:
            try:
                if nc.is_connected and self.node._scheduler_ready():
                    wanted = await asyncio.get_running_loop().run_in_executor(
                        None, watched_subjects, self.node.store_url)
                    self._watch_outage.succeeded()
                    await self._sync(nc, wanted)
                    self._last_watch_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (the store or NATS is away: next time)
                self._watch_failed(exc)
            await asyncio.sleep(WATCH_SYNC_INTERVAL)

    def _watch_failed(self, exc: Exception) -> None:
        """One line per outage or per new error, never one per 2-second attempt."""
        if is_store_unavailable(exc):
            self._watch_outage.failed(exc)
            return
        text = f"{type(exc).__name__}: {exc}"
        if text != self._last_watch_error:
            self._last_watch_error = text
            log.warning("Asset watchers: %s; retrying every %g s", text, WATCH_SYNC_INTERVAL)

    async def _sync(self, nc, wanted: dict[tuple[str, str | None], set[str]]) -> None:
        import nats

        for key in [k for k in self._watching if k not in wanted]:
            sub, _names, _conn = self._watching.pop(key)
            await sub.unsubscribe()
        for key, names in wanted.items():
            if key in self._watching:
                sub, _old, conn = self._watching[key]
                self._watching[key] = (sub, names, conn)
                continue
            subject, servers = key
            conn = nc
            if servers:
                conn = self._connections.get(servers)
                if conn is None:
                    conn = await nats.connect(servers, name=f"{self.node.node_id}-watchers",
                                              max_reconnect_attempts=-1)
                    self._connections[servers] = conn
            sub = await conn.subscribe(subject, queue=subjects.watchers_queue_group(),
                                       cb=self._make_callback(key))
            self._watching[key] = (sub, names, conn)
            log.info("Watching NATS subject %s for asset(s) %s", subject,
                     ", ".join(sorted(names)))
        self.stats["watched"] = len(self._watching)

    def _make_callback(self, key):
        async def on_message(msg) -> None:
            entry = self._watching.get(key)
            if entry is None:
                return
            extra, body_id = watcher_extra(msg.data)
            header_id = (msg.headers or {}).get("Nats-Msg-Id")
            msg_id = header_id or body_id
            loop = asyncio.get_running_loop()
            for name in sorted(entry[1]):
                # One message may feed several assets: each gets its own dedup id.
                one_id = f"{msg_id}@{name}" if msg_id and len(entry[1]) > 1 else msg_id
                try:
                    outcome, event_id = await loop.run_in_executor(
                        None, record_asset_message, name, extra, one_id,
                        self.node.store_url, "watcher")
                except Exception as exc:  # noqa: BLE001  (core NATS: nothing to redeliver)
                    log.warning("Watcher message on %s for asset %s not recorded: %s",
                                msg.subject, name, exc)
                    continue
                self._recorded(outcome, name, event_id, one_id, msg.subject)
        return on_message

    async def close(self) -> None:
        for sub, _names, _conn in self._watching.values():
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001
                log.debug("unsubscribing a watcher failed", exc_info=True)
        self._watching.clear()
        for conn in self._connections.values():
            try:
                await conn.close()
            except Exception:  # noqa: BLE001
                log.debug("closing a watcher connection failed", exc_info=True)
        self._connections.clear()


def watched_subjects(store_url: str | None) -> dict[tuple[str, str | None], set[str]]:
    """(subject, servers) -> the assets whose watchers listen there, from the store."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import AssetModel

    wanted: dict[tuple[str, str | None], set[str]] = {}
    with session_scope(store_url) as session:
        for name, watchers in session.execute(select(AssetModel.name, AssetModel.watchers)
                                              .where(AssetModel.watchers.is_not(None))):
            for watcher in watchers or []:
                if isinstance(watcher, dict) and watcher.get("kind") == "nats" and \
                        watcher.get("subject"):
                    key = (watcher["subject"], watcher.get("servers") or None)
                    wanted.setdefault(key, set()).add(name)
    return wanted


def apply_asset_event_command(msg: schemas.AssetEventCommand, store_url: str | None) -> dict:
    """The ``asset_event`` command: record the event; raises UpdraftNotFoundException for an
    unknown asset."""
    from updraft.exceptions import UpdraftBadRequest, UpdraftNotFoundException

    try:
        outcome, event_id = record_asset_message(msg.name, msg.extra, msg.id, store_url,
                                                 "cli" if (msg.owner or "").startswith("cli")
                                                 else "api")
    except Refused as exc:
        text = str(exc)
        raise (UpdraftNotFoundException(text) if text.startswith("no asset")
               else UpdraftBadRequest(text)) from None
    return {"asset": msg.name, "event_id": event_id, "duplicate": outcome == "duplicate"}


__all__ = ["AssetEvents", "Refused", "apply_asset_event_command", "ensure_asset_stream",
           "record_asset_message", "watched_subjects", "watcher_extra"]
