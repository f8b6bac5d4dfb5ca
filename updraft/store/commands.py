"""The changes people ask for: trigger, pause, clear, mark, delete a run.

One implementation for every door: the CLI, the scheduler's bus command handlers and the
REST API call these with their own session (the caller commits). They read the serialized
DAG from the store and never import DAG files. Errors are precise exceptions from
``updraft.exceptions`` that each door turns into its own message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from updraft.exceptions import (
    DagNotFound,
    DagRunAlreadyExists,
    DagRunNotFound,
    ParamValidationError,
    TaskNotFound,
    UpdraftBadRequest,
)
from updraft.state import DagRunState, DagRunType, TaskInstanceState as TI
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
    try:
        dag.params.resolve(conf or {})
    except ParamValidationError as exc:
        raise ParamValidationError(f"DAG {dag_id!r} refused the run: {exc}") from None
    logical = coerce_datetime(logical_date, dag.timezone) if logical_date is not None else now
    run_id = run_id or run_type.generate_run_id(logical)
    if not isinstance(run_id, str) or not re.match(r"^[\w.:+\-~ ]{1,250}$", run_id):
        raise UpdraftBadRequest(f"invalid run id {run_id!r}: use at most 250 letters, digits "
                                "and . : + - ~ _ or spaces")
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
    audit(session, "trigger", owner=owner, dag_id=dag_id, run_id=run_id,
          extra=f"conf={conf or {}} via {triggered_by}", now=now)
    return run


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
        tis = list(session.scalars(query.with_for_update()))
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
            old = ti.state
            ti.state = str(TI.NONE)
            ti.max_tries = ti.try_number + (task.retries if task is not None else 0)
            ti.next_retry_at = None
            ti.end_date = None
            ti.updated_at = now
            session.add(TiEvent(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id,
                                map_index=ti.map_index, try_number=ti.try_number,
                                old_state=old, new_state=str(TI.NONE),
                                cause=f"cleared by {owner or 'someone'}", timestamp=now))
        _collapse_mapped(session, dag, run.run_id, {ti.task_id for ti in tis})
        session.execute(update(DagRunModel).where(DagRunModel.id == run.id).values(
            state=str(DagRunState.QUEUED), end_date=None, start_date=None, queued_at=now,
            clear_number=DagRunModel.clear_number + 1, updated_at=now))
    if not dry_run and cleared:
        audit(session, "clear", owner=owner, dag_id=dag_id, run_id=run_id,
              extra=f"{len(cleared)} task instance(s)", now=now)
    return cleared


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
    if state not in (str(TI.SUCCESS), str(TI.FAILED), str(TI.SKIPPED)):
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
        query = select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id.in_(sorted(task_ids)), TaskInstanceModel.state != state)
        if map_indexes is not None:
            query = query.where(TaskInstanceModel.map_index.in_(list(map_indexes)))
        for ti in session.scalars(query.with_for_update()):
            old = ti.state
            ti.state = state
            ti.end_date = now
            ti.start_date = ti.start_date or now
            ti.updated_at = now
            session.add(TiEvent(dag_id=dag_id, run_id=run.run_id, task_id=ti.task_id,
                                map_index=ti.map_index, try_number=ti.try_number,
                                old_state=old, new_state=state,
                                cause=f"marked {state} by {owner or 'someone'}", timestamp=now))
            changed.append({"dag_id": dag_id, "run_id": run.run_id, "task_id": ti.task_id,
                            "map_index": ti.map_index, "old_state": old, "state": state})
        if run.state in (str(DagRunState.SUCCESS), str(DagRunState.FAILED)) and changed:
            run.state = str(DagRunState.RUNNING)
            run.end_date = None
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
        return run
    ti_state = str(TI.SUCCESS) if state == str(DagRunState.SUCCESS) else str(TI.SKIPPED)
    unfinished = [str(s) for s in (TI.NONE, TI.SCHEDULED, TI.QUEUED, TI.RUNNING,
                                   TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE)]
    if state == str(DagRunState.FAILED):
        session.execute(update(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.state == str(TI.RUNNING)).values(state=str(TI.FAILED),
                                                               end_date=now))
    session.execute(update(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.state.in_(unfinished)).values(state=ti_state, end_date=now))
    run.state = state
    run.end_date = now
    audit(session, f"run_{state}", owner=owner, dag_id=dag_id, run_id=run_id, now=now)
    return run


__all__ = ["trigger_dag_run", "set_paused", "delete_dag_run", "clear_task_instances",
           "set_task_instance_state", "set_dag_run_state", "audit", "get_serialized_dag"]
