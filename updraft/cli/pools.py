"""``updraft pools``: create, change, list and delete pools, and the store functions behind them.

A pool caps how many task slots may run at once across every DAG that uses it. The default
pool, ``default_pool``, always exists and cannot be deleted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from updraft.cli.db import store_command
from updraft.cli.options import output_option, print_rows

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

COLUMNS = ["pool", "slots", "description", "include_deferred"]


def set_pool(session: Session, name: str, slots: int, description: str | None = None,
             include_deferred: bool | None = None) -> None:
    """Create pool ``name`` or change its slots and description (and whether deferred
    tasks hold its slots, Airflow's ``include_deferred``); does not commit."""
    from sqlalchemy import select

    from updraft.store.models import PoolModel

    if not name or not name.strip():
        raise ValueError("a pool needs a name")
    if slots < 0:
        raise ValueError(f"pool {name}: slots must be 0 or more, got {slots}")
    row = session.scalars(select(PoolModel).where(PoolModel.pool == name)).first()
    if row is None:
        row = PoolModel(pool=name)
        session.add(row)
    row.slots = slots
    if description is not None:
        row.description = description
    if include_deferred is not None:
        row.include_deferred = include_deferred
    elif row.include_deferred is None:
        row.include_deferred = False
    session.flush()


def get_pool(session: Session, name: str) -> dict | None:
    """Pool ``name`` as ``{"pool", "slots", "description"}``, or None."""
    from sqlalchemy import select

    from updraft.store.models import PoolModel

    row = session.scalars(select(PoolModel).where(PoolModel.pool == name)).first()
    return None if row is None else {"pool": row.pool, "slots": row.slots,
                                     "description": row.description or "",
                                     "include_deferred": bool(row.include_deferred)}


def list_pools(session: Session) -> list[dict]:
    """Every pool, sorted by name."""
    from sqlalchemy import select

    from updraft.store.models import PoolModel

    return [{"pool": r.pool, "slots": r.slots, "description": r.description or "",
             "include_deferred": bool(r.include_deferred)}
            for r in session.scalars(select(PoolModel).order_by(PoolModel.pool))]


def delete_pool(session: Session, name: str) -> int:
    """Delete pool ``name``; ValueError for the default pool; return rows deleted (0 or 1)."""
    from sqlalchemy import delete

    from updraft.store.migrate import DEFAULT_POOL
    from updraft.store.models import PoolModel

    if name == DEFAULT_POOL:
        raise ValueError(f"{DEFAULT_POOL} cannot be deleted: tasks without a pool run in it "
                         f"(change its size with `updraft pools set {DEFAULT_POOL} SLOTS ''`)")
    return session.execute(delete(PoolModel).where(PoolModel.pool == name)).rowcount or 0


@click.group()
def pools() -> None:
    """Manage pools (limits on how many tasks run at once)."""


@pools.command("set")
@click.argument("name")
@click.argument("slots", type=click.IntRange(min=0))
@click.argument("description")
@click.option("--include-deferred/--exclude-deferred", default=None,
              help="Whether deferred tasks hold this pool's slots (default: unchanged; a new "
                   "pool excludes them).")
@store_command
def set_command(name: str, slots: int, description: str, include_deferred: bool | None) -> None:
    """Create pool NAME with SLOTS slots, or change it."""
    from updraft.store.engine import session_scope

    try:
        with session_scope() as session:
            set_pool(session, name, slots, description, include_deferred)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Pool {name} set to {slots} slot(s)")


@pools.command("get")
@click.argument("name")
@output_option
@store_command
def get_command(name: str, output: str) -> None:
    """Show pool NAME."""
    from updraft.store.engine import session_scope

    with session_scope() as session:
        pool = get_pool(session, name)
    if pool is None:
        raise click.ClickException(f"Pool {name} does not exist")
    print_rows([pool], output, COLUMNS)


@pools.command("list")
@output_option
@store_command
def list_command(output: str) -> None:
    """List every pool."""
    from updraft.store.engine import session_scope

    with session_scope() as session:
        rows = list_pools(session)
    print_rows(rows, output, COLUMNS)


@pools.command("delete")
@click.argument("name")
@store_command
def delete_command(name: str) -> None:
    """Delete pool NAME (not the default pool)."""
    from updraft.store.engine import session_scope

    try:
        with session_scope() as session:
            deleted = delete_pool(session, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not deleted:
        raise click.ClickException(f"Pool {name} does not exist")
    click.echo(f"Pool {name} deleted")
