"""``updraft assets``: list assets, show one with its producers and consumers, list events.

The store side of ``updraft assets event`` is here too (``record_event_in_store``); the
command itself is registered by the composition root (``assets.event``), which can also send
the event over NATS (``--via-bus``).
"""

from __future__ import annotations

import json

import click

from updraft.cli.db import store_command
from updraft.cli.options import output_option, print_rows
from updraft.cli.registered import RegisteredGroup

LIST_COLUMNS = ["name", "uri", "group", "events", "last_event"]
EVENT_COLUMNS = ["id", "asset_name", "timestamp", "source", "source_dag_id", "source_run_id",
                 "source_task_id", "extra"]


@click.group(cls=RegisteredGroup)
def assets() -> None:
    """Assets and their events (data-aware scheduling)."""


def _plain(row: dict) -> dict:
    return {k: (json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list))
                else v) for k, v in row.items()}


@assets.command("list")
@click.option("--search", "-s", help="Only assets whose name or URI contains this.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@output_option
@store_command
def list_assets(search: str | None, limit: int, output: str) -> None:
    """List assets with their event counts."""
    from updraft.store.assets import list_assets as listed
    from updraft.store.engine import session_scope

    with session_scope() as session:
        rows = listed(session, search=search, limit=limit)
    print_rows(rows if output == "json" else [_plain(r) for r in rows], output, LIST_COLUMNS)


@assets.command("details")
@click.argument("name")
@output_option
@store_command
def details(name: str, output: str) -> None:
    """Show an asset: its definition, producing tasks, consuming DAGs and waiting events."""
    from updraft.store.assets import asset_details
    from updraft.store.engine import session_scope

    with session_scope() as session:
        found = asset_details(session, name)
    if found is None:
        raise click.ClickException(f"no asset named {name!r} (see `updraft assets list`)")
    if output == "json":
        click.echo(json.dumps(found, indent=2, default=str))
        return
    rows = [{"property": k, "value": v} for k, v in _plain(found).items()]
    print_rows(rows, output, ["property", "value"])


@assets.command("events")
@click.argument("name", required=False)
@click.option("--limit", default=25, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--dag-id", help="Only events the DAG's tasks produced.")
@click.option("--run-id", help="Only events the run produced (with --dag-id), or, with "
                               "--consumed, the events that triggered it.")
@click.option("--consumed", is_flag=True,
              help="With --dag-id and --run-id: the events that triggered that run.")
@output_option
@store_command
def events(name: str | None, limit: int, dag_id: str | None, run_id: str | None,
           consumed: bool, output: str) -> None:
    """List asset events, newest first (of one asset, or of all)."""
    from updraft.store.assets import find_asset, list_events, run_triggering_events
    from updraft.store.engine import session_scope

    if consumed and not (dag_id and run_id):
        raise click.UsageError("--consumed needs --dag-id and --run-id")
    with session_scope() as session:
        if name is not None and find_asset(session, name=name) is None:
            raise click.ClickException(f"no asset named {name!r} (see `updraft assets list`)")
        if consumed:
            rows = run_triggering_events(session, dag_id, run_id, limit=limit)
        else:
            rows = list_events(session, name=name, ascending=False, limit=limit,
                               source_dag_id=dag_id, source_run_id=run_id)
    print_rows(rows if output == "json" else [_plain(r) for r in rows], output, EVENT_COLUMNS)


def record_event_in_store(name: str, extra: dict | None, msg_id: str | None = None
                          ) -> tuple[int, bool]:
    """Record an event of asset ``name`` from the command line: (event id, duplicate)."""
    from updraft.store.assets import UnknownAsset, record_outside_event
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow

    try:
        with session_scope(write=True) as session:
            return record_outside_event(session, name=name, extra=extra, source="cli",
                                        now=utcnow(), msg_id=msg_id)
    except UnknownAsset:
        raise click.ClickException(f"no asset named {name!r}: an asset exists once a DAG "
                                   "defines it or schedules on it (see `updraft assets list`)"
                                   ) from None
