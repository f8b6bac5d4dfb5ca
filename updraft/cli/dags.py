"""``updraft dags``: list, show, test, trigger, pause and backfill DAGs.

The commands here need only the ``updraft`` package. Those that also reach a node package
(``list`` and ``list-import-errors``, whose ``--local`` parses with the DAG processor's pool;
``trigger``, ``pause``, ``unpause`` and ``delete-run``, whose ``--via-bus`` talks to the
scheduler over NATS; ``backfill``, which may run a scheduler) live in the composition root,
``composition.cli``, and join this group through the entry points ``dags.<name>``. The store
side of each is here, as functions they call.
"""

from __future__ import annotations

import json
import sys
import time

import click

from updraft.cli.common import find_run, get_dag_or_fail, iso, load_dagbag, parse_date
from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option, output_option, parse_json_option, print_rows
from updraft.cli.registered import RegisteredGroup
from updraft.state import FAILED_TRY_STATES


@click.group(cls=RegisteredGroup)
def dags() -> None:
    """List, show, test, trigger, pause and backfill DAGs."""


EXIT_IMPORT_ERRORS = 1
"""``dags list-import-errors``: at least one DAG file failed to import."""
EXIT_CANNOT_READ = 3
"""``dags list`` / ``list-import-errors``: the DAGs could not be read (the store is
unreachable or not migrated; with ``--local``, the parsing processes could not start)."""

LIST_COLUMNS = ["dag_id", "fileloc", "owners", "is_paused", "schedule", "tags"]


class CannotReadDags(click.ClickException):
    """The store (or, with ``--local``, the DAGs folder) could not be read."""

    exit_code = EXIT_CANNOT_READ


def nothing_stored(command: str, store: str) -> str:
    """What ``dags <command>`` says when no scheduler has stored anything in ``store`` yet."""
    from updraft.config import conf

    return (f"Nothing stored yet in {store}.\n"
            "A scheduler using this store (`updraft scheduler`, or `updraft standalone`, which "
            f"also loads the example DAGs) stores the DAGs it parses from {conf.dags_folder()}."
            f"\n`updraft dags {command} --local` parses that folder here instead.")


def read_stored(*, dags: bool = False, import_errors: bool = False):
    """What the DAG processor stored (``updraft.store.listing.Listing``); exit with
    EXIT_CANNOT_READ and the reason if the store cannot be read. Reading creates nothing."""
    from updraft.store.listing import StoreUnreadable, read_listing

    try:
        return read_listing(dags=dags, import_errors=import_errors)
    except StoreUnreadable as exc:
        raise CannotReadDags(str(exc)) from None


def paused_if_stored() -> dict[str, bool]:
    """``dag_id -> is_paused`` from the store, or nothing if it cannot be read."""
    from updraft.store.listing import StoreUnreadable, read_listing

    try:
        return {d.dag_id: d.is_paused for d in read_listing(dags=True).dags}
    except StoreUnreadable:
        return {}


def stored_dag_rows(listing) -> list[dict]:
    """The rows of ``dags list`` for a listing read from the store."""
    return [{"dag_id": d.dag_id, "fileloc": d.fileloc, "owners": d.owners,
             "is_paused": d.is_paused, "schedule": d.schedule, "tags": ",".join(d.tags)}
            for d in listing.dags]


@dags.command("show")
@click.argument("dag_id")
@click.option("--dot", "as_dot", is_flag=True, help="Print Graphviz DOT instead of a tree.")
@dags_folder_option
def show_dag(dag_id: str, as_dot: bool) -> None:
    """Show a DAG's tasks and dependencies as a text tree (or DOT)."""
    dag = get_dag_or_fail(dag_id)
    if not as_dot:
        click.echo(dag.tree_view())
        return
    click.echo(f'digraph "{dag.dag_id}" {{')
    click.echo("  rankdir=LR;")
    for task in dag.tasks:
        click.echo(f'  "{task.task_id}" [shape=box, label="{task.task_id}"];')
    for task in dag.tasks:
        for down in sorted(task.downstream_task_ids):
            label = dag.get_edge_info(task.task_id, down).get("label")
            extra = f' [label="{label}"]' if label else ""
            click.echo(f'  "{task.task_id}" -> "{down}"{extra};')
    click.echo("}")


