"""The scheduler's view of each running run's task instances, kept current cheaply.

A run's snapshot (``updraft.runlogic.RunSnapshot``) is read whole the first time, after a
structural change (an expansion, a clear) and on every slow timer tick (a new generation:
the store is the truth, this cache only saves reads). In between, only task instances that
changed are read again. Which ones changed comes from the ``ti_event`` table, the story
every state change writes:

- On SQLite, writers take turns, so event ids grow in commit order: the events after the
  last id seen name exactly the task instances changed since, and those rows are read again
  by key.
- On PostgreSQL and MariaDB, ids are handed out before commit, so a lower id may appear
  later; there the run's rows with ``updated_at`` within a margin of the newest seen are
  read again instead.

Reading the events also serves the scheduler otherwise: new events are handed over for
publishing on the bus, and runs changed by someone else (a worker, a command) are marked
for a look, unless the change was only a try being queued or started.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select

from updraft.runlogic import RunSnapshot
from updraft.state import ACTIVE_STATES
from updraft.store.models import TaskInstanceModel, TiEvent, utcnow

_TI = TaskInstanceModel.__table__
_EVENTS = TiEvent.__table__
_COLUMNS = (_TI.c.task_id, _TI.c.map_index, _TI.c.state, _TI.c.next_retry_at, _TI.c.updated_at)
_RUN_ROWS = select(*_COLUMNS).where(_TI.c.dag_id == bindparam("dag"),
                                    _TI.c.run_id == bindparam("run"))
_TASK_ROWS = _RUN_ROWS.where(_TI.c.task_id.in_(bindparam("tasks", expanding=True)))
_RECENT_ROWS = _RUN_ROWS.where(_TI.c.updated_at >= bindparam("since",
                                                             type_=_TI.c.updated_at.type))
#: Other machines' clocks and the time between a writer's timestamp and its commit.
UPDATED_AT_MARGIN = timedelta(seconds=2)
#: A try that was queued or started unlocks no other task: no need to look at its run.
_NOTHING_TO_DECIDE = ACTIVE_STATES
EVENT_BATCH = 5000
_NEW_EVENTS = select(_EVENTS).where(_EVENTS.c.id > bindparam("after")).order_by(
    _EVENTS.c.id).limit(EVENT_BATCH)


@dataclass
class _Entry:
    snapshot: RunSnapshot
    generation: int
    newest: datetime | None = None  # newest updated_at seen (PostgreSQL, MariaDB)
    changed: set = field(default_factory=set)  # keys named by events since (SQLite)


class SnapshotCache:
    """Snapshots of running runs, the event cursor and what the events said."""

    def __init__(self, node_id: str, *, event_feed: bool, keep_events: bool) -> None:
        self.node_id = node_id
        #: True on SQLite: changes come from the event ids (see the module docstring).
        self.event_feed = event_feed
        self.keep_events = keep_events
        self.generation = 0
        self.last_event_id = 0
        #: Events read and not yet taken for publishing (when keep_events).
        self.unpublished: list[Any] = []
        #: Runs that someone other than this scheduler changed since the last take.
        self.touched: set[tuple[str, str]] = set()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._reread: set[tuple[str, str]] = set()
        self._reread_lock = threading.Lock()

    def start_at(self, last_event_id: int) -> None:
        """Ignore events before this id (a new scheduler reads every run whole anyway)."""
        self.last_event_id = last_event_id

    def new_generation(self) -> None:
        """Read every run whole from now on (the slow timer's reconciliation)."""
        self.generation += 1

    def reread(self, key: tuple[str, str]) -> None:
        """Read this run whole at its next look (thread-safe: commands call it)."""
        with self._reread_lock:
            self._reread.add(key)

    def drop(self, key: tuple[str, str]) -> None:
        """Forget a run (finished, restarted, or its task instances were restructured)."""
        self._entries.pop(key, None)

    def take_touched(self) -> set[tuple[str, str]]:
        touched, self.touched = self.touched, set()
        return touched

    def take_unpublished(self) -> list[Any]:
        rows, self.unpublished = self.unpublished, []
        return rows

    def ingest(self, session) -> None:
        """Read the events written since the last call."""
        while True:
            rows = session.execute(_NEW_EVENTS, {"after": self.last_event_id}).all()
            if not rows:
                return
            self.last_event_id = rows[-1].id
            if self.keep_events:
                self.unpublished.extend(rows)
            for row in rows:
                key = (row.dag_id, row.run_id)
                entry = self._entries.get(key)
                if entry is not None:
                    entry.changed.add((row.task_id, row.map_index))
                if row.node != self.node_id and row.new_state not in _NOTHING_TO_DECIDE:
                    self.touched.add(key)
            if len(rows) < EVENT_BATCH:
                return

    def get(self, session, dag_id: str, run_id: str) -> RunSnapshot:
        """The run's snapshot, brought up to date with what changed since the last call."""
        key = (dag_id, run_id)
        with self._reread_lock:
            whole = key in self._reread
            self._reread.discard(key)
        entry = self._entries.get(key)
        if whole or entry is None or entry.generation != self.generation:
            return self._read_whole(session, key)
        if self.event_feed:
            self.ingest(session)
            if entry.changed:
                changed, entry.changed = entry.changed, set()
                rows = session.execute(_TASK_ROWS, {"dag": dag_id, "run": run_id, "tasks": sorted(
                    {task_id for task_id, _ in changed})}).all()
                rows = [r for r in rows if (r.task_id, r.map_index) in changed]
                entry.snapshot.update(rows)
                gone = changed - {(r.task_id, r.map_index) for r in rows}
                if gone:
                    entry.snapshot.forget(gone)
            return entry.snapshot
        since = (entry.newest or utcnow()) - UPDATED_AT_MARGIN
        rows = session.execute(_RECENT_ROWS, {"dag": dag_id, "run": run_id,
                                              "since": since}).all()
        entry.snapshot.update(rows)
        entry.newest = _newest(rows, entry.newest)
        return entry.snapshot

    def _read_whole(self, session, key: tuple[str, str]) -> RunSnapshot:
        if self.event_feed:
            # Events up to here are reflected in what is read next.
            self.ingest(session)
        rows = session.execute(_RUN_ROWS, {"dag": key[0], "run": key[1]}).all()
        snapshot = RunSnapshot()
        snapshot.update(rows)
        self._entries[key] = _Entry(snapshot, self.generation, _newest(rows, None))
        return snapshot


def _newest(rows, newest: datetime | None) -> datetime | None:
    for row in rows:
        if row.updated_at is not None and (newest is None or row.updated_at > newest):
            newest = row.updated_at
    return newest


__all__ = ["SnapshotCache", "UPDATED_AT_MARGIN"]
