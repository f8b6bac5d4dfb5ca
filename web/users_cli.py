"""``updraft users``: create, list, delete users, reset passwords, issue API tokens."""

from __future__ import annotations

import json

import click

from updraft.cli.db import store_command
from web.auth.permissions import ROLES


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def users() -> None:
    """Manage the people (and programs) who may use the web UI and the API."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, help=f"One of: {', '.join(ROLES)}.")
@click.option("--email", default=None)
@click.option("--firstname", "first_name", default=None)
@click.option("--lastname", "last_name", default=None)
@click.option("--password", default=None, help="The password (prefer --random-password).")
@click.option("--random-password", is_flag=True,
              help="Generate a password and print it once.")
@store_command
def create_command(username, role, email, first_name, last_name, password, random_password):
    """Create a user with a role and a password."""
    from updraft.store.engine import session_scope
    from web.auth.audit import audit
    from web.auth.users import UserError, create_user, generate_password

    if role not in ROLES:
        raise click.BadParameter(f"unknown role {role!r}: choose one of {', '.join(ROLES)}",
                                 param_hint="--role")
    if bool(password) == bool(random_password):
        raise click.UsageError("give exactly one of --password or --random-password")
    if random_password:
        password = generate_password()
    try:
        with session_scope() as session:
            create_user(session, username, password, role, email=email, first_name=first_name,
                        last_name=last_name)
    except UserError as exc:
        raise _fail(exc) from None
    audit("user.create", owner="cli", extra={"username": username, "role": role})
    click.echo(f"User {username!r} created with role {role}.")
    if random_password:
        click.echo(f"Password (shown once): {password}")


@users.command("list")
@click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@store_command
def list_command(output: str) -> None:
    """List users and their roles."""
    from updraft.store.engine import session_scope
    from web.auth.users import list_users

    with session_scope() as session:
        rows = [{"username": u.username, "role": u.role, "email": u.email or "",
                 "active": u.active,
                 "last_login": u.last_login.isoformat() if u.last_login else ""}
                for u in list_users(session)]
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("No users. Create one with `updraft users create`.")
        return
    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in rows[0]}
    click.echo("  ".join(k.ljust(widths[k]) for k in widths))
    for row in rows:
        click.echo("  ".join(str(row[k]).ljust(widths[k]) for k in widths))


@users.command("delete")
@click.option("--username", required=True)
@store_command
def delete_command(username: str) -> None:
    """Delete a user and their API tokens."""
    from updraft.store.engine import session_scope
    from web.auth.audit import audit
    from web.auth.users import UserError, delete_user

    try:
        with session_scope() as session:
            delete_user(session, username)
    except UserError as exc:
        raise _fail(exc) from None
    audit("user.delete", owner="cli", extra={"username": username})
    click.echo(f"User {username!r} deleted.")


@users.command("reset-password")
@click.option("--username", required=True)
@click.option("--password", default=None)
@click.option("--random-password", is_flag=True,
              help="Generate a password and print it once.")
@store_command
def reset_password_command(username: str, password: str | None, random_password: bool) -> None:
    """Give a user a new password (their sessions end)."""
    from updraft.store.engine import session_scope
    from web.auth.audit import audit
    from web.auth.users import UserError, generate_password, set_password

    if bool(password) == bool(random_password):
        raise click.UsageError("give exactly one of --password or --random-password")
    if random_password:
        password = generate_password()
    try:
        with session_scope() as session:
            set_password(session, username, password)
    except UserError as exc:
        raise _fail(exc) from None
    audit("user.reset_password", owner="cli", extra={"username": username})
    click.echo(f"Password of {username!r} changed.")
    if random_password:
        click.echo(f"Password (shown once): {password}")


@users.command("set-role")
@click.option("--username", required=True)
@click.option("--role", required=True, help=f"One of: {', '.join(ROLES)}.")
@store_command
def set_role_command(username: str, role: str) -> None:
    """Give a user another role."""
    from updraft.store.engine import session_scope
    from web.auth.audit import audit
    from web.auth.users import UserError, set_role

    try:
        with session_scope() as session:
            set_role(session, username, role)
    except UserError as exc:
        raise _fail(exc) from None
    audit("user.set_role", owner="cli", extra={"username": username, "role": role})
    click.echo(f"User {username!r} now has role {role}.")


@users.command("token")
@click.option("--username", required=True)
@click.option("--name", default=None, help="A label for the token (for example the program).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Days until the token expires (default: never).")
@store_command
def token_command(username: str, name: str | None, expires_days: float | None) -> None:
    """Create an API token for a user and print it once (only its hash is kept)."""
    from updraft.store.engine import session_scope
    from web.auth.audit import audit
    from web.auth.users import UserError, create_token

    try:
        with session_scope() as session:
            token = create_token(session, username, name=name, expires_days=expires_days)
    except UserError as exc:
        raise _fail(exc) from None
    audit("token.create", owner="cli", extra={"username": username, "name": name})
    click.echo(token)
