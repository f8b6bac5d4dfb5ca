"""The subcommands of ``updraft dags`` and ``updraft tasks`` that reach a node package.

Each is registered in the entry-point group ``updraft.cli`` as ``<group>.<name>`` and joins
its group when it runs (``updraft.cli.registered``). Their store side is in ``updraft.cli``;
what they add is the node part:

- ``dags list`` and ``dags list-import-errors``: ``--local`` parses the DAGs folder with the
  DAG processor's pool (``scheduler.parsing_pool``), each file in a child process;
- ``dags trigger``, ``pause``, ``unpause``, ``delete-run`` and ``tasks clear``: ``--via-bus``
  sends the command to the scheduler over NATS (``bus.client``);
- ``dags backfill`` creates the runs and, if no scheduler is alive, runs one
  (``scheduler.backfill``);
- ``tasks logs`` prints a try's log and follows a running one on the bus (``bus.logs_cli``);
- ``assets event`` records an asset event; ``--via-bus`` sends it to the scheduler over NATS.

Node packages are imported inside the commands, when used, so loading this module stays
cheap: ``updraft dags list`` reads the store and imports no node package.
"""

from __future__ import annotations

import sys

import click

from updraft.cli.common import get_dag_or_fail, iso, parse_date
from updraft.cli.dags import (
    EXIT_IMPORT_ERRORS,
    LIST_COLUMNS,
    CannotReadDags,
    delete_run_in_store,
    is_paused,
    nothing_stored,
    pause_in_store,
    paused_if_stored,
    paused_run_hint,
    read_stored,
    stored_dag_rows,
    trigger_in_store,
)
from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option, output_option, parse_json_option, print_rows
from updraft.cli.tasks import clear_in_store

local_option = click.option(
    "--local", "-l", is_flag=True,
    help="Parse the DAGs folder here, each file in a child process as the scheduler does, "
         "instead of reading what the scheduler stored.")

via_bus_option = click.option("--via-bus", is_flag=True,
                              help="Send the command to the scheduler over NATS.")


# -- reading the DAGs ---------------------------------------------------------------------

def parse_here() -> list:
    """Parse every file of the DAGs folder (and the examples, if loaded) in child processes
    of this one, as the DAG processor does; the outcomes, by path."""
    from scheduler.parsing_pool import parse_here as parse_in_children
    from updraft.config import conf
    from updraft.dagbag import example_dags_folder, list_py_files

    folders = [conf.dags_folder()]
    if conf.getboolean("core", "load_examples"):
        folders.append(example_dags_folder())
    safe_mode = conf.getboolean("core", "dag_discovery_safe_mode")
    paths = [str(path) for folder in folders if folder.exists()
             for path in list_py_files(folder, safe_mode)]
    try:
        return parse_in_children(
            paths, processes=conf.getint("scheduler", "parsing_processes"),
            import_timeout=conf.getfloat("core", "dagbag_import_timeout"),
            memory_limit_mb=conf.getint("scheduler", "parsing_memory_limit_mb"),
            folders=[str(f) for f in folders])
    except (RuntimeError, OSError) as exc:
        raise CannotReadDags(f"cannot parse the DAGs folder here: {exc}") from None


@click.command("list")
@local_option
@dags_folder_option
@output_option
def list_dags(output: str, local: bool) -> None:
    """List the DAGs the scheduler stored (``--local``: parse the DAGs folder here).

    Imports no DAG file in this process. Exit codes: 0 listed (import errors are only
    counted on stderr), 2 wrong usage, 3 the DAGs could not be read.
    """
    empty_store = None
    if local:
        outcomes = parse_here()
        paused = paused_if_stored()
        rows = sorted(({"dag_id": d["dag_id"], "fileloc": d["fileloc"], "owners": d["owners"],
                        "is_paused": paused.get(d["dag_id"]), "schedule": d["schedule"],
                        "tags": ",".join(d["tags"])}
                       for outcome in outcomes for d in outcome.dags),
                      key=lambda row: row["dag_id"])
        failed = sum(1 for outcome in outcomes if outcome.error)
    else:
        listing = read_stored(dags=True)
        rows, failed = stored_dag_rows(listing), listing.import_error_count
        if not listing.dag_count and not failed:
            empty_store = listing.store
    if empty_store is not None:
        if output != "table":
            print_rows(rows, output, LIST_COLUMNS)
        click.echo(nothing_stored("list", empty_store), err=True)
        return
    print_rows(rows, output, LIST_COLUMNS)
    if failed and output == "table":
        click.echo(f"\n{failed} file(s) failed to import; see `updraft dags list-import-errors"
                   f"{' --local' if local else ''}`.", err=True)


