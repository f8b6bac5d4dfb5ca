"""``updraft db``: create, upgrade, check and reset the store.

Also home of ``store_command``, the decorator every command that reads or writes the store
uses: it migrates a brand-new store first and turns store errors into clean CLI errors.
"""

from __future__ import annotations

from functools import wraps

import click


def store_command(func):
    """Make sure the store is ready before ``func`` runs; report store errors as CLI errors."""

    @wraps(func)
    def wrapper(*args, **kwargs):
        from updraft.secrets import SecretsError
        from updraft.store.migrate import StoreNotReadyError, ensure_migrated

        try:
            ensure_migrated()
            return func(*args, **kwargs)
        except (StoreNotReadyError, SecretsError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group()
def db() -> None:
    """Create, upgrade, check or reset the store (the SQL database)."""


@db.command("migrate")
def migrate_command() -> None:
    """Upgrade the store to the newest schema (creates it if new; keeps data)."""
    from updraft.store.migrate import (
        StoreNotReadyError,
        current_revision,
        display_url,
        head_revision,
        migrate,
    )

    try:
        before = current_revision()
        head = head_revision()
        if before != head:
            click.echo(f"Migrating {display_url()} from {before or 'an empty store'} to {head}...")
        migrate()
    except StoreNotReadyError as exc:
        raise click.ClickException(str(exc)) from None
    if before == head:
        click.echo(f"{display_url()} is already at revision {head}: nothing to do.")
    else:
        click.echo(f"Done: the store is at revision {head}.")


@db.command("check")
def check_command() -> None:
    """Exit with status 1 unless the store is reachable and at the newest revision."""
    from updraft.store.migrate import StoreNotReadyError, check

    try:
        click.echo(check())
    except StoreNotReadyError as exc:
        raise click.ClickException(str(exc)) from None


@db.command("reset")
@click.option("--yes", "-y", is_flag=True, help="Confirm: every table and all data will be dropped.")
def reset_command(yes: bool) -> None:
    """Drop every table of the store and create the schema again (all data is lost)."""
    from updraft.store.migrate import StoreNotReadyError, display_url, reset

    where = display_url(None)
    if not yes:
        raise click.ClickException(
            f"`db reset` drops every table and all data of {where}; "
            "run `updraft db reset --yes` to confirm")
    try:
        reset()
    except StoreNotReadyError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Reset {where}: every table dropped and created again.")


@db.command("rotate-fernet-key")
@store_command
def rotate_fernet_key_command() -> None:
    """Re-encrypt every secret with the first key of [core] fernet_key (NEW,OLD during a rotation)."""
    from updraft.models.connection import rotate_connections
    from updraft.models.variable import rotate_variables
    from updraft.store.engine import session_scope

    with session_scope() as session:
        variables = rotate_variables(session)
        connections = rotate_connections(session)
    click.echo(f"Re-encrypted {variables} variable(s) and {connections} connection(s) "
               "with the first key; the old key may now be removed.")
