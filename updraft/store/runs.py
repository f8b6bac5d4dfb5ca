"""Store operations on DAG runs and task instances, shared by ``dag.test`` and the scheduler.

Every function takes the caller's session and never commits. State changes are
compare-and-set updates (``WHERE state IN (expected)``) and each one writes a ``ti_event``
row, so the story of a task instance can always be told.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.orm import Session

from updraft.runlogic import PastView, TiView
from updraft.state import (
    FINISHED_RUN_STATES,
    FINISHED_STATES,
    SCHEDULABLE_STATES,
    DagRunState,
    TaskInstanceState as TI,
)
from updraft.store.models import (
    DagRunModel,
    TaskInstanceModel,
    TiEvent,
    XComModel,
    utcnow,
)
from updraft.store.ti_state import update_many


class QueuedTry(NamedTuple):
    """A try that ``queue_task_instances`` queued: its number and its identity."""

    try_number: int
    try_id: str


def new_try_id() -> str:
    """A fresh identity for one queueing of a try (the claim must name it: ADR 2)."""
    import uuid

    return uuid.uuid4().hex


@dataclass(frozen=True)
class TaskRowDefaults:
    """What a new task instance row copies from its task."""

    task_id: str
    max_tries: int
    pool: str
    pool_slots: int
    queue: str
    priority_weight: int
    operator: str


def priority_weights(tasks: Mapping[str, Any]) -> dict[str, int]:
    """Effective priority of each task's new task instance under its weight rule: the
    registered priority-weight strategy it names (``downstream``, ``upstream``, ``absolute``
    or a custom one; see ``updraft.priority_weights``)."""
    from updraft.priority_weights import compute_weights

    return compute_weights(tasks)


def row_defaults_for(tasks: Mapping[str, Any]) -> list[TaskRowDefaults]:
    """Row defaults for every task (operators or serialized tasks with the same attributes)."""
    weights = priority_weights(tasks)
    return [TaskRowDefaults(task_id=tid, max_tries=int(t.retries or 0), pool=t.pool,
                            pool_slots=int(t.pool_slots), queue=t.queue,
                            priority_weight=weights[tid], operator=t.operator_name)
            for tid, t in tasks.items()]


def add_event(session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int,
              try_number: int, old: str | None, new: str | None, cause: str,
              node: str | None = None, when: datetime | None = None) -> None:
    """Write one line of a task instance's story."""
    add_events(session, [dict(dag_id=dag_id, run_id=run_id, task_id=task_id,
                              map_index=map_index, try_number=try_number, old_state=old,
                              new_state=new, cause=cause, node=node, timestamp=when or utcnow())])


def add_events(session: Session, rows: list[dict]) -> None:
    """Write several lines of stories in one statement (dicts with TiEvent's columns)."""
    if not rows:
        return
    for row in rows:
        row["cause"] = (row.get("cause") or "")[:2000]
    session.execute(_EVENT_INSERT, rows)


_EVENT_INSERT = insert(TiEvent.__table__)


def latest_bundle_version(session: Session) -> str | None:
    """The DAG bundle version a new run is pinned to (``updraft.store.bundles``)."""
    from updraft.store.bundles import latest_bundle_version as latest

    return latest(session)


def create_dag_run(session: Session, *, dag_id: str, run_id: str, run_type: str,
                   logical_date: datetime | None, data_interval: tuple | None,
                   conf: dict | None, tasks: Iterable[TaskRowDefaults],
                   state: DagRunState = DagRunState.QUEUED, dag_hash: str | None = None,
                   external_trigger: bool = False, triggered_by: str | None = None,
                   now: datetime | None = None) -> DagRunModel:
    """Insert a run and one task instance (map index -1) per task; the caller commits."""
    now = now or utcnow()
    run = DagRunModel(
        dag_id=dag_id, run_id=run_id, run_type=str(run_type), state=str(state),
        logical_date=logical_date,
        data_interval_start=data_interval[0] if data_interval else None,
        data_interval_end=data_interval[1] if data_interval else None,
        conf=conf or {}, queued_at=now, external_trigger=external_trigger,
        triggered_by=triggered_by, dag_hash=dag_hash,
        bundle_version=latest_bundle_version(session),  # the run's code (ADR 12)
        start_date=now if state == DagRunState.RUNNING else None)
    session.add(run)
    session.flush()
    rows = [dict(dag_id=dag_id, run_id=run_id, task_id=t.task_id, map_index=-1,
                 state=str(TI.NONE), try_number=0, max_tries=t.max_tries, pool=t.pool,
                 pool_slots=t.pool_slots, queue=t.queue, priority_weight=t.priority_weight,
                 operator=t.operator, updated_at=now) for t in tasks]
    if rows:
        session.execute(insert(TaskInstanceModel.__table__), rows)
    return run