@click.command("list-import-errors")
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
        rows = [{"filepath": o.path, "error": o.error} for o in parse_here() if o.error]
    else:
        listing = read_stored(import_errors=True)
        rows = [{"filepath": e.filename, "error": e.error} for e in listing.import_errors]
        if not rows and not listing.dag_count:
            click.echo(nothing_stored("list-import-errors", listing.store), err=True)
            if output == "table":
                sys.exit(0)
    if output == "table" and rows:
        for row in rows:
            click.echo(f"{row['filepath']}\n{row['error'].rstrip()}\n")
    else:
        print_rows(rows, output, ["filepath", "error"])
    sys.exit(EXIT_IMPORT_ERRORS if rows else 0)


# -- commands to the scheduler --------------------------------------------------------------

def send_via_bus(verb: str, payload: dict) -> dict:
    """Send a command to the scheduler over NATS and return its reply (``--via-bus``)."""
    from bus.client import CommandError, request_command

    try:
        return request_command(verb, payload)
    except CommandError as exc:
        if exc.code in ("unavailable", "timeout"):
            raise click.ClickException(f"the scheduler did not answer over NATS: "
                                       f"{exc.message}") from None
        raise click.ClickException(f"the scheduler refused {verb!r} ({exc.code}): "
                                   f"{exc.message}") from None
    except Exception as exc:  # noqa: BLE001  (every bus problem becomes one clear message)
        raise click.ClickException(f"the scheduler did not answer over NATS: {exc}") from None


@click.command("trigger")
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
    """Trigger a run of a DAG; the scheduler starts it (once the DAG is unpaused)."""
    conf_value = parse_json_option(conf_json)
    when = parse_date(logical_date, what="--logical-date")
    if via_bus:
        reply = send_via_bus("trigger", {"dag_id": dag_id, "conf": conf_value or {},
                                         "run_id": run_id, "logical_date": iso(when)})
        click.echo(f"Created run {reply['run_id']} of {dag_id} (via the bus)")
    else:
        created = trigger_in_store(dag_id, conf=conf_value, run_id=run_id, logical_date=when)
        click.echo(f"Created run {created} of {dag_id}")
    if is_paused(dag_id):
        click.echo(paused_run_hint(dag_id), err=True)


@click.command("event")
@click.argument("name")
@click.option("--extra", "-e", "extra_json", help="JSON object: the event's extra.")
@click.option("--id", "msg_id", help="An id that makes the event idempotent: a second event "
                                     "with the same id is not recorded again.")
@via_bus_option
@store_command
def asset_event(name: str, extra_json: str | None, msg_id: str | None, via_bus: bool) -> None:
    """Record an event of an asset, as an outside system would; the DAGs scheduled on it
    consume it."""
    from updraft.cli.assets import record_event_in_store

    extra = parse_json_option(extra_json, what="--extra") or {}
    if via_bus:
        from updraft.cli.dags import cli_user

        reply = send_via_bus("asset_event", {"name": name, "extra": extra, "id": msg_id,
                                             "owner": cli_user()})
        event_id, duplicate = reply["event_id"], reply.get("duplicate", False)
    else:
        event_id, duplicate = record_event_in_store(name, extra, msg_id)
    if duplicate:
        click.echo(f"Event {event_id} of asset {name} was already recorded with id {msg_id}")
    else:
        click.echo(f"Recorded event {event_id} of asset {name}")


def _pause(dag_id: str, paused: bool, via_bus: bool) -> None:
    if via_bus:
        send_via_bus("pause" if paused else "unpause", {"dag_id": dag_id})
    else:
        pause_in_store(dag_id, paused)
    click.echo(f"Dag: {dag_id}, paused: {paused}")


