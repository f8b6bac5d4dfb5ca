"""``updraft connections``: add, get, list, delete, import and export connections.

Passwords are never printed in clear: listings show ``***`` in their place.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from updraft.cli.db import store_command
from updraft.cli.options import output_option, parse_json_option, print_rows

COLUMNS = ["conn_id", "conn_type", "host", "port", "login", "password", "schema", "extra",
           "description"]


@click.group()
def connections() -> None:
    """Manage connections (how tasks reach outside systems)."""


def _display(conn) -> dict:
    from updraft.secrets import REDACTED, redact

    row = conn.to_dict()
    if row["password"]:
        row["password"] = REDACTED
    if row["extra"]:
        extra = conn.extra_dejson
        row["extra"] = json.dumps(redact(extra)) if extra else REDACTED
    return {c: ("" if row.get(c) is None else row[c]) for c in COLUMNS}


def _invalid(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@connections.command("add")
@click.argument("conn_id")
@click.option("--conn-uri", default=None, help="The whole connection as a URI, e.g. postgres://user:pass@host:5432/db.")
@click.option("--conn-json", default=None, help="The whole connection as a JSON object of fields.")
@click.option("--conn-type", default=None, help="Connection type: postgres, mysql, http...")
@click.option("--conn-host", default=None)
@click.option("--conn-login", default=None)
@click.option("--conn-password", default=None)
@click.option("--conn-schema", default=None)
@click.option("--conn-port", type=int, default=None)
@click.option("--conn-extra", default=None, help="Extra fields as a JSON object.")
@click.option("--conn-description", default=None)
@store_command
def add_command(conn_id, conn_uri, conn_json, conn_type, conn_host, conn_login, conn_password,
                conn_schema, conn_port, conn_extra, conn_description) -> None:
    """Add connection CONN_ID (from --conn-uri, --conn-json or the --conn-* fields)."""
    from updraft.models.connection import Connection, InvalidConnectionError, add_connection

    fields = {"conn_type": conn_type, "host": conn_host, "login": conn_login,
              "password": conn_password, "schema": conn_schema, "port": conn_port,
              "extra": conn_extra}
    given = [name for name, value in fields.items() if value is not None]
    try:
        if conn_uri and conn_json:
            raise click.UsageError("give --conn-uri or --conn-json, not both")
        if (conn_uri or conn_json) and given:
            raise click.UsageError(
                f"--conn-{given[0].replace('_', '-')} cannot be combined with --conn-uri or "
                "--conn-json: put every field in one or the other")
        if conn_uri:
            conn = Connection(conn_id=conn_id, uri=conn_uri, description=conn_description)
        elif conn_json:
            conn = Connection.from_json(conn_json, conn_id=conn_id)
            conn.conn_id = conn_id
        else:
            if not conn_type:
                raise click.UsageError("give --conn-uri, --conn-json or at least --conn-type")
            if conn_extra is not None:
                parse_json_option(conn_extra, "--conn-extra")
            conn = Connection(conn_id=conn_id, description=conn_description, **fields)
        add_connection(conn)
    except (InvalidConnectionError, ValueError) as exc:
        raise _invalid(exc) from None
    click.echo(f"Connection {conn_id} added")


@connections.command("get")
@click.argument("conn_id")
@output_option
@store_command
def get_command(conn_id: str, output: str) -> None:
    """Show connection CONN_ID (password masked)."""
    from updraft.models.connection import get_connection

    conn = get_connection(conn_id)
    if conn is None:
        raise click.ClickException(f"Connection {conn_id} does not exist")
    print_rows([_display(conn)], output, COLUMNS)


@connections.command("delete")
@click.argument("conn_id")
@store_command
def delete_command(conn_id: str) -> None:
    """Delete connection CONN_ID."""
    from updraft.models.connection import delete_connection

    if not delete_connection(conn_id):
        raise click.ClickException(f"Connection {conn_id} does not exist")
    click.echo(f"Connection {conn_id} deleted")


@connections.command("list")
@output_option
@store_command
def list_command(output: str) -> None:
    """List every stored connection (passwords masked)."""
    from updraft.models.connection import list_connections

    print_rows([_display(c) for c in list_connections()], output, COLUMNS)


@connections.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                        path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace connections that already exist.")
@store_command
def import_command(file: Path, overwrite: bool) -> None:
    """Add connections from a JSON file: {"CONN_ID": "URI" or {fields}}."""
    from updraft.models.connection import (
        Connection,
        InvalidConnectionError,
        get_connection,
        update_connection,
    )
    from updraft.store.engine import session_scope

    try:
        with click.open_file(str(file), "r", encoding="utf-8") as handle:  # "-": stdin
            data = json.loads(handle.read())
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{file}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{file}: expected a JSON object of CONN_ID: URI or fields")
    added = skipped = 0
    try:
        with session_scope() as session:
            for conn_id, value in data.items():
                if isinstance(value, str):
                    conn = Connection(conn_id=conn_id, uri=value)
                else:
                    conn = Connection.from_json(value, conn_id=conn_id)
                    conn.conn_id = conn_id
                if not overwrite and get_connection(conn_id, session=session) is not None:
                    skipped += 1
                    click.echo(f"Connection {conn_id} exists: skipped (use --overwrite)")
                    continue
                update_connection(conn, session=session, create=True)
                added += 1
    except (InvalidConnectionError, ValueError) as exc:
        raise click.ClickException(f"{file}: {exc}; nothing was imported") from None
    click.echo(f"{added} connection(s) imported from {file}, {skipped} skipped")


@connections.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True,
                                        path_type=Path))
@store_command
def export_command(file: Path) -> None:
    """Write every connection to a JSON file, or to standard output with ``-`` (passwords in
    clear: keep the file private)."""
    from updraft.models.connection import list_connections

    data = {}
    for conn in list_connections():
        fields = {k: v for k, v in conn.to_dict().items() if k != "conn_id" and v is not None}
        data[conn.conn_id] = fields
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(file) == "-":
        click.echo(text, nl=False)
        click.echo(f"{len(data)} connection(s) exported to standard output", err=True)
        return
    import os

    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    file.chmod(0o600)
    click.echo(f"{len(data)} connection(s) exported to {file}")
