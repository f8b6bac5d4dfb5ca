"""The log of one task try: everything the task logs or prints goes to its own file.

Workers run several tries at once in threads that share ``sys.stdout``; a router sends each
thread's output to the log of the try it runs. Registered secrets are masked on the way.
An optional ``on_line`` callback receives each line as it is written (live logs on the bus).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

LOG_FORMAT = "[%(asctime)s] {%(filename)s:%(lineno)d} %(levelname)s - %(message)s"


def try_log_path(base: Path | str, dag_id: str, run_id: str, task_id: str, map_index: int,
                 try_number: int) -> Path:
    """Where the log of one try lives (Airflow's layout)."""
    index = f"map_index={map_index}{os.sep}" if map_index >= 0 else ""
    return Path(f"{base}{os.sep}dag_id={dag_id}{os.sep}run_id={run_id}{os.sep}"
                f"task_id={task_id}{os.sep}{index}attempt={try_number}.log")


class TryLogSink:
    """Appends masked text to a try's log file and reports complete lines."""

    def __init__(self, path: Path, on_line: Callable[[str], None] | None = None,
                 echo: io.TextIOBase | None = None):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  (closed in close())
        self._on_line = on_line
        self._echo = echo
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        from updraft.secrets import redact

        if not text:
            return
        text = redact(text)
        with self._lock:
            self._file.write(text)
            self._file.flush()
            if self._echo is not None:
                self._echo.write(text)
            if self._on_line is not None:
                buffered = self._partial + text
                *lines, self._partial = buffered.split("\n")
                for line in lines:
                    try:
                        self._on_line(line)
                    except Exception:  # noqa: BLE001  (a lost live line must not fail the task)
                        pass

    def close(self) -> None:
        with self._lock:
            if self._partial and self._on_line is not None:
                try:
                    self._on_line(self._partial)
                except Exception:  # noqa: BLE001
                    pass
            self._partial = ""
            self._file.close()


class _ThreadRoutedStream(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr and sends each thread's writes to its try log."""

    def __init__(self, original):
        self.original = original

    def write(self, text: str) -> int:
        sink = _routes.get(threading.get_ident())
        if sink is not None:
            sink.write(text)
        else:
            self.original.write(text)
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self):  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_routes: dict[int, TryLogSink] = {}
_install_lock = threading.Lock()


def _install_router() -> None:
    with _install_lock:
        if not isinstance(sys.stdout, _ThreadRoutedStream):
            sys.stdout = _ThreadRoutedStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadRoutedStream):
            sys.stderr = _ThreadRoutedStream(sys.stderr)


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record, datefmt=None):  # noqa: N802  (logging's name)
        when = datetime.fromtimestamp(record.created, timezone.utc)
        return when.isoformat(timespec="milliseconds").replace("+00:00", "+0000")


class _RoutingHandler(logging.Handler):
    """One handler on the root logger, installed once per process: each record goes to the
    try log of the thread that logged it, if that thread runs a try."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(_UtcFormatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        sink = _routes.get(record.thread)
        if sink is None:
            return
        try:
            sink.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001
            self.handleError(record)


_handler: _RoutingHandler | None = None


def _install_handler() -> None:
    """Put the routing handler on the root logger (again, if logging was reconfigured)."""
    global _handler
    from updraft.secrets import get_secrets_masker

    root = logging.getLogger()
    with _install_lock:
        if _handler is None:
            _handler = _RoutingHandler()
            _handler.addFilter(get_secrets_masker())
        if _handler not in root.handlers:
            root.addHandler(_handler)
        if root.level > logging.INFO:
            root.setLevel(logging.INFO)


@contextmanager
def capture_try_log(path: Path, on_line: Callable[[str], None] | None = None,
                    echo: io.TextIOBase | None = None,
                    level: int | str | None = None) -> Iterator[TryLogSink]:
    """Send this thread's logging and prints to the try log at ``path`` while in the block."""
    _install_router()
    _install_handler()
    sink = TryLogSink(path, on_line=on_line, echo=echo)
    thread_id = threading.get_ident()
    task_logger = logging.getLogger("updraft.task")
    wanted = level or os.environ.get("UPDRAFT__LOGGING__LEVEL", "INFO")
    if isinstance(wanted, str):
        wanted = logging.getLevelName(wanted.upper())
        if not isinstance(wanted, int):
            wanted = logging.INFO
    if wanted != task_logger.level:
        # Set and left (setting a level clears every logger's cache): tries of one process
        # share the configured level.
        task_logger.setLevel(wanted)
    _routes[thread_id] = sink
    try:
        yield sink
    finally:
        _routes.pop(thread_id, None)
        sink.close()