@click.command("pause")
@click.argument("dag_id")
@via_bus_option
@dags_folder_option
@store_command
def pause(dag_id: str, via_bus: bool) -> None:
    """Pause a DAG: no new run starts (triggered ones wait, queued)."""
    _pause(dag_id, True, via_bus)


@click.command("unpause")
@click.argument("dag_id")
@via_bus_option
@dags_folder_option
@store_command
def unpause(dag_id: str, via_bus: bool) -> None:
    """Unpause a DAG."""
    _pause(dag_id, False, via_bus)


@click.command("delete-run")
@click.argument("dag_id")
@click.argument("run_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@via_bus_option
@store_command
def delete_run(dag_id: str, run_id: str, yes: bool, via_bus: bool) -> None:
    """Delete a run with its task instances, XComs and history."""
    if not yes and not click.confirm(f"Delete run {run_id} of {dag_id}?", default=False):
        raise click.ClickException("Cancelled")
    if via_bus:
        send_via_bus("delete_run", {"dag_id": dag_id, "run_id": run_id})
    else:
        delete_run_in_store(dag_id, run_id)
    click.echo(f"Deleted run {run_id} of {dag_id}")


@click.command("clear")
@click.argument("dag_id")
@click.option("--task-regex", "-t", help="Only tasks whose id matches this regex.")
@click.option("--start-date", "-s", help="Only runs with a logical date on or after this.")
@click.option("--end-date", "-e", help="Only runs with a logical date on or before this.")
@click.option("--run-id", help="Only this run.")
@click.option("--only-failed", "-f", is_flag=True, help="Only failed task instances.")
@click.option("--only-running", "-r", is_flag=True, help="Only running task instances.")
@click.option("--upstream", "-u", is_flag=True, help="Include upstream tasks.")
@click.option("--downstream", "-d", is_flag=True, help="Include downstream tasks.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@via_bus_option
@store_command
def clear(dag_id: str, task_regex: str | None, start_date: str | None, end_date: str | None,
          run_id: str | None, only_failed: bool, only_running: bool, upstream: bool,
          downstream: bool, yes: bool, via_bus: bool) -> None:
    """Clear task instances so they run again."""
    options = {"task_regex": task_regex, "run_id": run_id,
               "start_date": parse_date(start_date, what="-s"),
               "end_date": parse_date(end_date, what="-e"), "upstream": upstream,
               "downstream": downstream, "only_failed": only_failed,
               "only_running": only_running}
    if via_bus:
        payload = {k: (iso(v) if hasattr(v, "isoformat") else v) for k, v in options.items()}
        reply = send_via_bus("clear", {"dag_id": dag_id, **payload})
        click.echo(f"Cleared {reply.get('count', 0)} task instance(s) (via the bus)")
        return
    clear_in_store(dag_id, options, yes)


# -- a scheduler here -----------------------------------------------------------------------

@click.command("backfill")
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
    from scheduler.backfill import run_backfill

    dag = get_dag_or_fail(dag_id)
    start = parse_date(start_date, dag.timezone, "--start-date")
    end = parse_date(end_date, dag.timezone, "--end-date")
    if end < start:
        raise click.BadParameter("the end date is before the start date", param_hint="-e")
    sys.exit(run_backfill(dag, start, end, reset=reset_dagruns, dry_run=dry_run,
                          executor_name=executor))


# -- the bus --------------------------------------------------------------------------------

@click.command("logs")
@click.argument("dag_id")
@click.argument("run_id")
@click.argument("task_id")
@click.option("--try", "try_number", type=int, default=None,
              help="Try number (default: the latest try).")
@click.option("--map-index", type=int, default=-1, show_default=True,
              help="Map index of a mapped task.")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing live lines (from the bus) until the try ends.")
@store_command
def logs(dag_id: str, run_id: str, task_id: str, try_number: int | None, map_index: int,
         follow: bool) -> None:
    """Print the log of a task try; with --follow, follow a running try live."""
    from bus.logs_cli import show_logs

    show_logs(dag_id, run_id, task_id, try_number=try_number, map_index=map_index,
              follow=follow)


__all__ = ["backfill", "clear", "delete_run", "list_dags", "list_import_errors", "logs",
           "parse_here", "pause", "send_via_bus", "trigger", "unpause"]
