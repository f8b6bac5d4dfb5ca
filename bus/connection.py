"""Connecting to NATS: security options from ``[nats]``, a fast clear first failure, and a
background-thread connection (``BusThread``) for sync code such as the scheduler and the web.

``connect()`` fails within about a second when nothing listens ("cannot reach NATS at
nats://...: ..."): nats-py would otherwise retry its first connect for two minutes. Once
connected, it reconnects forever and logs each disconnect and reconnect.

``BusThread`` owns an asyncio loop in a daemon thread and one connection, made in the
background and retried until it succeeds, so the caller never blocks on NATS. ``publish`` is
thread-safe and never blocks: messages wait in a bounded buffer while NATS is away and go out,
in order, when it is back (the oldest are dropped past ``buffer_limit``; the store is the truth,
events are a convenience). ``request`` and ``call`` block the calling thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self

log = logging.getLogger(__name__)
#: While publishes keep coming, how often the bus thread takes them (seconds).
PUMP_INTERVAL = 0.02
#: How long a request waits for a connection being made or remade before it fails.
CONNECT_GRACE = 3.0


class BusUnavailable(ConnectionError):
    """NATS cannot be reached (or is not connected right now)."""


def server_list(servers: str | list[str] | None = None) -> list[str]:
    """The NATS URLs to use: ``servers`` or ``[nats] servers`` (comma separated)."""
    if servers is None:
        from updraft.config import conf

        servers = conf.get("nats", "servers")
    if isinstance(servers, str):
        servers = [s.strip() for s in servers.split(",") if s.strip()]
    urls = [s if "://" in s else f"nats://{s}" for s in servers]
    if not urls:
        raise BusUnavailable("no NATS server configured ([nats] servers is empty)")
    return urls


def security_options() -> dict[str, Any]:
    """nats-py connect options for the credentials and TLS set in ``[nats]``."""
    from updraft.config import conf

    def opt(key: str) -> str:
        return str(conf.get("nats", key) or "").strip()

    options: dict[str, Any] = {}
    if opt("user"):
        options["user"] = opt("user")
        options["password"] = opt("password")
    if opt("token"):
        options["token"] = opt("token")
    seed = opt("nkeys_seed")
    if seed:
        # A path to a seed file, or the seed itself ("SU...").
        if Path(seed).expanduser().is_file():
            options["nkeys_seed"] = str(Path(seed).expanduser())
        else:
            options["nkeys_seed_str"] = seed
    if opt("creds_file"):
        options["user_credentials"] = str(Path(opt("creds_file")).expanduser())
    ca, cert, key = opt("tls_ca"), opt("tls_cert"), opt("tls_key")
    if ca or cert:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
        options["tls"] = context
    return options


async def connect(servers: str | list[str] | None = None, name: str = "updraft",
                  **overrides: Any):
    """A connected ``nats.aio.client.Client``; BusUnavailable at once if NATS is unreachable.

    ``overrides`` go to ``nats.connect`` last (e.g. callbacks, ``reconnect_time_wait``).
    After the first connect the client reconnects forever.
    """
    import nats

    urls = server_list(servers)
    user_disconnected = overrides.pop("disconnected_cb", None)
    user_reconnected = overrides.pop("reconnected_cb", None)
    user_error = overrides.pop("error_cb", None)
    reconnect_wait = overrides.pop("reconnect_time_wait", 0.5)

    async def disconnected_cb():
        if client.is_closed:
            return  # close() was called: not a loss
        log.warning("NATS connection %s lost; reconnecting", name)
        if user_disconnected:
            await user_disconnected()

    async def reconnected_cb():
        log.warning("NATS connection %s back at %s", name, client.connected_url.netloc
                    if client.connected_url else "?")
        if user_reconnected:
            await user_reconnected()

    async def error_cb(exc):
        log.debug("NATS connection %s: %s", name, exc)
        if user_error:
            await user_error(exc)

    options: dict[str, Any] = {"servers": urls, "name": name, "connect_timeout": 2,
                               "max_reconnect_attempts": 1, "reconnect_time_wait": 0.1,
                               "disconnected_cb": disconnected_cb,
                               "reconnected_cb": reconnected_cb, "error_cb": error_cb}
    options.update(security_options())
    options.update(overrides)
    client = nats.aio.client.Client()
    try:
        await client.connect(**options)
    except Exception as exc:  # noqa: BLE001  (every failure becomes one clear message)
        try:
            await client.close()
        except Exception:
            log.debug("closing a failed NATS client failed", exc_info=True)
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, nats.errors.NoServersError) or not str(exc):
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise BusUnavailable(f"cannot reach NATS at {', '.join(urls)}: {reason}") from None
    # Connected: from now on reconnect forever (nats-py reads these at each attempt).
    client.options["max_reconnect_attempts"] = -1
    client.options["reconnect_time_wait"] = reconnect_wait
    return client


class BusThread:
    """One NATS connection in a background asyncio thread, usable from sync code."""

    def __init__(self, servers: str | list[str] | None = None, name: str = "updraft",
                 buffer_limit: int = 100_000, retry_interval: float = 1.0,
                 **overrides: Any) -> None:
        self.servers = server_list(servers)
        self.name = name
        self.retry_interval = retry_interval
        self.overrides = overrides
        #: the nats-py client once connected (None before)
        self.nc = None
        #: why the last connect attempt failed (None once connected)
        self.last_error: str | None = None
        #: messages dropped because the buffer was full while NATS was away
        self.dropped = 0
        self._pending: collections.deque = collections.deque()
        #: publishes handed over by other threads, taken into _pending by the loop
        self._incoming: collections.deque = collections.deque()
        self._kick_pending = False
        self._pump_armed = False
        self._buffer_limit = buffer_limit
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"nats-{name}", daemon=True)
        self._on_connect: list[Callable[[Any], Awaitable[None]]] = []
        self._on_reconnect: list[Callable[[Any], Awaitable[None]]] = []
        self._first_attempt = threading.Event()
        self._connected_event = threading.Event()
        self._stopping = False
        self._drain_lock: asyncio.Lock | None = None
        self._connector: asyncio.Future | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, wait: float | None = 0.0) -> bool:
        """Start the thread and the background connect; wait up to ``wait`` s for the first
        attempt (None: until it ends). Returns whether NATS is connected."""
        self._thread.start()
        self._connector = asyncio.run_coroutine_threadsafe(self._connect_forever(), self._loop)
        if wait is None or wait > 0:
            self._first_attempt.wait(wait)
        return self.connected

    def on_connect(self, callback: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``await callback(nc)`` in the loop once connected (at once if already)."""
        self._on_connect.append(callback)
        if self.nc is not None:
            self.call(callback(self.nc))

    def on_reconnect(self, callback: Callable[[Any], Awaitable[None]]) -> None:
        """Run ``await callback(nc)`` in the loop after each reconnect."""
        self._on_reconnect.append(callback)

    @property
    def connected(self) -> bool:
        """True while the connection is up."""
        return self.nc is not None and self.nc.is_connected

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the first connect succeeded (or ``timeout``); returns whether it did."""
        self._connected_event.wait(timeout)
        return self.connected

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is buffered (if connected), close the connection and end the thread."""
        if not self._thread.is_alive():
            return
        self._stopping = True
        try:
            self.call(self._close(), timeout=timeout)
        except Exception:
            log.debug("closing the NATS connection failed", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        if not self._thread.is_alive():
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- sync API -------------------------------------------------------------------------

    def call(self, coro: Awaitable, timeout: float | None = None) -> Any:
        """Run ``coro`` in the bus loop and return its result (blocks this thread)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("BusThread.call() from the bus thread itself would deadlock")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the bus did not finish within {timeout} s") from None

    def publish(self, subject: str, data: bytes, headers: dict | None = None) -> None:
        """Queue a core NATS publish; never blocks; buffered while NATS is away.

        The first message after a quiet spell wakes the bus thread at once; while messages
        keep coming, the bus thread takes them every ``PUMP_INTERVAL`` instead, so busy
        publishers (task logs, state events) do not wake it once per message."""
        self._incoming.append((subject, data, headers))
        if not self._pump_armed and not self._kick_pending:
            self._kick_pending = True
            try:
                self._loop.call_soon_threadsafe(self._kick)
            except RuntimeError:  # the loop is closed: this BusThread was stopped
                self.dropped += len(self._incoming)
                self._incoming.clear()

    def _kick(self) -> None:
        self._kick_pending = False
        if not self._pump_armed:
            self._pump_armed = True
            self._pump()

    def _pump(self) -> None:
        if self._incoming:
            self._take_incoming()
            self._loop.call_later(PUMP_INTERVAL, self._pump)
            return
        self._pump_armed = False
        if self._incoming:  # queued by a publisher that still saw the pump armed
            self._pump_armed = True
            self._loop.call_soon(self._pump)

    def _take_incoming(self) -> None:
        while self._incoming:
            self._enqueue(*self._incoming.popleft())

    def subscribe(self, subject: str, handler: Callable[[Any], None],
                  queue: str = "") -> BusSubscription:
        """Call ``handler(msg)`` (in the bus thread: it must not block) for each message on
        ``subject``, from now on and after every reconnect; works before NATS is reachable.
        For the web's server-sent events: hand messages to a ``queue.Queue`` in ``handler``."""
        subscription = BusSubscription(self, subject, handler, queue)
        self.on_connect(subscription._attach)
        return subscription

    def request(self, subject: str, data: bytes, timeout: float = 5.0,
                headers: dict | None = None):
        """Send a request and return the reply message; BusUnavailable if NATS is not
        connected within ``CONNECT_GRACE`` s (a connection still being made or remade, as
        right after a node starts, is waited for briefly rather than failed at once)."""
        if not self.connected:
            self._wait_reconnected(min(timeout, CONNECT_GRACE))
        if not self.connected:
            raise BusUnavailable(f"cannot reach NATS at {', '.join(self.servers)}: "
                                 f"{self.last_error or 'not connected'}")
        return self.call(self.nc.request(subject, data, timeout=timeout, headers=headers),
                         timeout=timeout + 5)

    def _wait_reconnected(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self._connected_event.wait(seconds)
        while not self.connected and not self._stopping and time.monotonic() < deadline:
            time.sleep(0.05)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (up to ``timeout``) until every queued publish went out and the server has
        them; BusUnavailable if NATS is not connected by then."""
        self._connected_event.wait(timeout)
        async def _flush():
            await asyncio.sleep(0)  # let call_soon_threadsafe callbacks queued before run
            self._take_incoming()
            await self._drain()
            if self._pending:
                raise BusUnavailable(f"{len(self._pending)} message(s) still buffered: NATS "
                                     "is not connected")
            await self.nc.flush(timeout)
        self.call(_flush(), timeout=timeout + 1)

    # -- inside the loop ------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._drain_lock = asyncio.Lock()
        self._loop.run_forever()
        self._loop.close()

    async def _connect_forever(self) -> None:
        warned = False
        while not self._stopping:
            try:
                self.nc = await connect(self.servers, name=self.name,
                                        reconnected_cb=self._reconnected, **self.overrides)
            except BusUnavailable as exc:
                self.last_error = str(exc).split(": ", 1)[-1]
                if not warned:
                    log.warning("%s; retrying every %.1f s in the background", exc,
                                self.retry_interval)
                    warned = True
                self._first_attempt.set()
                await asyncio.sleep(self.retry_interval)
                continue
            self.last_error = None
            if warned:
                log.warning("NATS connection %s established at %s", self.name,
                            ", ".join(self.servers))
            for callback in self._on_connect:
                try:
                    await callback(self.nc)
                except Exception:
                    log.exception("NATS on-connect callback failed")
            self._connected_event.set()
            self._first_attempt.set()
            await self._drain()
            return

    async def _reconnected(self) -> None:
        await self._drain()
        for callback in self._on_reconnect:
            try:
                await callback(self.nc)
            except Exception:
                log.exception("NATS on-reconnect callback failed")

    def _enqueue(self, subject: str, data: bytes, headers: dict | None) -> None:
        if len(self._pending) >= self._buffer_limit:
            self._pending.popleft()
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                log.warning("NATS unavailable: %d buffered message(s) dropped so far",
                            self.dropped)
        self._pending.append((subject, data, headers))
        if self.connected and not self._drain_lock.locked():
            self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        """Publish the buffer in order while connected (one drainer at a time)."""
        if self._drain_lock is None:
            return
        async with self._drain_lock:
            while self._pending and self.connected:
                subject, data, headers = self._pending[0]
                try:
                    await self.nc.publish(subject, data, headers=headers)
                except Exception as exc:  # noqa: BLE001
                    if not self.connected:
                        return  # kept in the buffer; _reconnected drains it
                    log.warning("NATS publish on %s failed (dropped): %s", subject, exc)
                self._pending.popleft()

    async def _close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self.nc is not None and not self.nc.is_closed:
            self._take_incoming()
            await self._drain()
            try:
                await self.nc.flush(2)
            except Exception:
                log.debug("last NATS flush failed", exc_info=True)
            await self.nc.close()
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)


class BusSubscription:
    """A subscription made through ``BusThread.subscribe``; ``unsubscribe()`` ends it."""

    def __init__(self, bus: BusThread, subject: str, handler: Callable[[Any], None],
                 queue: str) -> None:
        self.bus, self.subject, self.handler, self.queue = bus, subject, handler, queue
        self._sub = None
        self.closed = False

    async def _attach(self, nc) -> None:
        if not self.closed:
            self._sub = await nc.subscribe(self.subject, queue=self.queue, cb=self._on_msg)

    async def _on_msg(self, msg) -> None:
        try:
            self.handler(msg)
        except Exception:
            log.exception("handler of %s failed", self.subject)

    def unsubscribe(self) -> None:
        """Stop delivering messages (thread-safe; idempotent)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.bus._on_connect.remove(self._attach)
        except ValueError:
            pass
        if self._sub is not None and self.bus._thread.is_alive():
            try:
                self.bus.call(self._sub.unsubscribe(), timeout=5)
            except Exception:
                log.debug("unsubscribing from %s failed", self.subject, exc_info=True)


_shared: BusThread | None = None
_shared_lock = threading.Lock()


def shared_bus(wait: float = 3.0) -> BusThread:
    """The process-wide BusThread (started on first use; waits ``wait`` s for the first
    connect attempt). The web and the CLI use it; ``.connected`` says whether NATS is up."""
    global _shared
    with _shared_lock:
        if _shared is not None and _shared.servers != server_list():
            _shared.stop()  # the configuration changed (tests): connect to the new servers
            _shared = None
        if _shared is None or not _shared._thread.is_alive():
            _shared = BusThread(name="updraft-client")
            _shared.start(wait=wait)
        return _shared


def close_shared_bus() -> None:
    """Stop the process-wide BusThread (tests; the web at shutdown)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