def get_run(session: Session, dag_id: str, run_id: str) -> DagRunModel | None:
    return session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                    DagRunModel.run_id == run_id))


def ti_views(session: Session, dag_id: str, run_id: str) -> list[TiView]:
    """The run's task instances as the run logic sees them."""
    rows = session.execute(select(
        TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state,
        TaskInstanceModel.next_retry_at).where(TaskInstanceModel.dag_id == dag_id,
                                               TaskInstanceModel.run_id == run_id))
    return [TiView(r.task_id, r.map_index, TI(r.state), r.next_retry_at) for r in rows]


def past_view(session: Session, dag_id: str, run_id: str, logical_date: datetime | None,
              task_ids: Iterable[str]) -> PastView:
    """The run before this one by logical date, for depends_on_past."""
    task_ids = list(task_ids)
    if logical_date is None or not task_ids:
        return PastView()
    prev = session.execute(
        select(DagRunModel.run_id, DagRunModel.logical_date)
        .where(DagRunModel.dag_id == dag_id, DagRunModel.logical_date < logical_date,
               DagRunModel.run_id != run_id)
        .order_by(DagRunModel.logical_date.desc()).limit(1)).first()
    if prev is None:
        return PastView()
    states = {(r.task_id, r.map_index): TI(r.state) for r in session.execute(
        select(TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state)
        .where(TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == prev.run_id))}
    history = {r[0] for r in session.execute(
        select(TaskInstanceModel.task_id).distinct()
        .join(DagRunModel, and_(DagRunModel.dag_id == TaskInstanceModel.dag_id,
                                DagRunModel.run_id == TaskInstanceModel.run_id))
        .where(TaskInstanceModel.dag_id == dag_id, DagRunModel.logical_date < logical_date,
               TaskInstanceModel.task_id.in_(task_ids)))}
    return PastView(exists=True, logical_date=prev.logical_date, states=states,
                    tasks_with_history=frozenset(history))


_TI = TaskInstanceModel.__table__


def _current_rows(session: Session, dag_id: str, run_id: str,
                  keys: list[tuple[str, int]]) -> dict[tuple[str, int], Any]:
    """State and try number of the given task instances of one run, in one query."""
    task_ids = sorted({task_id for task_id, _ in keys})
    rows = session.execute(select(_TI.c.task_id, _TI.c.map_index, _TI.c.state,
                                  _TI.c.try_number, _TI.c.next_method).where(
        _TI.c.dag_id == dag_id, _TI.c.run_id == run_id, _TI.c.task_id.in_(task_ids)))
    wanted = set(keys)
    return {(r.task_id, r.map_index): r for r in rows if (r.task_id, r.map_index) in wanted}


