"""Riding out a store outage: retry with backoff, and say so once per outage.

Every node keeps working through a database that is restarting, stalled or briefly
unreachable: an operation that fails because the store is away is retried with exponential
backoff (0.2 s doubling to 5 s) until it succeeds or its caller gives up. The log gets one
warning when an outage starts and one line when the store is back, with how long it was
away, never a line per attempt.

What counts as "the store is away" (``is_store_unavailable``): a lost or refused connection,
a server shutting down, a pool timeout, SQLite's "database is locked". An error of the
statement itself (an IntegrityError, a syntax error) is not retried: it would fail again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger("updraft.store")
T = TypeVar("T")

FIRST_PAUSE = 0.2
MAX_PAUSE = 5.0


def is_store_unavailable(exc: BaseException) -> bool:
    """True if ``exc`` says the store cannot be reached now (worth retrying later)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError)):
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError,
                        sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.StatementError) and exc.orig is not None:
        return is_store_unavailable(exc.orig) if isinstance(exc.orig, BaseException) else False
    return isinstance(exc, (ConnectionError, TimeoutError))


class OutageReporter:
    """Logs the start and the end of an outage once each (thread-safe)."""

    def __init__(self, what: str, logger: logging.Logger | None = None) -> None:
        self.what = what
        self._log = logger or log
        self._lock = threading.Lock()
        self._since: float | None = None

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException | str) -> None:
        """``exc``: the error, or a description of it (from another process)."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        why = _first_line(exc) if isinstance(exc, str) else \
            f"{type(exc).__name__}: {_first_line(exc)}"
        self._log.warning("%s: the store is unreachable (%s); retrying with backoff until "
                          "it is back", self.what, why)

    def succeeded(self) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None:
            self._log.warning("%s: the store is back after %.1f s", self.what,
                              time.monotonic() - since)


def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""


def retry_while_unavailable(fn: Callable[[], T], *, what: str,
                            reporter: OutageReporter | None = None,
                            give_up: Callable[[], bool] | None = None,
                            deadline: float | None = None) -> T:
    """``fn()``, retried with backoff while the store is unavailable.

    Raises the store's error if ``give_up()`` turns true or the monotonic ``deadline``
    passes; any other error at once.
    """
    reporter = reporter or OutageReporter(what)
    pause = FIRST_PAUSE
    while True:
        try:
            result = fn()
        except Exception as exc:
            if not is_store_unavailable(exc):
                raise
            reporter.failed(exc)
            if (give_up is not None and give_up()) or \
                    (deadline is not None and time.monotonic() + pause > deadline):
                raise
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
            continue
        reporter.succeeded()
        return result


__all__ = ["OutageReporter", "is_store_unavailable", "retry_while_unavailable"]
