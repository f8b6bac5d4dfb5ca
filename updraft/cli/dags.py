"""``updraft dags``: list, show, test, trigger, pause and backfill DAGs."""

from __future__ import annotations

import json
import sys
import time

import click

from updraft.cli.common import find_run, get_dag_or_fail, iso, load_dagbag, parse_date
from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option, output_option, parse_json_option, print_rows


@click.group()
def dags() -> None:
    """List, show, test, trigger, pause and backfill DAGs."""


EXIT_IMPORT_ERRORS = 1
"""``dags list-import-errors``: at least one DAG file failed to import."""
EXIT_CANNOT_READ = 3
"""``dags list`` / ``list-import-errors``: the DAGs could not be read (the store is
unreachable or not migrated; with ``--local``, the parsing processes could not start)."""


class CannotReadDags(click.ClickException):
    """The store (or, with ``--local``, the DAGs folder) could not be read."""

    exit_code = EXIT_CANNOT_READ


NOTHING_STORED = ("Nothing stored yet: the scheduler stores the DAGs it parses (and their "
                  "import errors). `--local` parses the DAGs folder here.")

local_option = click.option(
    "--local", "-l", is_flag=True,
    help="Parse the DAGs folder here, each file in a child process as the scheduler does, "
         "instead of reading what the scheduler stored.")


def _read_store(read):
    """``read(session)`` on the store, which is migrated first if brand new; exit with
    EXIT_CANNOT_READ and the reason if it cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from updraft.store.engine import session_scope
    from updraft.store.migrate import StoreNotReadyError, display_url, ensure_migrated

    try:
        ensure_migrated()
        with session_scope() as session:
            return read(session)
    except StoreNotReadyError as exc:  # says which store, and why
        raise CannotReadDags(str(exc)) from None
    except (SQLAlchemyError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CannotReadDags(f"cannot read the store at {display_url()}: {reason}") from None


def _parse_here() -> list:
    """Parse every file of the DAGs folder (and the examples, if loaded) in child processes
    of this one, as the DAG processor does; the outcomes, by path."""
    import importlib

    from updraft.config import conf
    from updraft.dagbag import example_dags_folder, list_py_files

    try:  # a node package: reached by name, as `updraft` imports no node package
        parsing = importlib.import_module("scheduler.parsing_pool")
    except ImportError:
        raise CannotReadDags("--local needs the scheduler package, which is not "
                             "installed") from None
    folders = [conf.dags_folder()]
    if conf.getboolean("core", "load_examples"):
        folders.append(example_dags_folder())
    safe_mode = conf.getboolean("core", "dag_discovery_safe_mode")
    paths = [str(path) for folder in folders if folder.exists()
             for path in list_py_files(folder, safe_mode)]
    try:
        return parsing.parse_here(
            paths, processes=conf.getint("scheduler", "parsing_processes"),
            import_timeout=conf.getfloat("core", "dagbag_import_timeout"),
            memory_limit_mb=conf.getint("scheduler", "parsing_memory_limit_mb"),
            folders=[str(f) for f in folders])
    except (RuntimeError, OSError) as exc:
        raise CannotReadDags(f"cannot parse the DAGs folder here: {exc}") from None


def _paused_if_stored() -> dict[str, bool]:
    """``dag_id -> is_paused`` from the store, or nothing if it cannot be read."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    try:
        with session_scope() as session:
            return dict(session.execute(select(DagModel.dag_id, DagModel.is_paused)).all())
    except (SQLAlchemyError, OSError):
        return {}


