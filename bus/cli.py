"""``updraft events``: watch the bus (run and task state changes, heartbeats) live."""

from __future__ import annotations

import asyncio
import json
import sys

import click


@click.group()
def events() -> None:
    """Watch state changes and heartbeats on the NATS bus."""


def format_event(kind: str, msg) -> str:
    """One readable line for a decoded bus message."""
    if kind == "run":
        return (f"{msg.timestamp} run {msg.dag_id} {msg.run_id}: "
                f"{msg.old_state or 'none'} -> {msg.new_state}")
    if kind == "ti":
        index = f"[{msg.map_index}]" if msg.map_index >= 0 else ""
        cause = f" ({msg.cause})" if msg.cause else ""
        return (f"{msg.timestamp} ti  {msg.dag_id} {msg.run_id} {msg.task_id}{index} "
                f"try {msg.try_number}: {msg.old_state or 'none'} -> "
                f"{msg.new_state or 'none'}{cause}")
    if kind == "hb":
        return f"{msg.timestamp} hb  {msg.kind} {msg.node_id} {json.dumps(msg.info)}"
    return f"{kind} {msg}"


async def _tail(dag_id: str | None, heartbeats: bool, as_json: bool, count: int,
                ready=None) -> int:
    from bus import schemas, subjects
    from bus.connection import connect

    nc = await connect(name="updraft-events-tail")
    seen = 0
    done = asyncio.Event()

    def handler(kind: str, schema):
        async def on_msg(msg):
            nonlocal seen
            try:
                decoded = schema and schemas.decode(schema, msg.data)
            except schemas.SchemaError as exc:
                click.echo(f"unreadable message on {msg.subject}: {exc}", err=True)
                return
            if as_json:
                click.echo(json.dumps({"subject": msg.subject, "kind": kind,
                                       **decoded.to_dict()}))
            else:
                click.echo(format_event(kind, decoded))
            sys.stdout.flush()
            seen += 1
            if 0 < count <= seen:
                done.set()
        return on_msg

    await nc.subscribe(subjects.evt_run(dag_id), cb=handler("run", schemas.RunStateEvent))
    await nc.subscribe(subjects.evt_ti(dag_id), cb=handler("ti", schemas.TiStateEvent))
    if heartbeats:
        await nc.subscribe(subjects.hb(), cb=handler("hb", schemas.Heartbeat))
    await nc.flush()
    if ready is not None:
        ready()
    try:
        await done.wait()
    finally:
        await nc.close()
    return seen


@events.command("tail")
@click.option("--dag", "dag_id", help="Only this DAG's events (heartbeats are left out).")
@click.option("--heartbeats/--no-heartbeats", default=None,
              help="Show node heartbeats (default: yes without --dag, no with it).")
@click.option("--json", "as_json", is_flag=True, help="Print each message as JSON.")
@click.option("--count", "-n", type=int, default=0,
              help="Exit after this many messages (default: run until interrupted).")
def tail(dag_id: str | None, heartbeats: bool | None, as_json: bool, count: int) -> None:
    """Print run and task state changes (and heartbeats) as they happen."""
    from bus.connection import BusUnavailable

    if heartbeats is None:
        heartbeats = dag_id is None
    try:
        asyncio.run(_tail(dag_id, heartbeats, as_json, count))
    except BusUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
