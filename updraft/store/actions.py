"""Notes, DAG delete and backfill: what the bus commands ``set_note``, ``delete_dag`` and
``backfill`` do to the store (the scheduler applies them; the CLI's backfill uses the same
run creation). Each function runs in the caller's transaction and writes the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from updraft.exceptions import (
    DagNotFound,
    DagRunNotFound,
    TaskNotFound,
    UpdraftBadRequest,
    UpdraftConflict,
)
from updraft.state import FINISHED_STATES, DagRunState, DagRunType, state_values
from updraft.store.commands import audit, get_serialized_dag
from updraft.store.models import (
    AssetDelivery,
    AssetReference,
    DagModel,
    DagRunModel,
    SerializedDagModel,
    SlaMiss,
    TaskInstanceModel,
    TaskInstanceTry,
    TaskReschedule,
    TiEvent,
    XComModel,
    utcnow,
)

#: Longest note kept (Airflow's limit is 1,000 characters).
MAX_NOTE = 1000

#: Most runs one backfill may create: a larger range is refused (do it in parts).
MAX_BACKFILL_RUNS = 1000

#: What a DAG delete removes, children first; the audit log keeps its entries (as Airflow's).
DAG_TABLES = (TaskInstanceTry, TaskReschedule, TiEvent, XComModel, SlaMiss, TaskInstanceModel,
              AssetDelivery, AssetReference, DagRunModel, SerializedDagModel,
              DagModel)


def set_note(session: Session, dag_id: str, run_id: str, note: str | None, *,
             task_id: str | None = None, map_index: int = -1, owner: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Set (or with an empty ``note``, remove) the note of a run, or of one task instance."""
    if note is not None and len(note) > MAX_NOTE:
        raise UpdraftBadRequest(f"the note is {len(note)} characters long; at most {MAX_NOTE}")
    # Browsers send a textarea's line breaks as CRLF; keep them as \n.
    note = note.replace("\r\n", "\n").strip() if note else None
    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id))
    if run is None:
        raise DagRunNotFound(f"DagRun {run_id!r} of DAG {dag_id!r} not found")
    target: DagRunModel | TaskInstanceModel = run
    if task_id is not None:
        ti = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
        if ti is None:
            raise TaskNotFound(f"task instance {task_id}[{map_index}] not found in run "
                               f"{run_id!r} of DAG {dag_id!r}")
        target = ti
    target.note = note or None
    audit(session, "set_note", owner=owner, dag_id=dag_id, run_id=run_id, task_id=task_id,
          extra=(f"map_index={map_index} " if task_id is not None and map_index >= 0 else "")
          + (f"note={note!r}" if note else "note removed"), now=now)
    return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
            "map_index": map_index if task_id is not None else None, "note": note or None}


def delete_dag(session: Session, dag_id: str, *, owner: str | None = None,
               now: datetime | None = None) -> dict[str, int]:
    """Delete a DAG's metadata: its runs, task instances, tries, story, XComs, versions and row.

    The DAG file stays: the DAG processor parses it again and the DAG comes back without its
    history. Returns the number of rows deleted per table.
    """
    if session.get(DagModel, dag_id) is None:
        raise DagNotFound(f"DAG {dag_id!r} not found")
    counts = {}
    for model in DAG_TABLES:
        result = session.execute(delete(model).where(model.dag_id == dag_id)
                                 .execution_options(synchronize_session=False))
        counts[model.__tablename__] = result.rowcount or 0
    audit(session, "delete_dag", owner=owner, dag_id=dag_id,
          extra=f"{counts['dag_run']} run(s), {counts['task_instance']} task instance(s)",
          now=now)
    return counts


def backfill_logical_dates(dag: Any, start: datetime, end: datetime) -> list[Any]:
    """The scheduled intervals of ``dag`` whose logical date is in [start, end]; refused
    (UpdraftConflict) past MAX_BACKFILL_RUNS."""
    from itertools import islice

    infos = list(islice(dag.timetable.iter_dagrun_infos_between(start, end),
                        MAX_BACKFILL_RUNS + 1))
    if len(infos) > MAX_BACKFILL_RUNS:
        raise UpdraftConflict(f"the range holds more than {MAX_BACKFILL_RUNS:,} runs of "
                              f"{dag.dag_id}: backfill it in parts")
    return infos