@dags.command("list")
@local_option
@dags_folder_option
@output_option
def list_dags(output: str, local: bool) -> None:
    """List the DAGs the scheduler stored (``--local``: parse the DAGs folder here).

    Imports no DAG file in this process. Exit codes: 0 listed (import errors are only
    counted on stderr), 2 wrong usage, 3 the DAGs could not be read.
    """
    columns = ["dag_id", "fileloc", "owners", "is_paused", "schedule", "tags"]
    if local:
        outcomes = _parse_here()
        paused = _paused_if_stored()
        rows = sorted(({"dag_id": d["dag_id"], "fileloc": d["fileloc"], "owners": d["owners"],
                        "is_paused": paused.get(d["dag_id"]), "schedule": d["schedule"],
                        "tags": ",".join(d["tags"])}
                       for outcome in outcomes for d in outcome.dags),
                      key=lambda row: row["dag_id"])
        failed = sum(1 for outcome in outcomes if outcome.error)
    else:
        from updraft.store.dags import list_dags as stored_dags
        from updraft.store.dags import list_import_errors

        def read(session):
            return stored_dags(session), len(list_import_errors(session))

        stored, failed = _read_store(read)
        rows = [{"dag_id": d.dag_id, "fileloc": d.fileloc, "owners": d.owners,
                 "is_paused": d.is_paused, "schedule": d.schedule, "tags": ",".join(d.tags)}
                for d in stored]
    print_rows(rows, output, columns)
    if failed and output == "table":
        click.echo(f"\n{failed} file(s) failed to import; see `updraft dags list-import-errors"
                   f"{' --local' if local else ''}`.", err=True)
    elif not rows and not failed and not local:
        click.echo(NOTHING_STORED, err=True)


@dags.command("list-import-errors")
@local_option
@dags_folder_option
@output_option
def list_import_errors(output: str, local: bool) -> None:
    """List the DAG files that failed to import, with their errors, as the scheduler stored
    them (``--local``: parse the DAGs folder here).

    Imports no DAG file in this process. Exit codes: 0 no import error, 1 at least one,
    2 wrong usage, 3 the DAGs could not be read.
    """
    if local:
        rows = [{"filepath": o.path, "error": o.error} for o in _parse_here() if o.error]
    else:
        from sqlalchemy import func, select

        from updraft.store.dags import list_import_errors as stored_errors
        from updraft.store.models import DagModel

        def read(session):
            return stored_errors(session), session.scalar(select(func.count(DagModel.dag_id)))

        errors, dag_count = _read_store(read)
        rows = [{"filepath": e.filename, "error": e.stacktrace} for e in errors]
        if not rows and not dag_count:
            click.echo(NOTHING_STORED, err=True)
    if output == "table" and rows:
        for row in rows:
            click.echo(f"{row['filepath']}\n{row['error'].rstrip()}\n")
    else:
        print_rows(rows, output, ["filepath", "error"])
    sys.exit(EXIT_IMPORT_ERRORS if rows else 0)


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
            if outcome.state is not None and str(outcome.state) in ("failed", "up_for_retry") \
                    and outcome.log_path:
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


def _ensure_dag_in_store(dag_id: str) -> None:
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


def _send_via_bus(verb: str, payload: dict) -> dict:
    """Send a command to the scheduler over NATS and return its reply (``--via-bus``)."""
    import importlib

    try:
        client = importlib.import_module("bus.client")
    except ImportError:
        raise click.ClickException("--via-bus needs the bus package, which is not "
                                   "installed") from None
    try:
        return client.request_command(verb, payload)
    except Exception as exc:  # noqa: BLE001  (every bus problem becomes one clear message)
        raise click.ClickException(f"the scheduler did not answer over NATS: {exc}") from None


via_bus_option = click.option("--via-bus", is_flag=True,
                              help="Send the command to the scheduler over NATS.")


@dags.command("trigger")
@click.argument("dag_id")
@click.option("--conf", "-c", "conf_json", help="JSON object passed as the run's conf.")
@click.option("--run-id", "-r", help="Run id (default manual__<logical date>).")
@click.option("--logical-date", "-l", "--exec-date", "-e", "logical_date",
              help="Logical date of the run (default: now).")