@dags.command("details")
@click.argument("dag_id")
@dags_folder_option
@output_option
def dag_details(dag_id: str, output: str) -> None:
    """Show a DAG's settings."""
    dag = get_dag_or_fail(dag_id)
    row = {"dag_id": dag.dag_id, "fileloc": dag.fileloc, "description": dag.description,
           "schedule": dag.timetable.summary, "start_date": iso(dag.start_date),
           "end_date": iso(dag.end_date), "catchup": dag.catchup,
           "max_active_runs": dag.max_active_runs, "max_active_tasks": dag.max_active_tasks,
           "tags": dag.tags, "owners": dag.owner, "timezone": str(dag.timezone),
           "tasks": len(dag.tasks), "params": dag.params.dump()}
    if output == "json":
        click.echo(json.dumps(row, indent=2, default=str))
    else:
        for key, value in row.items():
            click.echo(f"{key:18} {value}")


class _TestProgress:
    """Prints one line per finished try, and the tail of the log of failed ones."""

    SYMBOLS = {"success": "ok", "failed": "FAILED", "up_for_retry": "retry",
               "skipped": "skipped", "upstream_failed": "upstream_failed",
               "up_for_reschedule": "rescheduled"}

    def __init__(self, total: int):
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def __call__(self, kind: str, payload) -> None:
        elapsed = time.monotonic() - self.started
        if kind == "run_started":
            click.echo(f"Running {payload.dag_id} (run {payload.run_id}, {self.total} tasks)")
        elif kind == "state_changed":
            task_id, map_index, state, cause = payload
            label = f"{task_id}[{map_index}]" if map_index >= 0 else task_id
            click.echo(f"[{elapsed:7.2f}s] {label}: {state} ({cause})")
        elif kind == "try_finished":
            request, outcome = payload
            label = f"{request.task_id}[{request.map_index}]" if request.map_index >= 0 \
                else request.task_id
            state = str(outcome.state) if outcome.state else "refused"
            duration = f"{outcome.duration:.2f}s" if outcome.duration is not None else "-"
            click.echo(f"[{elapsed:7.2f}s] {label}: {self.SYMBOLS.get(state, state)} "
                       f"(try {outcome.try_number}, {duration})")
            if outcome.state in FAILED_TRY_STATES and outcome.log_path:
                try:
                    with open(outcome.log_path, encoding="utf-8") as handle:
                        tail = handle.read().splitlines()[-15:]
                except OSError:
                    tail = []
                for line in tail:
                    click.echo(f"    | {line}")
        elif kind == "run_finished":
            run, reason = payload
            click.echo(f"Dag run {run.run_id} finished: {run.state} ({reason}) in "
                       f"{elapsed:.2f}s")


@dags.command("test")
@click.argument("dag_id")
@click.argument("logical_date", required=False)
@click.option("--conf", "-c", "conf_json", help="JSON object passed as the run's conf.")
@click.option("--run-id", help="Run id (default manual__<logical date>).")
@click.option("--show-logs", is_flag=True, help="Print every task's log as it runs.")
@dags_folder_option
@store_command
def test_dag(dag_id: str, logical_date: str | None, conf_json: str | None, run_id: str | None,
             show_logs: bool) -> None:
    """Run every task of a DAG once, here and now, and exit 0 only if the run succeeded."""
    from updraft.exceptions import ParamValidationError
    from updraft.local_run import run_dag_locally

    conf_value = parse_json_option(conf_json)
    dag = get_dag_or_fail(dag_id)
    when = parse_date(logical_date, dag.timezone, "LOGICAL_DATE")
    progress = _TestProgress(len(dag.tasks))
    try:
        run = run_dag_locally(dag, logical_date=when, conf=conf_value, run_id=run_id,
                              progress=progress, echo_log=sys.stdout if show_logs else None)
    except ParamValidationError as exc:
        raise click.ClickException(str(exc)) from None
    _print_summary(run)
    sys.exit(0 if str(run.state) == "success" else 1)


def _print_summary(run) -> None:
    from collections import Counter

    counts = Counter(str(ti.state) for ti in run.get_task_instances())
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    click.echo(f"Summary: {summary}")


