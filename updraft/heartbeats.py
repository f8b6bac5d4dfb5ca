"""Heartbeats of running tries, from the process that supervises them.

One thread per process marks every try running here as alive with one UPDATE every
``[scheduler] task_heartbeat_interval`` seconds. With process isolation that process is
the executor slot's (the try's own process may hold the GIL in a long C call and still
look alive). The same statement tells a try that it should stop: when a try's row is no
longer ``running`` under its try number (marked failed or success, cleared, timed out with
its run, deleted), ``on_gone(state)`` is called so its supervisor stops the try's process.
While the store is away a missed beat is retried next interval; the log says so once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from updraft.state import TaskInstanceState as TI

log = logging.getLogger("updraft.runtime")

HeartbeatKey = tuple[str, str, str, int, int]
"""(dag_id, run_id, task_id, map_index, try_number)."""


class _Entry:
    __slots__ = ("on_gone", "store_url", "try_id")

    def __init__(self, store_url: str | None, try_id: str | None,
                 on_gone: Callable[[str], None] | None) -> None:
        self.store_url = store_url
        self.try_id = try_id
        self.on_gone = on_gone


class Heartbeats:
    """The heartbeat thread of this process (see the module docstring)."""

    def __init__(self) -> None:
        self._entries: dict[HeartbeatKey, _Entry] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._reporter = None

    def add(self, key: HeartbeatKey, store_url: str | None, *, try_id: str | None = None,
            on_gone: Callable[[str], None] | None = None) -> None:
        """Beat for ``key`` until ``remove``; ``on_gone(state)`` when its row moves on."""
        with self._lock:
            self._entries[key] = _Entry(store_url, try_id, on_gone)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="updraft-heartbeat",
                                                daemon=True)
                self._thread.start()

    def remove(self, key: HeartbeatKey) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _loop(self) -> None:
        from updraft.config import conf
        from updraft.store.outage import OutageReporter

        self._reporter = OutageReporter("task heartbeats", log)
        interval = conf.getfloat("scheduler", "task_heartbeat_interval")
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            with self._lock:
                by_url: dict[str | None, dict[HeartbeatKey, _Entry]] = {}
                for key, entry in self._entries.items():
                    by_url.setdefault(entry.store_url, {})[key] = entry
            for url, entries in by_url.items():
                try:
                    gone = self._beat(url, entries)
                except Exception as exc:  # noqa: BLE001  (retried next interval)
                    from updraft.store.outage import is_store_unavailable

                    if is_store_unavailable(exc):
                        self._reporter.failed(exc)
                    else:
                        log.warning("task heartbeat failed", exc_info=True)
                    continue
                self._reporter.succeeded()
                for key, state in gone.items():
                    entry = entries[key]
                    with self._lock:
                        current = self._entries.get(key)
                    if current is entry and entry.on_gone is not None:
                        try:
                            entry.on_gone(state)
                        except Exception:  # noqa: BLE001
                            log.exception("stopping a try whose row moved on failed")

    @staticmethod
    def _beat(url: str | None, entries: dict[HeartbeatKey, _Entry]) -> dict[HeartbeatKey, str]:
        """One UPDATE for the tries of one store; returns the tries whose row moved on."""
        from sqlalchemy import select, tuple_, update

        from updraft.store.engine import session_scope
        from updraft.store.models import TaskInstanceModel as T, utcnow

        keys = list(entries)
        gone: dict[HeartbeatKey, str] = {}
        with session_scope(url) as session:
            result = session.execute(update(T).where(
                tuple_(T.dag_id, T.run_id, T.task_id, T.map_index, T.try_number).in_(keys),
                T.state == str(TI.RUNNING)).values(heartbeat_at=utcnow()))
            if result.rowcount >= len(keys):
                return gone
            rows = session.execute(select(
                T.dag_id, T.run_id, T.task_id, T.map_index, T.try_number, T.try_id, T.state
            ).where(tuple_(T.dag_id, T.run_id, T.task_id, T.map_index).in_(
                [key[:4] for key in keys]))).all()
        found = {(r.dag_id, r.run_id, r.task_id, r.map_index): r for r in rows}
        for key, entry in entries.items():
            row = found.get(key[:4])
            if row is None:
                gone[key] = "deleted"
            elif row.state != str(TI.RUNNING) or row.try_number != key[4] or \
                    (entry.try_id is not None and row.try_id != entry.try_id):
                gone[key] = row.state if row.try_number == key[4] else \
                    f"{row.state} (try {row.try_number})"
        return gone


heartbeats = Heartbeats()

__all__ = ["HeartbeatKey", "Heartbeats", "heartbeats"]
