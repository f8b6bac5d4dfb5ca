"""Triggers woken by NATS messages: a message on any subject (``NatsMessageTrigger``, with an
optional JSON filter), and the state events Updraft's schedulers publish
(``P.evt.run.<dag>`` / ``P.evt.ti.<dag>``), which wake the DAG-run and external-task
triggers (``updraft.triggers.external``) instead of a polling loop.

Thousands of triggers share one NATS connection and one subscription per subject in a
triggerer (``listen``): a message is handed to every trigger listening on its subject. Core
NATS keeps nothing for a subscriber that is not there yet: a message published before the
trigger started (the task deferred, a triggerer claimed the trigger, which takes up to a
second) is not seen. Put a request id in the filter and publish the answer after the
request, or use the asset subjects' JetStream (README, Assets) when nothing may be lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from typing import Any

from updraft.triggers.base import BaseTrigger, TriggerEvent

log = logging.getLogger("updraft.triggers.nats")


#: Extra ``nats.connect`` options (credentials, TLS): the triggerer sets them from
#: ``[nats]`` (the bus package builds them; the authoring package does not import it).
CONNECT_OPTIONS: dict[str, Any] = {}


def set_connect_options(options: dict[str, Any]) -> None:
    """Use these credentials and TLS settings for the triggers' NATS connections."""
    CONNECT_OPTIONS.clear()
    CONNECT_OPTIONS.update(options)


def _servers(servers: str | list[str] | None) -> list[str]:
    if servers is None:
        from updraft.config import conf

        servers = conf.get("nats", "servers")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    return list(servers)


class _Hub:
    """One event loop's NATS connections (one per server list) and subscriptions (one per
    subject), shared by the triggers on that loop."""

    def __init__(self) -> None:
        self._connections: dict[tuple[str, ...], Any] = {}
        self._subscriptions: dict[tuple[tuple[str, ...], str], tuple[Any, set]] = {}
        self._lock = asyncio.Lock()

    async def _connect(self, servers: tuple[str, ...]):
        nc = self._connections.get(servers)
        if nc is not None and not nc.is_closed:
            return nc
        import nats

        nc = await nats.connect(list(servers), connect_timeout=2, max_reconnect_attempts=-1,
                                reconnect_time_wait=1, name="updraft-triggerer",
                                **CONNECT_OPTIONS)
        self._connections[servers] = nc
        return nc

    async def add(self, subject: str, servers: tuple[str, ...], queue: asyncio.Queue) -> None:
        async with self._lock:
            key = (servers, subject)
            entry = self._subscriptions.get(key)
            if entry is None:
                nc = await self._connect(servers)
                listeners: set = set()

                async def deliver(msg, listeners=listeners):
                    for listener in list(listeners):
                        listener.put_nowait(msg)

                entry = (await nc.subscribe(subject, cb=deliver), listeners)
                # The server has the subscription once it answers the ping: a message
                # published after listen() returns reaches the queue.
                await nc.flush()
                self._subscriptions[key] = entry
            entry[1].add(queue)

    async def remove(self, subject: str, servers: tuple[str, ...], queue: asyncio.Queue) -> None:
        async with self._lock:
            key = (servers, subject)
            entry = self._subscriptions.get(key)
            if entry is None:
                return
            entry[1].discard(queue)
            if not entry[1]:
                del self._subscriptions[key]
                try:
                    await entry[0].unsubscribe()
                except Exception:  # noqa: BLE001  (a closed connection has no subscription)
                    pass


_HUBS: dict[int, _Hub] = {}


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _HUBS.get(id(loop))
    if hub is None:
        hub = _HUBS[id(loop)] = _Hub()
    return hub


@asynccontextmanager
async def listen(subject: str, servers: str | list[str] | None = None):
    """A queue receiving every message on ``subject`` while the block runs (raises if NATS
    cannot be reached)."""
    queue: asyncio.Queue = asyncio.Queue()
    hub, key = _hub(), tuple(_servers(servers))
    await hub.add(subject, key, queue)
    try:
        yield queue
    finally:
        await hub.remove(subject, key, queue)


def decode(data: bytes) -> Any:
    """A message body: its JSON value, or its text when it is not JSON."""
    text = data.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def matches(pattern: Any, value: Any) -> bool:
    """Whether ``value`` has everything ``pattern`` has: each key of a dict pattern, with a
    matching value (recursively); any other pattern must be equal."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            key in value and matches(item, value[key]) for key, item in pattern.items())
    return pattern == value


class NatsMessageTrigger(BaseTrigger):
    """Fires on the first message on ``subject`` (wildcards allowed) whose JSON body holds
    ``filter`` (a dict matched key by key, nested dicts too; None: any message). The event's
    payload is ``{"subject": ..., "data": <the JSON body, or its text>}``."""

    def __init__(self, subject: str, filter: dict[str, Any] | None = None,
                 servers: str | list[str] | None = None) -> None:
        super().__init__()
        if not isinstance(subject, str) or not subject.strip() or " " in subject:
            raise ValueError(f"NatsMessageTrigger subject must be a NATS subject, got "
                             f"{subject!r}")
        if filter is not None and not isinstance(filter, dict):
            raise TypeError("NatsMessageTrigger filter must be a dict or None")
        self.subject = subject
        self.filter = filter
        self.servers = servers

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.nats.NatsMessageTrigger",
                {"subject": self.subject, "filter": self.filter, "servers": self.servers})

    async def run(self):
        async with listen(self.subject, self.servers) as queue:
            self.log.info("Waiting for a message on %s%s", self.subject,
                          f" matching {self.filter}" if self.filter else "")
            while True:
                msg = await queue.get()
                data = decode(msg.data)
                if self.filter is None or matches(self.filter, data):
                    yield TriggerEvent({"subject": msg.subject, "data": data})
                    return


def state_subject(kind: str) -> str:
    """``P.evt.run.*`` or ``P.evt.ti.*``: every DAG's run or task state events (the bus names
    the same subjects in ``bus.subjects``; a trigger filters on the body's dag_id)."""
    from updraft.config import conf

    return f"{conf.get('nats', 'subject_prefix')}.evt.{kind}.*"


__all__ = ["NatsMessageTrigger", "decode", "listen", "matches", "set_connect_options",
           "state_subject"]
