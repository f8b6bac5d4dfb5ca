"""Recording why a task instance is held back, as the scheduler decides (the "why not
running" story of issue 16).

The scheduler knows, as it decides, why a task instance does not move on: ``decide`` names
unmet upstream tasks, depends_on_past, retry and reschedule times; dispatch names the limit
that kept a scheduled task instance from being queued (its pool, the DAG's
max_active_tasks, the task's limits, the executor's free slots). This module keeps what it
last recorded for each task instance and writes only what changed: all changes of one pass
in one executemany UPDATE (``flush``), none at all in a pass where nothing changed.
Queueing clears the columns in the UPDATE that queues (``queue_task_instances``), so a
chain of tasks writes no reason per hop.

A reason is stored with the state it was recorded in; readers (``updraft.store.waiting``)
ignore it once the task instance left that state, so no other transition has to clear it.
After a restart the map is empty: current reasons are written once more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import and_, bindparam, case, update
from sqlalchemy.orm import Session

from updraft.runlogic import SCHEDULED_WAIT, waiting_check
from updraft.state import TaskInstanceState as TI
from updraft.store.models import TaskInstanceModel
from updraft.store.waiting import encode_waiting_reason

_TI = TaskInstanceModel.__table__
#: decide's reasons that are not recorded: dispatch knows the real one for a scheduled task
#: instance, and an expansion happens in the same pass.
_NOT_RECORDED = frozenset({"slot", "expanding"})
#: Built once. ``updated_at`` is set to itself: a reason is not a change the scheduler's
#: snapshots must read again (``scheduler.snapshots``). The state guard keeps a reason off
#: a row that moved on meanwhile; a row that already holds the same reason (written before
#: this scheduler started) keeps its ``waiting_since``.
_REASON = bindparam("v_reason", type_=_TI.c.waiting_reason.type)
_WRITE = update(_TI).where(and_(
    _TI.c.dag_id == bindparam("k_dag"), _TI.c.run_id == bindparam("k_run"),
    _TI.c.task_id == bindparam("k_task"), _TI.c.map_index == bindparam("k_index"),
    _TI.c.state == bindparam("k_state"))).ordered_values(
    # waiting_since first: MariaDB assigns left to right, so the CASE must still see the
    # old waiting_reason.
    (_TI.c.waiting_since, case((and_(_TI.c.waiting_reason == _REASON,
                                     _TI.c.waiting_since.is_not(None)), _TI.c.waiting_since),
                               else_=bindparam("v_since", type_=_TI.c.waiting_since.type))),
    (_TI.c.waiting_reason, _REASON),
    (_TI.c.updated_at, _TI.c.updated_at)).execution_options(synchronize_session=False)


class Recorded(NamedTuple):
    """What was recorded for one task instance (``state``: the state it was recorded in)."""

    state: TI
    check: str
    reason: str
    since: datetime

    def as_json(self) -> str:
        return encode_waiting_reason(str(self.state), [(self.check, self.reason)])


class WaitingReasons:
    """The scheduler's record of why task instances are held back, by run."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], dict[tuple[str, int], Recorded]] = {}
        self._pending: dict[tuple[str, str, str, int], Recorded] = {}
        #: Statements written (a test's and a benchmark's measure).
        self.writes = 0

    @property
    def pending(self) -> bool:
        return bool(self._pending)

    def _note(self, run: dict, dag_id: str, run_id: str, key: tuple[str, int], state: TI,
              check: str, reason: str, now: datetime) -> None:
        old = run.get(key)
        if old is not None and old.state is state and old.reason == reason:
            return
        since = old.since if old is not None and old.state is state and \
            old.check == check else now
        run[key] = new = Recorded(state, check, reason, since)
        self._pending[(dag_id, run_id, *key)] = new

    def note_run(self, dag_id: str, run_id: str, states: Mapping[tuple[str, int], TI],
                 waiting: Mapping[tuple[str, int], str], now: datetime) -> None:
        """decide's reasons for one run: ``states`` as decided on (``TI`` members, as in a
        ``RunSnapshot``), ``waiting`` the decision's (scheduled task instances are
        dispatch's to explain). Runs on every look at a run: unchanged reasons cost a dict
        lookup each, and no statement."""
        run = self._runs.get((dag_id, run_id))
        if run is None:
            if not waiting:
                return
            run = self._runs[(dag_id, run_id)] = {}
        elif len(run) > len(waiting):
            # Some moved on (queued elsewhere, finished, cleared): forget them, so that a
            # return to the old state is written again. Their stored reason names that old
            # state, which readers ignore.
            get = states.get
            for key in [k for k, rec in run.items() if get(k) is not rec.state]:
                del run[key]
        get = run.get
        for key, reason in waiting.items():
            if reason is SCHEDULED_WAIT:
                continue
            state = states[key]
            old = get(key)
            if old is not None and old.state is state and old.reason == reason:
                continue  # recorded already: most task instances on most passes
            check = waiting_check(reason)
            if check in _NOT_RECORDED:
                continue
            self._note(run, dag_id, run_id, key, state, check, reason, now)

    def note_held(self, dag_id: str, run_id: str, task_id: str, map_index: int, check: str,
                  reason: str, now: datetime) -> None:
        """Dispatch kept a scheduled task instance from being queued, for ``reason``."""
        run = self._runs.setdefault((dag_id, run_id), {})
        self._note(run, dag_id, run_id, (task_id, map_index), TI.SCHEDULED, check, reason,
                   now)

    def queued(self, keys: Iterable[tuple[str, str, str, int]]) -> None:
        """These were queued: the queueing UPDATE cleared their reasons."""
        for dag_id, run_id, task_id, map_index in keys:
            run = self._runs.get((dag_id, run_id))
            if run is not None:
                run.pop((task_id, map_index), None)
            self._pending.pop((dag_id, run_id, task_id, map_index), None)

    def forget_run(self, dag_id: str, run_id: str) -> None:
        """The run ended (or is no longer running): nothing of it waits."""
        if self._runs.pop((dag_id, run_id), None) is not None and self._pending:
            for key in [k for k in self._pending if k[0] == dag_id and k[1] == run_id]:
                del self._pending[key]

    def flush(self, session: Session) -> int:
        """Write the reasons that changed since the last flush, in one executemany in key
        order (the caller commits); returns how many rows were asked for."""
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        session.execute(_WRITE, [
            {"k_dag": key[0], "k_run": key[1], "k_task": key[2], "k_index": key[3],
             "k_state": str(rec.state), "v_reason": rec.as_json(), "v_since": rec.since}
            for key, rec in sorted(pending.items())])
        self.writes += 1
        return len(pending)


__all__ = ["Recorded", "WaitingReasons"]