def set_ti_states(session: Session, dag_id: str, run_id: str,
                  changes: Iterable[tuple[str, int, TI, str]], node: str | None = None,
                  now: datetime | None = None,
                  expected: Mapping[tuple[str, int], TI] | None = None) -> int:
    """Apply the run logic's state changes (a compare-and-set per task instance).

    ``expected``: the states the changes were decided on (the scheduler's snapshot). A task
    instance found in another state was changed meanwhile (marked or cleared through the
    API, say): it is left alone, and the next pass decides on what it is now.
    """
    now = now or utcnow()
    changes = list(changes)
    if not changes:
        return 0
    current = _current_rows(session, dag_id, run_id, [(t, i) for t, i, _s, _c in changes])
    planned: list[tuple] = []
    causes: dict[tuple[str, int], tuple[str, str]] = {}
    for task_id, map_index, new_state, cause in changes:
        row = current.get((task_id, map_index))
        if row is None or row.state == str(new_state):
            continue
        if expected is not None and (task_id, map_index) in expected and \
                row.state != str(expected[(task_id, map_index)]):
            continue
        values: dict[str, Any] = {"state": str(new_state), "updated_at": now}
        if new_state in FINISHED_STATES:
            values.update(start_date=func.coalesce(_TI.c.start_date, now), end_date=now)
        planned.append(((task_id, map_index), row.state, row.try_number, values))
        causes[(task_id, map_index)] = (str(new_state), cause)
    done = update_many(session, dag_id, run_id, planned, writer="set_ti_states")
    events = [dict(dag_id=dag_id, run_id=run_id, task_id=key[0], map_index=key[1],
                   try_number=old_try, old_state=old_state, new_state=causes[key][0],
                   cause=causes[key][1], node=node, timestamp=now)
              for key, old_state, old_try, _values in planned if key in done]
    add_events(session, events)
    return len(events)


def queue_task_instances(session: Session, dag_id: str, run_id: str,
                         keys: Iterable[tuple[str, int]], node: str | None = None,
                         executor: str | None = None,
                         now: datetime | None = None,
                         current: Mapping[tuple[str, int], Any] | None = None,
                         ) -> dict[tuple[str, int], QueuedTry]:
    """Move ready task instances to queued, starting their next try; return each queued
    try's number and identity (``try_id``, which the worker's claim must name).

    A reschedule or a resumed deferral continues the same try; anything else starts a new
    one. Only rows still in a schedulable state are queued (a concurrent clear or mark wins).
    ``current``: the rows' state, try_number and next_method as the caller read them in
    this transaction (else they are read here); the update compares and sets on them. The
    same update clears why the scheduler held them back (``waiting_reason``).
    """
    now = now or utcnow()
    keys = list(keys)
    if not keys:
        return {}
    if current is None or any(key not in current for key in keys):
        current = _current_rows(session, dag_id, run_id, keys)
    rescheduled = _mid_reschedule_keys(session, dag_id, run_id, [
        (k, r.try_number) for k, r in current.items()
        if r.state == str(TI.SCHEDULED) and r.try_number])
    planned: list[tuple] = []
    for key in keys:
        row = current.get(key)
        if row is None or row.state not in SCHEDULABLE_STATES:
            continue
        # A reschedule continues the same try, and so does a deferred try resuming
        # (next_method set: Airflow keeps the try number across a deferral).
        continues = row.state == str(TI.UP_FOR_RESCHEDULE) or key in rescheduled or \
            (row.state == str(TI.SCHEDULED) and bool(row.next_method))
        try_number = row.try_number if continues and row.try_number else row.try_number + 1
        planned.append((key, row.state, row.try_number, dict(
            state=str(TI.QUEUED), try_number=try_number, try_id=new_try_id(), worker=None,
            queued_dttm=now, queued_by=node, executor=executor, next_retry_at=None,
            waiting_reason=None, waiting_since=None, updated_at=now)))
    done = update_many(session, dag_id, run_id, planned, writer="queue_task_instances")
    queued: dict[tuple[str, int], QueuedTry] = {}
    events: list[dict] = []
    for key, old_state, _old_try, values in planned:
        if key not in done:
            continue
        try_number = values["try_number"]
        queued[key] = QueuedTry(try_number, values["try_id"])
        events.append(dict(dag_id=dag_id, run_id=run_id, task_id=key[0], map_index=key[1],
                           try_number=try_number, old_state=old_state,
                           new_state=str(TI.QUEUED),
                           cause=(f"trigger fired; try {try_number} queued to resume"
                                  if current[key].next_method else
                                  f"dependencies met; try {try_number} queued"), node=node,
                           timestamp=now))
    add_events(session, events)
    return queued


