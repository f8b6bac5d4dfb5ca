"""``updraft dags backfill``: create the runs of a date range and watch them finish.

The runs are ordinary backfill runs in the store. If no scheduler is alive (no heartbeat in
the node table), one is started in this process to run them; either way the command shows a
progress bar of finished task instances and ends with a summary.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import click
from sqlalchemy import func, select

from updraft.state import FINISHED_STATES, DagRunState, state_values
from updraft.store.engine import session_scope
from updraft.store.models import DagRunModel, NodeModel, TaskInstanceModel, utcnow

FINISHED_TI = state_values(FINISHED_STATES)


def scheduler_alive(session, now: datetime, within: float = 30.0) -> bool:
    """Whether some scheduler heartbeated recently."""
    return session.scalar(select(func.count()).select_from(NodeModel).where(
        NodeModel.kind == "scheduler", NodeModel.state == "running",
        NodeModel.heartbeat_at >= now - timedelta(seconds=within))) > 0


def run_backfill(dag, start: datetime, end: datetime, *, reset: bool = False,
                 dry_run: bool = False, executor_name: str | None = None) -> int:
    """Create the backfill runs, make sure they run, show progress; return an exit code."""
    from updraft.store.actions import create_backfill_runs
    from updraft.store.dags import read_dag, write_dag

    now = utcnow()
    infos = list(dag.timetable.iter_dagrun_infos_between(start, end))
    if not infos:
        click.echo(f"No scheduled interval of {dag.dag_id} ({dag.timetable.summary}) has a "
                   f"logical date between {start.isoformat()} and {end.isoformat()}")
        return 0
    if dry_run:
        for info in infos:
            click.echo(f"would run {dag.dag_id} at {info.logical_date.isoformat()}")
        return 0
    with session_scope() as session:
        write_dag(session, dag, file_hash=None, now=now)
    with session_scope() as session:
        created = create_backfill_runs(session, read_dag(session, dag.dag_id), start, end, now,
                                       reset_existing=reset)
        alive = scheduler_alive(session, now)
    run_ids = [f"backfill__{i.logical_date.isoformat()}" for i in infos]
    click.echo(f"Backfill of {dag.dag_id}: {len(infos)} run(s), {len(created)} created")
    scheduler = None
    if not alive:
        from executors import get_executor
        from scheduler.core import Scheduler

        click.echo("No scheduler is running: starting one here for the backfill")
        scheduler = Scheduler(get_executor(executor_name), run_processor=False)
        thread = threading.Thread(target=scheduler.run, name="backfill-scheduler", daemon=True)
        thread.start()
    try:
        return _watch(dag.dag_id, run_ids)
    finally:
        if scheduler is not None:
            scheduler.stop()
            thread.join(timeout=30)


def _counts(dag_id: str, run_ids: list[str]) -> tuple[int, int, dict[str, str]]:
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id.in_(run_ids))) or 0
        done = session.scalar(select(func.count()).select_from(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id.in_(run_ids),
            TaskInstanceModel.state.in_(FINISHED_TI))) or 0
        states = dict(session.execute(select(DagRunModel.run_id, DagRunModel.state).where(
            DagRunModel.dag_id == dag_id, DagRunModel.run_id.in_(run_ids))).all())
    return total, done, states


def _watch(dag_id: str, run_ids: list[str]) -> int:
    total, done, states = _counts(dag_id, run_ids)
    with click.progressbar(length=max(total, 1), label="task instances",
                           show_pos=True) as bar:
        shown = 0
        while True:
            total, done, states = _counts(dag_id, run_ids)
            bar.length = max(total, 1)
            bar.update(done - shown)
            shown = done
            if states and all(s in (str(DagRunState.SUCCESS), str(DagRunState.FAILED))
                              for s in states.values()):
                break
            time.sleep(0.5)
    succeeded = sorted(r for r, s in states.items() if s == str(DagRunState.SUCCESS))
    failed = sorted(r for r, s in states.items() if s == str(DagRunState.FAILED))
    click.echo(f"Backfill done: {len(succeeded)} run(s) succeeded, {len(failed)} failed")
    for run_id in failed:
        click.echo(f"  failed: {run_id}")
    return 0 if not failed else 1
