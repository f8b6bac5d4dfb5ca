"""Creating and starting DAG runs: schedules coming due, queued runs, timeouts, backfills.

Each function takes the session and ``now`` from the caller; nothing here reads the clock.
With PostgreSQL or MariaDB the DAG rows are locked with ``FOR UPDATE SKIP LOCKED`` so two
schedulers never create the same run (the unique (dag_id, run_id) key backs that up).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from updraft.schedules import DataInterval, ScheduleError, TimeRestriction, next_dagrun_info_at
from updraft.state import (
    UNFINISHED_STATES,
    DagRunState,
    DagRunType,
    TaskInstanceState as TI,
    state_values,
)
# Backfill runs are made in the store: the UI's backfill command makes them too.
from updraft.store.actions import create_backfill_runs  # noqa: F401  (re-exported)
from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel
from updraft.store.ti_state import write_state

log = logging.getLogger(__name__)


def _skip_locked(query, session: Session):
    if session.get_bind().dialect.name in ("postgresql", "mysql", "mariadb"):
        return query.with_for_update(skip_locked=True)
    return query


def _not_paused():
    """Runs that may start or go on: the DAG is not paused, or the run is a backfill."""
    return or_(DagModel.is_paused.is_(False),
               DagRunModel.run_type == str(DagRunType.BACKFILL))


def last_automated_interval(session: Session, dag_id: str) -> DataInterval | None:
    """The data interval of the newest scheduled or backfill run."""
    row = session.execute(select(DagRunModel.data_interval_start, DagRunModel.data_interval_end)
                          .where(DagRunModel.dag_id == dag_id,
                                 DagRunModel.run_type.in_([str(DagRunType.SCHEDULED),
                                                           str(DagRunType.BACKFILL)]))
                          .order_by(DagRunModel.logical_date.desc()).limit(1)).first()
    if row is None or row.data_interval_start is None:
        return None
    return DataInterval(row.data_interval_start, row.data_interval_end)


#: How long the scheduler waits before asking a timetable that failed again.
TIMETABLE_RETRY = timedelta(minutes=5)


def compute_next_dagrun(session: Session, dag_row: DagModel, dag, now: datetime) -> None:
    """Store on the DAG row when its next scheduled run is due (None: never).

    A timetable that cannot be computed (an unregistered custom class, or a registered one
    that raises) costs only its DAG: the error is logged and asked again after
    ``TIMETABLE_RETRY``, with no next run stored meanwhile.
    """
    restriction = TimeRestriction(dag.start_date, dag.end_date, dag.catchup)
    info = None
    if dag.timetable.can_be_scheduled:
        try:
            info = next_dagrun_info_at(dag.timetable,
                                       last_automated_data_interval=last_automated_interval(
                                           session, dag_row.dag_id),
                                       restriction=restriction, now=now)
        except Exception as exc:  # noqa: BLE001  (one DAG's timetable must not stop the others)
            log.error("DAG %s: its timetable cannot give the next run (asked again in %s): %s",
                      dag_row.dag_id, TIMETABLE_RETRY, exc,
                      exc_info=not isinstance(exc, ScheduleError))
            dag_row.next_dagrun = None
            dag_row.next_dagrun_data_interval_start = None
            dag_row.next_dagrun_data_interval_end = None
            dag_row.next_dagrun_create_after = now + TIMETABLE_RETRY
            return
    if info is None:
        dag_row.next_dagrun = None
        dag_row.next_dagrun_data_interval_start = None
        dag_row.next_dagrun_data_interval_end = None
        # A far-future marker means "computed, nothing due", unlike NULL ("compute me").
        dag_row.next_dagrun_create_after = datetime(9999, 12, 31, tzinfo=now.tzinfo)
        return
    dag_row.next_dagrun = info.logical_date
    dag_row.next_dagrun_data_interval_start = info.data_interval.start
    dag_row.next_dagrun_data_interval_end = info.data_interval.end
    dag_row.next_dagrun_create_after = info.run_after


def _unfinished_runs(session: Session, dag_id: str) -> int:
    return session.scalar(select(func.count()).select_from(DagRunModel).where(
        DagRunModel.dag_id == dag_id,
        DagRunModel.state.in_([str(DagRunState.QUEUED), str(DagRunState.RUNNING)]))) or 0


def create_due_runs(session: Session, now: datetime, read_dag, limit: int = 100) -> list[tuple[str, str]]:
    """Create the scheduled runs that have come due; return their (dag_id, run_id)."""
    from updraft.store.runs import create_dag_run, row_defaults_for

    query = select(DagModel).where(
        DagModel.is_active.is_(True), DagModel.is_paused.is_(False),
        or_(DagModel.next_dagrun_create_after.is_(None),
            DagModel.next_dagrun_create_after <= now)).order_by(
        DagModel.next_dagrun_create_after).limit(limit)
    created: list[tuple[str, str]] = []
    for dag_row in session.scalars(_skip_locked(query, session)).all():
        dag = read_dag(session, dag_row.dag_id)
        if dag is None:
            continue
        if dag_row.next_dagrun_create_after is None or dag_row.next_dagrun is None:
            # Never computed, or due again after a timetable error (the "nothing due"
            # marker is far in the future, so it never comes here).
            compute_next_dagrun(session, dag_row, dag, now)
        # Catch up as many intervals as max_active_runs allows in one pass.
        while dag_row.next_dagrun_create_after is not None and \
                dag_row.next_dagrun_create_after <= now and dag_row.next_dagrun is not None:
            if _unfinished_runs(session, dag_row.dag_id) >= (dag.max_active_runs or 16):
                break
            gate = None
            if getattr(dag.timetable, "gated_by_time", False):
                # AssetAndTimeSchedule: the tick waits for the assets' events (ADR 10).
                from scheduler.assets import gated_batch

                gate = gated_batch(session, dag)
                if gate is None:
                    break
            logical = dag_row.next_dagrun
            run_id = DagRunType.SCHEDULED.generate_run_id(logical)
            exists = session.scalar(select(DagRunModel.id).where(
                DagRunModel.dag_id == dag_row.dag_id,
                or_(DagRunModel.run_id == run_id, DagRunModel.logical_date == logical)))
            if exists is None:
                try:
                    with session.begin_nested():
                        create_dag_run(
                            session, dag_id=dag_row.dag_id, run_id=run_id,
                            run_type=DagRunType.SCHEDULED, logical_date=logical,
                            data_interval=(dag_row.next_dagrun_data_interval_start,
                                           dag_row.next_dagrun_data_interval_end),
                            conf={}, tasks=row_defaults_for(dag.task_dict),
                            state=DagRunState.QUEUED, dag_hash=dag.dag_hash,
                            triggered_by="timetable", now=now)
                        if gate is not None:
                            from scheduler.assets import claim_for_tick

                            claim_for_tick(session, dag_row.dag_id, run_id, gate)
                    created.append((dag_row.dag_id, run_id))
                except IntegrityError:
                    log.info("run %s of %s was created by another scheduler", run_id,
                             dag_row.dag_id)
            compute_next_dagrun(session, dag_row, dag, now)
            if dag_row.next_dagrun == logical:
                break
    return created


def start_queued_runs(session: Session, now: datetime, read_dag) -> list[tuple[str, str]]:
    """Move queued runs to running, oldest logical date first, within max_active_runs.

    Runs of paused DAGs stay queued until the DAG is unpaused, except backfill runs, which
    run whatever the DAG's pause (as in Airflow).
    """
    queued = session.execute(select(DagRunModel.dag_id, func.count()).join(
        DagModel, DagModel.dag_id == DagRunModel.dag_id).where(
        DagRunModel.state == str(DagRunState.QUEUED), _not_paused(),
    ).group_by(DagRunModel.dag_id)).all()
    started: list[tuple[str, str]] = []
    for dag_id, _count in queued:
        dag = read_dag(session, dag_id)
        limit = (dag.max_active_runs if dag is not None else 16) or 16
        running = session.scalar(select(func.count()).select_from(DagRunModel).where(
            DagRunModel.dag_id == dag_id, DagRunModel.state == str(DagRunState.RUNNING))) or 0
        free = limit - running
        if free <= 0:
            continue
        query = select(DagRunModel).where(
            DagRunModel.dag_id == dag_id, DagRunModel.state == str(DagRunState.QUEUED)
        ).order_by(DagRunModel.logical_date, DagRunModel.id).limit(free)
        if session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == dag_id)):
            query = query.where(DagRunModel.run_type == str(DagRunType.BACKFILL))
        for run in session.scalars(_skip_locked(query, session)).all():
            result = session.execute(update(DagRunModel).where(
                DagRunModel.id == run.id, DagRunModel.state == str(DagRunState.QUEUED),
            ).values(state=str(DagRunState.RUNNING), start_date=now, end_date=None,
                     updated_at=now))
            if result.rowcount:
                started.append((dag_id, run.run_id))
    return started


def time_out_runs(session: Session, now: datetime, read_dag) -> list[tuple[str, str]]:
    """Fail running runs older than their dagrun_timeout; skip their unfinished tasks."""
    from updraft.store.runs import add_event

    timed_out: list[tuple[str, str]] = []
    runs = session.execute(select(DagRunModel.id, DagRunModel.dag_id, DagRunModel.run_id,
                                  DagRunModel.start_date).where(
        DagRunModel.state == str(DagRunState.RUNNING))).all()
    timeouts: dict[str, timedelta | None] = {}
    for run in runs:
        if run.dag_id not in timeouts:
            dag = read_dag(session, run.dag_id)
            timeouts[run.dag_id] = dag.dagrun_timeout if dag is not None else None
        limit = timeouts[run.dag_id]
        if limit is None or run.start_date is None or run.start_date + limit > now:
            continue
        result = session.execute(update(DagRunModel).where(
            DagRunModel.id == run.id, DagRunModel.state == str(DagRunState.RUNNING),
        ).values(state=str(DagRunState.FAILED), end_date=now, updated_at=now))
        if not result.rowcount:
            continue
        unfinished = session.execute(select(TaskInstanceModel.task_id,
                                            TaskInstanceModel.map_index,
                                            TaskInstanceModel.state,
                                            TaskInstanceModel.try_number).where(
            TaskInstanceModel.dag_id == run.dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.state.in_(state_values(UNFINISHED_STATES)))).all()
        write_state(session, UNFINISHED_STATES, TI.SKIPPED,
                    TaskInstanceModel.dag_id == run.dag_id,
                    TaskInstanceModel.run_id == run.run_id, writer="dagrun_timeout",
                    end_date=now)
        for ti in unfinished:
            add_event(session, dag_id=run.dag_id, run_id=run.run_id, task_id=ti.task_id,
                      map_index=ti.map_index, try_number=ti.try_number, old=ti.state,
                      new=str(TI.SKIPPED), cause=f"dagrun_timeout of {limit} exceeded",
                      when=now)
        timed_out.append((run.dag_id, run.run_id))
    return timed_out