def _mid_reschedule_keys(session: Session, dag_id: str, run_id: str,
                         candidates: list[tuple[tuple[str, int], int]]) -> set[tuple[str, int]]:
    """Which of these (key, try) were rescheduled by a sensor in that same try."""
    if not candidates:
        return set()
    from updraft.store.models import TaskReschedule

    tr = TaskReschedule.__table__
    task_ids = sorted({key[0] for key, _ in candidates})
    found = {(r.task_id, r.map_index, r.try_number) for r in session.execute(
        select(tr.c.task_id, tr.c.map_index, tr.c.try_number).where(
            tr.c.dag_id == dag_id, tr.c.run_id == run_id, tr.c.task_id.in_(task_ids)))}
    return {key for key, try_number in candidates if (key[0], key[1], try_number) in found}


def xcom_lengths(session: Session, dag_id: str, run_id: str,
                 task_ids: Iterable[str]) -> dict[str, int | None]:
    """How many items each task pushed as its return value (summed over map indexes)."""
    from updraft.models.xcom import deserialize_value

    lengths: dict[str, int | None] = {}
    task_ids = list(task_ids)
    rows = session.execute(select(XComModel.task_id, XComModel.map_index, XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id,
        XComModel.task_id.in_(task_ids), XComModel.key == "return_value"))
    for row in rows:
        value = deserialize_value(row.value)
        if row.map_index >= 0:
            lengths[row.task_id] = (lengths.get(row.task_id) or 0) + 1
        else:
            lengths[row.task_id] = len(value) if hasattr(value, "__len__") else None
    for task_id in task_ids:
        lengths.setdefault(task_id, 0)
    return lengths


def expand_task(session: Session, dag_id: str, run_id: str, task_id: str, length: int,
                node: str | None = None, now: datetime | None = None) -> int:
    """Turn the placeholder (-1) of a mapped task into ``length`` task instances."""
    now = now or utcnow()
    placeholder = session.scalar(select(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == -1))
    if placeholder is None:
        return 0
    if length == 0:
        set_ti_states(session, dag_id, run_id,
                      [(task_id, -1, TI.SKIPPED, "mapped over an empty list")], node, now)
        return 0
    base = {c: getattr(placeholder, c) for c in (
        "dag_id", "run_id", "task_id", "max_tries", "pool", "pool_slots", "queue",
        "priority_weight", "operator")}
    session.execute(update(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == -1,
    ).values(map_index=0, updated_at=now))
    if length > 1:
        session.execute(insert(TaskInstanceModel), [
            {**base, "map_index": i, "state": str(TI.NONE), "try_number": 0, "updated_at": now}
            for i in range(1, length)])
    add_event(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1,
              try_number=0, old=str(placeholder.state), new=str(placeholder.state),
              cause=f"expanded into {length} mapped task instances", node=node, when=now)
    return length


def set_run_state(session: Session, run: DagRunModel, state: DagRunState,
                  now: datetime | None = None) -> bool:
    """Compare-and-set the run's state; returns whether this call changed it."""
    now = now or utcnow()
    values: dict[str, Any] = {"state": str(state), "updated_at": now}
    if state in FINISHED_RUN_STATES:
        values["end_date"] = now
    if state == DagRunState.RUNNING:
        values["start_date"] = func.coalesce(DagRunModel.start_date, now)
        values["end_date"] = None
    result = session.execute(update(DagRunModel).where(
        DagRunModel.id == run.id, DagRunModel.state == run.state).values(**values))
    if result.rowcount:
        session.refresh(run)
        return True
    return False


def skip_task_instances(session: Session, dag_id: str, run_id: str, task_ids: Iterable[str],
                        cause: str, node: str | None = None, now: datetime | None = None) -> int:
    """Mark the not-yet-started task instances of ``task_ids`` skipped (branching)."""
    now = now or utcnow()
    keys = [(r.task_id, r.map_index) for r in session.execute(
        select(TaskInstanceModel.task_id, TaskInstanceModel.map_index).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id.in_(list(task_ids)),
            TaskInstanceModel.state.in_([str(TI.NONE), str(TI.SCHEDULED)])))]
    return set_ti_states(session, dag_id, run_id,
                         [(t, i, TI.SKIPPED, cause) for t, i in keys], node, now)