@dags.command("list-runs")
@click.argument("dag_id")
@click.option("--state", help="Only runs in this state.")
@click.option("--start-date", "-s", help="Only runs with a logical date on or after this.")
@click.option("--end-date", "-e", help="Only runs with a logical date on or before this.")
@click.option("--no-backfill", is_flag=True, help="Leave out backfill runs.")
@output_option
@store_command
def list_runs(dag_id: str, state: str | None, start_date: str | None, end_date: str | None,
              no_backfill: bool, output: str) -> None:
    """List the runs of a DAG, newest first."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel

    query = select(DagRunModel).where(DagRunModel.dag_id == dag_id)
    if state:
        query = query.where(DagRunModel.state == state)
    if start_date:
        query = query.where(DagRunModel.logical_date >= parse_date(start_date))
    if end_date:
        query = query.where(DagRunModel.logical_date <= parse_date(end_date))
    if no_backfill:
        query = query.where(DagRunModel.run_type != "backfill")
    with session_scope() as session:
        runs = session.scalars(query.order_by(DagRunModel.logical_date.desc())).all()
        rows = [{"dag_id": r.dag_id, "run_id": r.run_id, "state": r.state,
                 "run_type": r.run_type, "logical_date": iso(r.logical_date),
                 "start_date": iso(r.start_date), "end_date": iso(r.end_date),
                 "data_interval_start": iso(r.data_interval_start),
                 "data_interval_end": iso(r.data_interval_end), "conf": r.conf}
                for r in runs]
    print_rows(rows, output, ["dag_id", "run_id", "state", "run_type", "logical_date",
                              "start_date", "end_date"])


@dags.command("state")
@click.argument("dag_id")
@click.argument("run_id_or_date")
@store_command
def run_state(dag_id: str, run_id_or_date: str) -> None:
    """Print the state of a run (given by run id or logical date)."""
    from updraft.store.engine import session_scope

    with session_scope() as session:
        run = find_run(session, dag_id, run_id_or_date)
        if run is None:
            raise click.ClickException(f"No run {run_id_or_date!r} of DAG {dag_id!r}")
        click.echo(run.state)




def _store_error(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def ensure_dag_in_store(dag_id: str) -> None:
    """Parse the DAG from the DAGs folder into the store if the scheduler has not yet."""
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, utcnow

    with session_scope() as session:
        row = session.get(DagModel, dag_id)
        if row is not None and row.is_active:
            return
    bag = load_dagbag()
    dag = bag.get_dag(dag_id)
    if dag is None:
        return
    with session_scope() as session:
        write_dag(session, dag, file_hash=bag.file_hashes.get(dag.fileloc), now=utcnow())


def cli_user() -> str:
    """Who the audit log records for a command run here."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001
        return "cli"


def trigger_in_store(dag_id: str, *, conf: dict | None, run_id: str | None, logical_date) -> str:
    """Create a queued run in the store (the DAG is stored first if the scheduler has not
    yet); its run id. A refused run exits with the store's reason."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope

    ensure_dag_in_store(dag_id)
    try:
        with session_scope() as session:
            run = trigger_dag_run(session, dag_id, conf=conf, run_id=run_id,
                                  logical_date=logical_date, triggered_by="cli",
                                  owner=cli_user())
            return run.run_id
    except UpdraftException as exc:
        raise _store_error(exc) from None


def pause_in_store(dag_id: str, paused: bool) -> None:
    """Pause or unpause ``dag_id`` in the store (stored first if the scheduler has not yet)."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import set_paused
    from updraft.store.engine import session_scope

    ensure_dag_in_store(dag_id)
    try:
        with session_scope() as session:
            set_paused(session, dag_id, paused, owner=cli_user())
    except UpdraftException as exc:
        raise _store_error(exc) from None


def delete_run_in_store(dag_id: str, run_id: str) -> None:
    """Delete a run with its task instances, XComs and history."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import delete_dag_run
    from updraft.store.engine import session_scope

    try:
        with session_scope() as session:
            delete_dag_run(session, dag_id, run_id, owner=cli_user())
    except UpdraftException as exc:
        raise _store_error(exc) from None


def is_paused(dag_id: str) -> bool:
    """Whether the store has ``dag_id`` paused (False if it does not know it)."""
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    with session_scope() as session:
        row = session.get(DagModel, dag_id)
        return bool(row is not None and row.is_paused)


def paused_run_hint(dag_id: str) -> str:
    """What to tell someone who just triggered a run of a paused DAG."""
    return (f"{dag_id} is paused: the run stays queued until the DAG is unpaused "
            f"(`updraft dags unpause {dag_id}`).")


@dags.command("check-compat")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Output format.")
def check_compat(paths: tuple[str, ...], output: str) -> None:
    """Check Airflow DAG files (read, not imported): what Updraft supports and what it does
    not, by line. Exit code 0 only if every file is fully supported."""
    from updraft.compat.checker import check_paths, format_text, to_json

    reports = check_paths(list(paths))
    if output == "json":
        click.echo(json.dumps(to_json(reports), indent=2))
    else:
        click.echo(format_text(reports))
    sys.exit(0 if all(r.fully_supported for r in reports) else 1)
