"""``updraft tasks``: test one task, list tasks, and read task instance states.

``clear`` (whose ``--via-bus`` talks to the scheduler over NATS) and ``logs`` (which follows
a try live on the bus) reach the bus node package: they live in the composition root,
``composition.cli``, and join this group through the entry points ``tasks.<name>``.
"""

from __future__ import annotations

import sys

import click

from updraft.cli.common import find_run, get_dag_or_fail, iso, parse_date
from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option, output_option, print_rows
from updraft.cli.registered import RegisteredGroup


@click.group(cls=RegisteredGroup)
def tasks() -> None:
    """Test, list and inspect tasks and task instances."""


@tasks.command("list")
@click.argument("dag_id")
@click.option("--tree", "-t", is_flag=True, help="Show the dependency tree.")
@dags_folder_option
def list_tasks(dag_id: str, tree: bool) -> None:
    """List the task ids of a DAG."""
    dag = get_dag_or_fail(dag_id)
    if tree:
        click.echo(dag.tree_view())
        return
    for task_id in sorted(dag.task_ids):
        click.echo(task_id)


@tasks.command("test")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("logical_date", required=False)
@click.option("--map-index", type=int, default=-1, show_default=True,
              help="Map index of a mapped task (its upstream XComs must exist in the run).")
@click.option("--task-params", "-t", help="JSON params that override the DAG's.")
@dags_folder_option
@store_command
def test_task(dag_id: str, task_id: str, logical_date: str | None, map_index: int,
              task_params: str | None) -> None:
    """Run one task once, ignoring its dependencies, and print its log."""
    from sqlalchemy import select

    from updraft.cli.options import parse_json_option
    from updraft.runtime import TryRequest, run_task_try
    from updraft.schedules import utcnow
    from updraft.state import SUCCESS_LIKE_STATES, DagRunState, DagRunType
    from updraft.state import TaskInstanceState as TI
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, TaskInstanceModel
    from updraft.store.runs import create_dag_run, queue_task_instances, row_defaults_for
    from updraft.store.ti_state import write_state

    dag = get_dag_or_fail(dag_id)
    dag.get_task(task_id) if dag.has_task(task_id) else _no_task(dag, task_id)
    when = parse_date(logical_date, dag.timezone, "LOGICAL_DATE") or utcnow()
    conf_value = parse_json_option(task_params, "--task-params") or {}
    run_id = DagRunType.MANUAL.generate_run_id(when)
    with session_scope() as session:
        run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                       DagRunModel.logical_date == when))
        if run is None:
            interval = dag.timetable.infer_manual_data_interval(run_after=when)
            run = create_dag_run(session, dag_id=dag_id, run_id=run_id,
                                 run_type=DagRunType.MANUAL, logical_date=when,
                                 data_interval=(interval.start, interval.end),
                                 conf=conf_value, tasks=row_defaults_for(dag.task_dict),
                                 state=DagRunState.RUNNING, triggered_by="test")
        run_id = run.run_id
        exists = session.scalar(select(TaskInstanceModel.state).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index))
        if exists is None:
            raise click.ClickException(f"Task instance {task_id}[{map_index}] does not exist in "
                                       f"run {run_id}")
        # Testing a task ignores its dependencies and any earlier outcome.
        write_state(session, exists, TI.NONE,
                    TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                    TaskInstanceModel.task_id == task_id,
                    TaskInstanceModel.map_index == map_index, writer="tasks test")
        queued = queue_task_instances(session, dag_id, run_id, [(task_id, map_index)],
                                      node="tasks.test", executor="tasks.test")
    try_number, try_id = queued[(task_id, map_index)]
    outcome = run_task_try(TryRequest(dag_id, run_id, task_id, map_index, try_number,
                                      dag.fileloc, try_id=try_id), dag, node="tasks.test",
                           executor="tasks.test", echo_log=sys.stdout)
    click.echo(f"Task {task_id} finished: {outcome.state} (run {run_id}, try {try_number})")
    sys.exit(0 if outcome.state in SUCCESS_LIKE_STATES else 1)


def _no_task(dag, task_id: str):
    raise click.ClickException(f"Task {task_id!r} not found in DAG {dag.dag_id!r}; its tasks "
                               f"are: {', '.join(sorted(dag.task_ids))}")


@tasks.command("states-for-dag-run")
@click.argument("dag_id")
@click.argument("run_id")
@output_option
@store_command
def states_for_dag_run(dag_id: str, run_id: str, output: str) -> None:
    """Print the state of every task instance of a run (given by run id or logical date)."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope() as session:
        run = find_run(session, dag_id, run_id)
        if run is None:
            raise click.ClickException(f"DagRun does not exist: no run {run_id!r} of DAG "
                                       f"{dag_id!r}")
        rows = session.scalars(select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run.run_id,
        ).order_by(TaskInstanceModel.task_id, TaskInstanceModel.map_index)).all()
        data = [{"dag_id": ti.dag_id, "logical_date": iso(run.logical_date),
                 "run_id": run.run_id, "task_id": ti.task_id, "map_index": ti.map_index,
                 "state": None if ti.state == "none" else ti.state,
                 "try_number": ti.try_number, "start_date": iso(ti.start_date),
                 "end_date": iso(ti.end_date)} for ti in rows]
    print_rows(data, output, ["dag_id", "logical_date", "task_id", "map_index", "state",
                              "try_number", "start_date", "end_date"])


@tasks.command("state")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run_id")
@click.option("--map-index", type=int, default=-1, show_default=True)
@store_command
def task_state(dag_id: str, task_id: str, run_id: str, map_index: int) -> None:
    """Print the state of one task instance."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope() as session:
        run = find_run(session, dag_id, run_id)
        if run is None:
            raise click.ClickException(f"No run {run_id!r} of DAG {dag_id!r}")
        state = session.scalar(select(TaskInstanceModel.state).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index))
        if state is None:
            raise click.ClickException(f"Task instance {task_id}[{map_index}] not found in "
                                       f"run {run.run_id}")
        click.echo(None if state == "none" else state)


