"""The changes people ask for: trigger, pause, clear, mark, delete a run.

One implementation for every door: the CLI, the scheduler's bus command handlers and the
REST API call these with their own session (the caller commits). They read the serialized
DAG from the store and never import DAG files. Errors are precise exceptions from
``updraft.exceptions`` that each door turns into its own message.

Clear and mark race with the scheduler and with the outcomes of tries, which all write with
compare-and-set. So do these: each task instance (and the run) they change is updated only if
it still holds the state and try number read a moment before; if another writer got there
first, ``ConcurrentStateChange`` is raised, the caller's transaction rolls back whole and the
request can be sent again. Nothing is ever half-applied or written over a newer outcome.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from updraft.exceptions import (
    DagNotFound,
    DagRunAlreadyExists,
    DagRunNotFound,
    ParamValidationError,
    TaskNotFound,
    UpdraftBadRequest,
    UpdraftConflict,
)
from updraft.state import (
    FINISHED_RUN_STATES,
    MARKED_STATES,
    UNFINISHED_STATES,
    DagRunState,
    DagRunType,
    TaskInstanceState as TI,
    state_values,
)
from updraft.store.models import (
    DagModel,
    DagRunModel,
    LogEvent,
    TaskInstanceModel,
    TaskInstanceTry,
    TaskReschedule,
    TiEvent,
    XComModel,
    utcnow,
)
from updraft.store.ti_state import write_state

#: Run ids: ASCII letters, digits and _ . : + ~ - or spaces, not starting with a dot or a
#: space (so never "." or "..", which no URL can carry).
RUN_ID_RE = re.compile(r"[A-Za-z0-9_:+~-][A-Za-z0-9_.:+~ -]{0,249}")
#: How deep a run's conf may nest (the JSON encoders of every node must handle it).
MAX_CONF_DEPTH = 64


class ConcurrentStateChange(UpdraftConflict):
    """Another writer changed a task instance or run between this command's read and its
    write; nothing was changed, the command may be sent again.

    A conflict: the bus answers it with the ``conflict`` code (an HTTP 409).
    """


def audit(session: Session, event: str, *, owner: str | None = None, dag_id: str | None = None,
          run_id: str | None = None, task_id: str | None = None, extra: str | None = None,
          now: datetime | None = None) -> None:
    """Record who did what in the audit log."""
    session.add(LogEvent(event=event[:60], owner=owner, dag_id=dag_id, run_id=run_id,
                         task_id=task_id, extra=(extra or "")[:4000] or None,
                         dttm=now or utcnow()))


def get_serialized_dag(session: Session, dag_id: str):
    """The newest serialized version of an active DAG, or DagNotFound."""
    from updraft.store.dags import read_dag

    dag_row = session.get(DagModel, dag_id)
    if dag_row is None:
        raise DagNotFound(f"DAG {dag_id!r} not found: no DAG file defines it (or the scheduler "
                          "has not parsed it yet)")
    if not dag_row.is_active:
        raise DagNotFound(f"DAG {dag_id!r} is not active: its file is gone or no longer "
                          "defines it")
    dag = read_dag(session, dag_id)
    if dag is None:
        raise DagNotFound(f"DAG {dag_id!r} has no serialized version in the store yet")
    return dag


def trigger_dag_run(session: Session, dag_id: str, *, conf: dict | None = None,
                    run_id: str | None = None, logical_date: datetime | None = None,
                    run_type: DagRunType = DagRunType.MANUAL, triggered_by: str = "cli",
                    owner: str | None = None, now: datetime | None = None,
                    replace_existing: bool = False) -> DagRunModel:
    """Create a queued run of ``dag_id``; the scheduler starts it."""
    from updraft.schedules import coerce_datetime
    from updraft.store.runs import create_dag_run, row_defaults_for

    now = now or utcnow()
    dag = get_serialized_dag(session, dag_id)
    if conf is not None and not isinstance(conf, dict):
        raise UpdraftBadRequest(f"conf must be a JSON object, got {type(conf).__name__}")
    check_conf_json(conf)
    try:
        dag.params.resolve(conf or {})
    except ParamValidationError as exc:
        raise ParamValidationError(f"DAG {dag_id!r} refused the run: {exc}") from None
    logical = coerce_datetime(logical_date, dag.timezone) if logical_date is not None else now
    run_id = run_id or run_type.generate_run_id(logical)
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise UpdraftBadRequest(f"invalid run id {run_id!r}: use at most 250 ASCII letters, "
                                "digits and _ . : + ~ - or spaces, not starting with a dot or "
                                "a space")
    existing = session.scalar(select(DagRunModel).where(
        DagRunModel.dag_id == dag_id,
        (DagRunModel.run_id == run_id) | (DagRunModel.logical_date == logical)))
    if existing is not None:
        if not replace_existing:
            if existing.run_id == run_id:
                raise DagRunAlreadyExists(f"A run with id {run_id!r} of DAG {dag_id!r} "
                                          "already exists")
            raise DagRunAlreadyExists(f"A run of DAG {dag_id!r} at logical date "
                                      f"{logical.isoformat()} already exists: {existing.run_id}")
        delete_dag_run(session, dag_id, existing.run_id, owner=owner, now=now)
    interval = dag.timetable.infer_manual_data_interval(run_after=logical)
    run = create_dag_run(session, dag_id=dag_id, run_id=run_id, run_type=run_type,
                         logical_date=logical, data_interval=(interval.start, interval.end),
                         conf=conf or {}, tasks=row_defaults_for(dag.task_dict),
                         state=DagRunState.QUEUED, dag_hash=dag.dag_hash,
                         external_trigger=run_type != DagRunType.SCHEDULED,
                         triggered_by=triggered_by, now=now)
    from updraft.secrets import redact

    audit(session, "trigger", owner=owner, dag_id=dag_id, run_id=run_id,
          extra=f"conf={redact(conf or {})} via {triggered_by}", now=now)
    return run


def check_conf_json(conf: Any) -> None:
    """Refuse (UpdraftBadRequest) a conf no JSON reader can take back: NaN or Infinity (bare
    NaN is not JSON), keys that are not strings, or nesting deeper than MAX_CONF_DEPTH."""
    stack = [(conf, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise UpdraftBadRequest(f"conf holds {item}, which is not valid JSON: use null or "
                                    "a string")
        if isinstance(item, (dict, list)):
            if depth > MAX_CONF_DEPTH:
                raise UpdraftBadRequest(f"conf is nested deeper than {MAX_CONF_DEPTH} levels")
            if isinstance(item, dict):
                if not all(isinstance(key, str) for key in item):
                    raise UpdraftBadRequest("conf keys must be strings")
                stack.extend((value, depth + 1) for value in item.values())
            else:
                stack.extend((value, depth + 1) for value in item)


def set_paused(session: Session, dag_id: str, paused: bool, owner: str | None = None) -> bool:
    """Pause or unpause a DAG; returns the previous value."""
    row = session.get(DagModel, dag_id)
    if row is None:
        raise DagNotFound(f"DAG {dag_id!r} not found")
    previous = row.is_paused
    row.is_paused = paused
    audit(session, "pause" if paused else "unpause", owner=owner, dag_id=dag_id)
    return previous


def delete_dag_run(session: Session, dag_id: str, run_id: str, owner: str | None = None,
                   now: datetime | None = None) -> None:
    """Delete a run with its task instances, tries, XComs and story."""
    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id))
    if run is None:
        raise DagRunNotFound(f"DagRun {run_id!r} of DAG {dag_id!r} not found")
    for model in (TaskInstanceModel, TaskInstanceTry, TaskReschedule, TiEvent, XComModel):
        session.execute(delete(model).where(model.dag_id == dag_id, model.run_id == run_id))
    session.execute(delete(DagRunModel).where(DagRunModel.id == run.id))
    audit(session, "delete_run", owner=owner, dag_id=dag_id, run_id=run_id, now=now)


def _select_runs(session: Session, dag_id: str, run_id: str | None, start: datetime | None,
                 end: datetime | None) -> list[DagRunModel]:
    query = select(DagRunModel).where(DagRunModel.dag_id == dag_id)
    if run_id is not None:
        query = query.where(DagRunModel.run_id == run_id)
    if start is not None:
        query = query.where(DagRunModel.logical_date >= start)
    if end is not None:
        query = query.where(DagRunModel.logical_date <= end)
    runs = list(session.scalars(query.order_by(DagRunModel.logical_date)))
    if run_id is not None and not runs:
        raise DagRunNotFound(f"DagRun {run_id!r} of DAG {dag_id!r} not found")
    return runs


def _relatives(dag, task_ids: set[str], upstream: bool, downstream: bool) -> set[str]:
    """``task_ids`` plus all their upstream and/or downstream tasks, at any depth."""
    result = set(task_ids)
    for task_id in task_ids:
        if upstream:
            result |= _walk(dag, task_id, "upstream_task_ids")
        if downstream:
            result |= _walk(dag, task_id, "downstream_task_ids")
    return result


def _walk(dag, task_id: str, attr: str) -> set[str]:
    found: set[str] = set()
    todo = [task_id]
    while todo:
        for rel in getattr(dag.task_dict[todo.pop()], attr):
            if rel not in found:
                found.add(rel)
                todo.append(rel)
    return found


def clear_task_instances(session: Session, dag_id: str, *, task_regex: str | None = None,
                         task_ids: Iterable[str] | None = None, run_id: str | None = None,
                         start_date: datetime | None = None, end_date: datetime | None = None,
                         upstream: bool = False, downstream: bool = False,
                         only_failed: bool = False, only_running: bool = False,
                         map_indexes: Iterable[int] | None = None, dry_run: bool = False,
                         owner: str | None = None, now: datetime | None = None) -> list[dict]:
    """Reset matching task instances so they run again; their runs go back to queued."""
    now = now or utcnow()
    dag = get_serialized_dag(session, dag_id)
    selected = set(dag.task_dict)
    if task_ids is not None:
        wanted = set(task_ids)
        unknown = wanted - selected
        if unknown:
            raise TaskNotFound(f"Task(s) {', '.join(sorted(unknown))} not found in DAG "
                               f"{dag_id!r}")
        selected = wanted
    if task_regex:
        try:
            pattern = re.compile(task_regex)
        except re.error as exc:
            raise UpdraftBadRequest(f"invalid task regex {task_regex!r}: {exc}") from None
        selected = {t for t in selected if pattern.search(t)}
    selected = _relatives(dag, selected, upstream, downstream)
    runs = _select_runs(session, dag_id, run_id, start_date, end_date)
    cleared: list[dict] = []
    for run in runs:
        query = select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id.in_(sorted(selected)))
        if map_indexes is not None:
            query = query.where(TaskInstanceModel.map_index.in_(list(map_indexes)))
        if only_failed:
            query = query.where(TaskInstanceModel.state.in_([str(TI.FAILED),
                                                             str(TI.UPSTREAM_FAILED)]))
        if only_running:
            query = query.where(TaskInstanceModel.state == str(TI.RUNNING))
        copies = _copies(session, dag_id, run.run_id, selected)
        tis = list(session.execute(query.with_only_columns(
            TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state,
            TaskInstanceModel.try_number).with_for_update()))
        for ti in tis:
            cleared.append({"dag_id": dag_id, "run_id": run.run_id, "task_id": ti.task_id,
                            "map_index": ti.map_index, "state": ti.state})
        if dry_run or not tis:
            continue
        session.execute(delete(TaskReschedule).where(
            TaskReschedule.dag_id == dag_id, TaskReschedule.run_id == run.run_id,
            TaskReschedule.task_id.in_(sorted({ti.task_id for ti in tis}))))
        for ti in tis:
            task = dag.task_dict.get(ti.task_id)
            _compare_and_set(session, dag_id, run.run_id, ti, "clear", {
                "state": str(TI.NONE),
                "max_tries": ti.try_number + (task.retries if task is not None else 0),
                "next_retry_at": None, "end_date": None, "updated_at": now})
            session.add(TiEvent(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id,
                                map_index=ti.map_index, try_number=ti.try_number,
                                old_state=ti.state, new_state=str(TI.NONE),
                                cause=f"cleared by {owner or 'someone'}", timestamp=now))
        touched = {ti.task_id for ti in tis}
        _check_same_copies(session, dag_id, run.run_id, touched, copies, "clear")
        # A mapped task cleared whole expands again from scratch; when only some of its
        # copies are cleared, the others (maybe running) are left alone.
        whole = {t for t in touched
                 if {(ti.task_id, ti.map_index) for ti in tis if ti.task_id == t}
                 == {key for key in copies if key[0] == t}}
        _collapse_mapped(session, dag, run.run_id, whole)
        session.execute(update(DagRunModel).where(DagRunModel.id == run.id).values(
            state=str(DagRunState.QUEUED), end_date=None, start_date=None, queued_at=now,
            clear_number=DagRunModel.clear_number + 1, updated_at=now))
    if not dry_run and cleared:
        audit(session, "clear", owner=owner, dag_id=dag_id, run_id=run_id,
              extra=f"{len(cleared)} task instance(s)", now=now)
    return cleared


def _compare_and_set(session: Session, dag_id: str, run_id: str, ti, verb: str,
                     values: dict[str, Any]) -> None:
    """Update one task instance only if it still holds the state and try number read before;
    ConcurrentStateChange if another writer changed it in between."""
    values = dict(values)
    # A clear or a mark ends a deferral: the next try starts in execute (ADR 11); the
    # trigger row left behind is dropped by a triggerer.
    values.update(trigger_id=None, trigger_timeout=None, next_method=None, next_kwargs=None)
    changed = write_state(
        session, ti.state, values.pop("state"),
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == ti.task_id, TaskInstanceModel.map_index == ti.map_index,
        TaskInstanceModel.try_number == ti.try_number, writer=verb, **values)
    if changed != 1:
        where = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
        raise ConcurrentStateChange(
            f"cannot {verb}: task {ti.task_id}{where} of run {run_id!r} changed while this "
            f"request was applied (it was {ti.state}, try {ti.try_number}); nothing was "
            "changed: look again and retry")


def _copies(session: Session, dag_id: str, run_id: str,
            task_ids: Iterable[str] | None = None) -> set[tuple[str, int]]:
    """(task id, map index) of the task instances of a run (of ``task_ids`` only, if given)."""
    query = select(TaskInstanceModel.task_id, TaskInstanceModel.map_index).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id)
    if task_ids is not None:
        query = query.where(TaskInstanceModel.task_id.in_(sorted(task_ids)))
    return {(r.task_id, r.map_index) for r in session.execute(query)}


def _check_same_copies(session: Session, dag_id: str, run_id: str, task_ids: set[str] | None,
                       before: set[tuple[str, int]], verb: str) -> None:
    """ConcurrentStateChange if the task instances of ``task_ids`` are not those read before
    (a mapped task expanded meanwhile): they would be changed without having been looked at."""
    if task_ids is not None:
        before = {key for key in before if key[0] in task_ids}
    now_there = _copies(session, dag_id, run_id, task_ids)
    if now_there != before:
        task_id, map_index = sorted(now_there ^ before)[0]
        raise ConcurrentStateChange(
            f"cannot {verb}: the task instances of {task_id} in run {run_id!r} changed "
            f"([{map_index}] came or went) while this request was applied; nothing was "
            "changed: look again and retry")


def _set_run_state_cas(session: Session, run: DagRunModel, verb: str,
                       values: dict[str, Any]) -> None:
    """Update a run only if it still holds the state read before (ConcurrentStateChange)."""
    changed = session.execute(update(DagRunModel).where(
        DagRunModel.id == run.id, DagRunModel.state == run.state).values(**values)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        raise ConcurrentStateChange(
            f"cannot {verb}: run {run.run_id!r} of DAG {run.dag_id!r} changed while this "
            f"request was applied (it was {run.state}); nothing was changed: look again and "
            "retry")


def _collapse_mapped(session: Session, dag, run_id: str, task_ids: set[str]) -> None:
    """A cleared mapped task expands again from scratch: keep index 0 as the placeholder."""
    for task_id in task_ids:
        task = dag.task_dict.get(task_id)
        if task is None or not task.is_mapped:
            continue
        indexes = [i for (i,) in session.execute(select(TaskInstanceModel.map_index).where(
            TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id))]
        if indexes == [-1]:
            continue
        session.execute(delete(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index > 0))
        session.execute(update(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id).values(map_index=-1))


def set_task_instance_state(session: Session, dag_id: str, run_id: str, task_id: str, *,
                            state: str, map_indexes: Iterable[int] | None = None,
                            upstream: bool = False, downstream: bool = False,
                            future: bool = False, past: bool = False,
                            owner: str | None = None, now: datetime | None = None) -> list[dict]:
    """Mark task instances success or failed by hand (with relatives and other runs)."""
    now = now or utcnow()
    if not isinstance(state, str) or state not in MARKED_STATES:
        raise UpdraftBadRequest(f"state must be success, failed or skipped, got {state!r}")
    dag = get_serialized_dag(session, dag_id)
    if task_id not in dag.task_dict:
        raise TaskNotFound(f"Task {task_id!r} not found in DAG {dag_id!r}")
    target = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                      DagRunModel.run_id == run_id))
    if target is None:
        raise DagRunNotFound(f"DagRun {run_id!r} of DAG {dag_id!r} not found")
    runs = [target]
    if (future or past) and target.logical_date is not None:
        query = select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                          DagRunModel.run_id != run_id)
        if future and not past:
            query = query.where(DagRunModel.logical_date > target.logical_date)
        elif past and not future:
            query = query.where(DagRunModel.logical_date < target.logical_date)
        runs += list(session.scalars(query))
    task_ids = _relatives(dag, {task_id}, upstream, downstream)
    changed: list[dict] = []
    for run in runs:
        query = select(TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                       TaskInstanceModel.state, TaskInstanceModel.try_number).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id.in_(sorted(task_ids)), TaskInstanceModel.state != state)
        if map_indexes is not None:
            query = query.where(TaskInstanceModel.map_index.in_(list(map_indexes)))
        tis = list(session.execute(query.with_for_update()))
        for ti in tis:
            _compare_and_set(session, dag_id, run.run_id, ti, f"mark {state}", {
                "state": state, "end_date": now, "updated_at": now,
                "start_date": func.coalesce(TaskInstanceModel.start_date, now)})
            session.add(TiEvent(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id,
                                map_index=ti.map_index, try_number=ti.try_number,
                                old_state=ti.state, new_state=state,
                                cause=f"marked {state} by {owner or 'someone'}", timestamp=now))
            changed.append({"dag_id": dag_id, "run_id": run.run_id, "task_id": ti.task_id,
                            "map_index": ti.map_index, "old_state": ti.state, "state": state})
        if tis and run.state in FINISHED_RUN_STATES:
            _set_run_state_cas(session, run, f"mark {state}", {
                "state": str(DagRunState.RUNNING), "end_date": None, "updated_at": now})
    if changed:
        audit(session, f"mark_{state}", owner=owner, dag_id=dag_id, run_id=run_id,
              task_id=task_id, extra=f"{len(changed)} task instance(s)", now=now)
    return changed


def set_dag_run_state(session: Session, dag_id: str, run_id: str, state: str,
                      owner: str | None = None, now: datetime | None = None) -> DagRunModel:
    """Mark a whole run success or failed (its unfinished task instances follow)."""
    now = now or utcnow()
    if state not in (str(DagRunState.SUCCESS), str(DagRunState.FAILED),
                     str(DagRunState.QUEUED)):
        raise UpdraftBadRequest(f"run state must be success, failed or queued, got {state!r}")
    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id))
    if run is None:
        raise DagRunNotFound(f"DagRun {run_id!r} of DAG {dag_id!r} not found")
    if state == str(DagRunState.QUEUED):
        clear_task_instances(session, dag_id, run_id=run_id, owner=owner, now=now)
        session.refresh(run)
        return run
    ti_state = str(TI.SUCCESS) if state == str(DagRunState.SUCCESS) else str(TI.SKIPPED)
    copies = _copies(session, dag_id, run_id)
    tis = list(session.execute(select(
        TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state,
        TaskInstanceModel.try_number).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.state.in_(state_values(UNFINISHED_STATES))).with_for_update()))
    for ti in tis:
        # Marking a run failed fails what was running; what had not started is skipped.
        new = str(TI.FAILED) if (state == str(DagRunState.FAILED)
                                 and ti.state == str(TI.RUNNING)) else ti_state
        _compare_and_set(session, dag_id, run_id, ti, f"mark the run {state}",
                         {"state": new, "end_date": now, "updated_at": now})
        session.add(TiEvent(dag_id=dag_id, run_id=run_id, task_id=ti.task_id,
                            map_index=ti.map_index, try_number=ti.try_number,
                            old_state=ti.state, new_state=new,
                            cause=f"run marked {state} by {owner or 'someone'}",
                            timestamp=now))
    _check_same_copies(session, dag_id, run_id, None, copies, f"mark the run {state}")
    _set_run_state_cas(session, run, f"mark the run {state}",
                       {"state": state, "end_date": now, "updated_at": now})
    session.refresh(run)
    audit(session, f"run_{state}", owner=owner, dag_id=dag_id, run_id=run_id, now=now)
    return run


__all__ = ["trigger_dag_run", "set_paused", "delete_dag_run", "clear_task_instances",
           "set_task_instance_state", "set_dag_run_state", "audit", "get_serialized_dag",
           "check_conf_json", "ConcurrentStateChange"]