def create_backfill_runs(session: Session, dag: Any, start: datetime, end: datetime,
                         now: datetime, reset_existing: bool = False) -> list[str]:
    """Create one backfill run per scheduled interval whose logical date is in [start, end]."""
    from updraft.store.commands import delete_dag_run
    from updraft.store.runs import create_dag_run, row_defaults_for

    created: list[str] = []
    for info in backfill_logical_dates(dag, start, end):
        run_id = DagRunType.BACKFILL.generate_run_id(info.logical_date)
        existing = session.scalar(select(DagRunModel).where(
            DagRunModel.dag_id == dag.dag_id,
            or_(DagRunModel.run_id == run_id,
                and_(DagRunModel.logical_date == info.logical_date))))
        if existing is not None:
            if not reset_existing:
                continue
            delete_dag_run(session, dag.dag_id, existing.run_id, owner="backfill", now=now)
        create_dag_run(session, dag_id=dag.dag_id, run_id=run_id,
                       run_type=DagRunType.BACKFILL, logical_date=info.logical_date,
                       data_interval=(info.data_interval.start, info.data_interval.end),
                       conf={}, tasks=row_defaults_for(dag.task_dict),
                       state=DagRunState.QUEUED, dag_hash=dag.dag_hash, triggered_by="backfill",
                       now=now)
        created.append(run_id)
    return created


def backfill(session: Session, dag_id: str, start: str | datetime, end: str | datetime, *,
             reset_existing: bool = False, dry_run: bool = False, owner: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Create the backfill runs of ``dag_id`` between two logical dates (naive ones are in the
    DAG's timezone); with ``dry_run`` only list them. The scheduler runs them."""
    from updraft.schedules import coerce_datetime

    now = now or utcnow()
    dag = get_serialized_dag(session, dag_id)
    try:
        first, last = coerce_datetime(start, dag.timezone), coerce_datetime(end, dag.timezone)
    except ValueError as exc:
        raise UpdraftBadRequest(f"backfill dates: {exc}") from None
    if first is None or last is None:
        raise UpdraftBadRequest("a backfill needs a start date and an end date")
    if last < first:
        raise UpdraftConflict("the end date is before the start date")
    infos = backfill_logical_dates(dag, first, last)
    dates = [i.logical_date.isoformat() for i in infos]
    run_ids = [DagRunType.BACKFILL.generate_run_id(i.logical_date) for i in infos]
    result: dict[str, Any] = {"dag_id": dag_id, "start_date": first.isoformat(),
                              "end_date": last.isoformat(), "logical_dates": dates,
                              "run_ids": run_ids, "dry_run": dry_run}
    if dry_run:
        existing = set(session.scalars(select(DagRunModel.run_id).where(
            DagRunModel.dag_id == dag_id, DagRunModel.run_id.in_(run_ids))))
        result["existing"] = sorted(existing)
        return result
    created = create_backfill_runs(session, dag, first, last, now, reset_existing)
    result["created"] = created
    audit(session, "backfill", owner=owner, dag_id=dag_id,
          extra=f"{first.isoformat()} .. {last.isoformat()}: {len(created)} of {len(infos)} "
                "run(s) created" + (" (reset)" if reset_existing else ""), now=now)
    return result


def backfill_progress(session: Session, dag_id: str, start: datetime | None = None,
                      end: datetime | None = None) -> dict[str, Any]:
    """The backfill runs of ``dag_id`` (between two logical dates, if given) with their task
    instances done and in all: what the backfill page shows."""
    query = select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                      DagRunModel.run_type == str(DagRunType.BACKFILL))
    if start is not None:
        query = query.where(DagRunModel.logical_date >= start)
    if end is not None:
        query = query.where(DagRunModel.logical_date <= end)
    runs = list(session.scalars(query.order_by(DagRunModel.logical_date)))
    counts: dict[str, dict[str, int]] = {}
    if runs:
        for run_id, state, count in session.execute(
                select(TaskInstanceModel.run_id, TaskInstanceModel.state, func.count())
                .where(TaskInstanceModel.dag_id == dag_id,
                       TaskInstanceModel.run_id.in_([r.run_id for r in runs]))
                .group_by(TaskInstanceModel.run_id, TaskInstanceModel.state)):
            counts.setdefault(run_id, {})[state] = count
    finished = set(state_values(FINISHED_STATES))
    rows = []
    for run in runs:
        states = counts.get(run.run_id, {})
        rows.append({"run_id": run.run_id, "state": run.state, "logical_date": run.logical_date,
                     "start_date": run.start_date, "end_date": run.end_date,
                     "total": sum(states.values()),
                     "done": sum(n for s, n in states.items() if s in finished),
                     "states": states})
    over = (str(DagRunState.SUCCESS), str(DagRunState.FAILED))
    return {"dag_id": dag_id, "runs": rows,
            "total": sum(r["total"] for r in rows), "done": sum(r["done"] for r in rows),
            "runs_done": sum(1 for r in rows if r["state"] in over),
            "failed": sum(1 for r in rows if r["state"] == str(DagRunState.FAILED)),
            "finished": bool(rows) and all(r["state"] in over for r in rows)}


__all__ = ["MAX_NOTE", "backfill", "backfill_progress", "create_backfill_runs", "delete_dag",
           "set_note"]