@tasks.command("failed-deps")
@click.argument("dag_id")
@click.argument("task_id")
@click.argument("run_id")
@click.option("--map-index", type=int, default=-1, show_default=True)
@store_command
def failed_deps(dag_id: str, task_id: str, run_id: str, map_index: int) -> None:
    """Explain why a task instance is not running: the reasons the UI shows (what the
    scheduler recorded, else its rules read from the store), then its story of state
    changes."""
    from sqlalchemy import select

    from updraft.store.dags import read_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel, TiEvent
    from updraft.store.waiting import waiting_reasons

    with session_scope() as session:
        run = find_run(session, dag_id, run_id)
        if run is None:
            raise click.ClickException(f"No run {run_id!r} of DAG {dag_id!r}")
        ti = session.get(TaskInstanceModel, (dag_id, run.run_id, task_id, map_index))
        if ti is None:
            raise click.ClickException(f"Task instance {task_id}[{map_index}] not found in "
                                       f"run {run.run_id}")
        dag = read_dag(session, dag_id, run.dag_hash) or read_dag(session, dag_id)
        reasons = waiting_reasons(session, dag, run, ti) if dag is not None else []
        if reasons:
            click.echo(f"Why {task_id} is not running ({ti.state}):")
            width = max(len(r["check"]) for r in reasons)
            for reason in reasons:
                recorded = ""
                if "recorded_since" in reason:
                    since = reason["recorded_since"]
                    recorded = " (recorded by the scheduler" + \
                        (f" since {iso(since)})" if since else ")")
                click.echo(f"  {reason['check']:<{width}}  {reason['reason']}{recorded}")
        elif dag is None:
            click.echo("The DAG is not in the store yet: it has not been parsed.")
        else:
            click.echo(f"Nothing holds it back: it is {ti.state}.")
        events = session.scalars(select(TiEvent).where(
            TiEvent.dag_id == dag_id, TiEvent.run_id == run.run_id, TiEvent.task_id == task_id,
            TiEvent.map_index == map_index).order_by(TiEvent.id)).all()
        if events:
            click.echo("Story:")
        for event in events:
            click.echo(f"{iso(event.timestamp)} try {event.try_number}: {event.old_state} -> "
                       f"{event.new_state}: {event.cause}")
        _explain_deferral(session, dag_id, run.run_id, task_id, map_index)


def _explain_deferral(session, dag_id: str, run_id: str, task_id: str, map_index: int) -> None:
    """What a deferred task instance waits for (ADR 11)."""
    from updraft.store.models import TaskInstanceModel
    from updraft.store.triggers import deferral_info

    row = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
    info = deferral_info(session, row)
    if info is None:
        return
    kwargs = ", ".join(f"{k}={v!r}" for k, v in (info.get("kwargs") or {}).items())
    click.echo(f"Deferred: waits for trigger {info['trigger_id']} "
               f"{info.get('classpath', '(gone)')}({kwargs})"
               + (f" since {iso(info['since'])}" if info.get("since") else ""))
    click.echo("  timeout: " + (iso(info["timeout"]) if info.get("timeout") else "none"))
    holder = info.get("triggerer_id")
    click.echo(f"  run by: {holder} (lease until {iso(info.get('lease_until'))})" if holder
               else "  run by: no triggerer yet (is `updraft triggerer` running?)")
    click.echo(f"  resumes in: {info.get('next_method')}")


def clear_in_store(dag_id: str, options: dict, yes: bool) -> None:
    """``tasks clear`` on the store: list what would be cleared, confirm, clear it."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import clear_task_instances
    from updraft.store.engine import session_scope

    try:
        with session_scope() as session:
            preview = clear_task_instances(session, dag_id, dry_run=True, **options)
    except UpdraftException as exc:
        raise click.ClickException(str(exc)) from None
    if not preview:
        click.echo("No task instances to clear")
        return
    for row in preview:
        index = f"[{row['map_index']}]" if row["map_index"] >= 0 else ""
        click.echo(f"  {row['run_id']}  {row['task_id']}{index}  ({row['state']})")
    if not yes and not click.confirm(f"Clear {len(preview)} task instance(s)?", default=False):
        raise click.ClickException("Cancelled")
    with session_scope() as session:
        cleared = clear_task_instances(session, dag_id, owner="cli", **options)
    click.echo(f"Cleared {len(cleared)} task instance(s)")
