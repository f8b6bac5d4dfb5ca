"""Live task logs: each line of a try's log published on ``P.log.<dag>.<run>.<task>.<map>.<try>``.

The try's log file stays the record (``updraft.tasklog``); the bus only lets a UI or
``updraft tasks logs --follow`` see lines as they are written. Publishing is best effort and
never blocks the task: lines go through a ``BusThread`` (one connection per process, made
lazily in the background), which buffers a bounded number of lines while NATS is away and
drops the oldest beyond that.

``LogLine.seq`` is the line's number in the try's log file (1-based), so a follower that read
the first N lines from the file prints only live lines with ``seq > N``. A sensor rescheduled
within one try appends to the same file: its publisher starts counting after the lines
already there. After the try, a line with ``eof=True`` (and an empty text) says it ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bus import subjects
from bus.schemas import LogLine, encode

log = logging.getLogger(__name__)

LINE_LIMIT = 64 * 1024
"""Longer lines are cut on the bus (the file keeps them whole)."""


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


class TryLogStream:
    """The ``on_log_line`` callback of one try: numbers its lines and publishes them."""

    def __init__(self, publisher: LogPublisher, request: Any, log_path: Path | None = None):
        self._publisher = publisher
        self._ids = (request.dag_id, request.run_id, request.task_id, request.map_index,
                     request.try_number)
        self.subject = subjects.log(request.dag_id, request.run_id, request.task_id,
                                    request.try_number, request.map_index)
        self._seq = self._first = _count_lines(log_path) if log_path is not None else 0
        self._lock = threading.Lock()

    def __call__(self, line: str) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        self._send(seq, line[:LINE_LIMIT], eof=False)

    def close(self) -> None:
        """Publish the end-of-log marker, if this runner wrote any line.

        A runner whose claim was refused (a duplicate delivery) wrote nothing: it must not
        tell followers that the try another runner is running has ended.
        """
        with self._lock:
            seq = self._seq
        if seq > self._first:
            self._send(seq, "", eof=True)

    def _send(self, seq: int, line: str, eof: bool) -> None:
        dag_id, run_id, task_id, map_index, try_number = self._ids
        body = encode(LogLine(dag_id=dag_id, run_id=run_id, task_id=task_id,
                              map_index=map_index, try_number=try_number, seq=seq, line=line,
                              timestamp=datetime.now(UTC).isoformat(), eof=eof))
        self._publisher.publish(self.subject, body)


class LogPublisher:
    """Publishes live log lines through a BusThread (its own, made on first use, or given)."""

    def __init__(self, bus: Any = None, *, servers: str | list[str] | None = None,
                 buffer_limit: int = 10_000) -> None:
        self._bus = bus
        self._servers = servers
        self._buffer_limit = buffer_limit
        self._owns_bus = bus is None
        self._lock = threading.Lock()

    @property
    def bus(self):
        """The BusThread in use (started on first use)."""
        with self._lock:
            if self._bus is None:
                from bus.connection import BusThread

                self._bus = BusThread(self._servers, name="updraft-logs",
                                      buffer_limit=self._buffer_limit)
                self._bus.start(wait=0)
            return self._bus

    def publish(self, subject: str, body: bytes) -> None:
        """Queue one message; never blocks."""
        self.bus.publish(subject, body)

    def for_try(self, request: Any, log_path: Path | str | None = None) -> TryLogStream:
        """The ``on_log_line`` callback for ``request`` (``log_path``: default try log)."""
        if log_path is None:
            from updraft.config import conf
            from updraft.tasklog import try_log_path

            log_path = try_log_path(conf.log_folder(), request.dag_id, request.run_id,
                                    request.task_id, request.map_index, request.try_number)
        return TryLogStream(self, request, Path(log_path))

    def flush(self, timeout: float = 2.0) -> None:
        """Wait (up to ``timeout``) until the lines went out; quiet if NATS is away."""
        if self._bus is None or not self._bus.connected:
            return
        try:
            self._bus.flush(timeout)
        except Exception:  # live logs are best effort
            log.debug("flushing live log lines failed", exc_info=True)

    def close(self) -> None:
        """Send what is buffered and close the connection (if this publisher made it)."""
        with self._lock:
            bus, self._bus = self._bus, None
        if bus is not None and self._owns_bus:
            bus.stop(timeout=2.0)


_process_publisher: LogPublisher | None = None
_process_lock = threading.Lock()


def process_publisher() -> LogPublisher | None:
    """This process's LogPublisher, or None when live logs are off (``[logging] live_logs``)
    or no NATS server is configured. Its connection is made lazily, in the background."""
    global _process_publisher
    from updraft.config import conf

    if not conf.getboolean("logging", "live_logs") or \
            not str(conf.get("nats", "servers") or "").strip():
        return None
    with _process_lock:
        if _process_publisher is None:
            import atexit

            _process_publisher = LogPublisher()
            atexit.register(_process_publisher.flush, 2.0)
        return _process_publisher


def run_with_live_logs(request: Any, run: Callable[[Callable[[str], None] | None], Any]) -> Any:
    """Call ``run(on_log_line)`` with a live-log callback for ``request`` (None when off),
    and publish the end-of-log marker afterwards. For executors' worker functions."""
    try:
        publisher = process_publisher()
        stream = publisher.for_try(request) if publisher is not None else None
    except Exception:  # live logs must never stop a task
        log.debug("live logs unavailable", exc_info=True)
        stream = None
    try:
        return run(stream)
    finally:
        if stream is not None:
            try:
                stream.close()
                # The lines go out in the background; only the first try of a process
                # gives the lazy connection a moment, and the process flushes at exit.
                _wait_connected(publisher, 2.0)
            except Exception:
                log.debug("could not publish the end of a live log", exc_info=True)


_first_connection_waited = False


def _wait_connected(publisher: LogPublisher, timeout: float) -> None:
    """Once per process, give the lazy connection a moment; never again (NATS being down
    must not slow every try)."""
    global _first_connection_waited
    if _first_connection_waited:
        return
    _first_connection_waited = True
    import time

    deadline = time.monotonic() + timeout
    bus = publisher.bus
    while not bus.connected and time.monotonic() < deadline:
        time.sleep(0.02)


__all__ = ["LogPublisher", "TryLogStream", "process_publisher", "run_with_live_logs"]