@via_bus_option
@dags_folder_option
@store_command
def trigger(dag_id: str, conf_json: str | None, run_id: str | None,
            logical_date: str | None, via_bus: bool) -> None:
    """Trigger a run of a DAG; the scheduler starts it."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope

    conf_value = parse_json_option(conf_json)
    when = parse_date(logical_date, what="--logical-date")
    if via_bus:
        reply = _send_via_bus("trigger", {"dag_id": dag_id, "conf": conf_value or {},
                                          "run_id": run_id, "logical_date": iso(when)})
        click.echo(f"Created run {reply['run_id']} of {dag_id} (via the bus)")
        return
    _ensure_dag_in_store(dag_id)
    try:
        with session_scope() as session:
            run = trigger_dag_run(session, dag_id, conf=conf_value, run_id=run_id,
                                  logical_date=when, triggered_by="cli", owner=_user())
            created = run.run_id
    except UpdraftException as exc:
        raise _store_error(exc) from None
    click.echo(f"Created run {created} of {dag_id}")


def _user() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001
        return "cli"


def _pause(dag_id: str, paused: bool, via_bus: bool) -> None:
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import set_paused
    from updraft.store.engine import session_scope

    if via_bus:
        _send_via_bus("pause" if paused else "unpause", {"dag_id": dag_id})
    else:
        _ensure_dag_in_store(dag_id)
        try:
            with session_scope() as session:
                set_paused(session, dag_id, paused, owner=_user())
        except UpdraftException as exc:
            raise _store_error(exc) from None
    click.echo(f"Dag: {dag_id}, paused: {paused}")


@dags.command("pause")
@click.argument("dag_id")
@via_bus_option
@dags_folder_option
@store_command
def pause(dag_id: str, via_bus: bool) -> None:
    """Pause a DAG: no new scheduled runs start."""
    _pause(dag_id, True, via_bus)


@dags.command("unpause")
@click.argument("dag_id")
@via_bus_option
@dags_folder_option
@store_command
def unpause(dag_id: str, via_bus: bool) -> None:
    """Unpause a DAG."""
    _pause(dag_id, False, via_bus)


@dags.command("delete-run")
@click.argument("dag_id")
@click.argument("run_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@via_bus_option
@store_command
def delete_run(dag_id: str, run_id: str, yes: bool, via_bus: bool) -> None:
    """Delete a run with its task instances, XComs and history."""
    from updraft.exceptions import UpdraftException
    from updraft.store.commands import delete_dag_run
    from updraft.store.engine import session_scope

    if not yes and not click.confirm(f"Delete run {run_id} of {dag_id}?", default=False):
        raise click.ClickException("Cancelled")
    if via_bus:
        _send_via_bus("delete_run", {"dag_id": dag_id, "run_id": run_id})
    else:
        try:
            with session_scope() as session:
                delete_dag_run(session, dag_id, run_id, owner=_user())
        except UpdraftException as exc:
            raise _store_error(exc) from None
    click.echo(f"Deleted run {run_id} of {dag_id}")


@dags.command("backfill")
@click.argument("dag_id")
@click.option("--start-date", "-s", required=True, help="First logical date (inclusive).")
@click.option("--end-date", "-e", required=True, help="Last logical date (inclusive).")
@click.option("--reset-dagruns", is_flag=True, help="Replace runs that already exist.")
@click.option("--dry-run", is_flag=True, help="Only list the runs that would be created.")
@click.option("--executor", help="Executor for the scheduler started here if none is running.")
@dags_folder_option
@store_command
def backfill(dag_id: str, start_date: str, end_date: str, reset_dagruns: bool, dry_run: bool,
             executor: str | None) -> None:
    """Create and run the scheduled runs between two dates, with a progress bar."""
    import importlib

    dag = get_dag_or_fail(dag_id)
    start = parse_date(start_date, dag.timezone, "--start-date")
    end = parse_date(end_date, dag.timezone, "--end-date")
    if end < start:
        raise click.BadParameter("the end date is before the start date", param_hint="-e")
    runner = importlib.import_module("scheduler.backfill")
    sys.exit(runner.run_backfill(dag, start, end, reset=reset_dagruns, dry_run=dry_run,
                                 executor_name=executor))


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
