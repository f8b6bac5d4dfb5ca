"""``updraft variables``: set, get, list, delete, import and export variables."""

from __future__ import annotations

import json
from pathlib import Path

import click

from updraft.cli.db import store_command
from updraft.cli.options import output_option, print_rows

_NO_DEFAULT = object()


@click.group()
def variables() -> None:
    """Manage variables (values DAGs read with Variable.get)."""


@variables.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--description", default=None, help="What the variable is for.")
@click.option("--json", "-j", "as_json", is_flag=True, help="VALUE is JSON: check and store it so.")
@store_command
def set_command(key: str, value: str, description: str | None, as_json: bool) -> None:
    """Create or replace variable KEY."""
    from updraft.models.variable import Variable

    if as_json:
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            raise click.ClickException(f"VALUE is not valid JSON: {exc.msg} at column {exc.colno}")
        Variable.set(key, parsed, description=description, serialize_json=True)
    else:
        Variable.set(key, value, description=description)
    click.echo(f"Variable {key} set")


@variables.command("get")
@click.argument("key")
@click.option("--json", "-j", "as_json", is_flag=True, help="Parse the value as JSON and print it so.")
@click.option("--default", "-d", default=None, help="Print this if KEY does not exist.")
@store_command
def get_command(key: str, as_json: bool, default: str | None) -> None:
    """Print the value of variable KEY."""
    from updraft.models.variable import Variable

    try:
        value = Variable.get(key, deserialize_json=as_json)
    except KeyError:
        if default is None:
            raise click.ClickException(f"Variable {key} does not exist") from None
        click.echo(default)
        return
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(value, indent=2) if as_json else value)


@variables.command("delete")
@click.argument("key")
@store_command
def delete_command(key: str) -> None:
    """Delete variable KEY."""
    from updraft.models.variable import Variable

    if not Variable.delete(key):
        raise click.ClickException(f"Variable {key} does not exist")
    click.echo(f"Variable {key} deleted")


@variables.command("list")
@output_option
@click.option("--show-values", is_flag=True, help="Print values too (sensitive ones stay masked).")
@store_command
def list_command(output: str, show_values: bool) -> None:
    """List every variable."""
    from updraft.models.variable import list_variables
    from updraft.secrets import REDACTED, should_hide_value_for_key

    rows = []
    for row in list_variables():
        item = {"key": row["key"], "description": row["description"] or ""}
        if show_values:
            item["val"] = REDACTED if should_hide_value_for_key(row["key"]) else row["val"]
        rows.append(item)
    print_rows(rows, output, ["key", "val", "description"] if show_values else ["key", "description"])


@variables.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True,
                                        path_type=Path))
@store_command
def import_command(file: Path) -> None:
    """Create or replace variables from a JSON file ({"KEY": value} or {"KEY": {"value", "description"}})."""
    from updraft.models.variable import Variable

    try:
        with click.open_file(str(file), "r", encoding="utf-8") as handle:  # "-": stdin
            data = json.loads(handle.read())
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{file}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{file}: expected a JSON object of KEY: value")
    from updraft.store.engine import session_scope

    with session_scope() as session:
        for key, value in data.items():
            description = None
            if isinstance(value, dict) and set(value) <= {"value", "description"} and "value" in value:
                description, value = value.get("description"), value["value"]
            if isinstance(value, str):
                Variable.set(key, value, description=description, session=session)
            else:
                Variable.set(key, value, description=description, serialize_json=True,
                             session=session)
    click.echo(f"{len(data)} variable(s) imported from {file}")


@variables.command("export")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True,
                                        path_type=Path))
@store_command
def export_command(file: Path) -> None:
    """Write every variable to a JSON file, or to standard output with ``-`` (values in
    clear: keep the file private)."""
    from updraft.models.variable import list_variables

    data = {}
    for row in list_variables():
        try:
            value = json.loads(row["val"]) if row["val"] is not None else None
        except json.JSONDecodeError:
            value = row["val"]
        data[row["key"]] = {"value": value, "description": row["description"]} if row["description"] else value
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if str(file) == "-":
        click.echo(text, nl=False)
        click.echo(f"{len(data)} variable(s) exported to standard output", err=True)
        return
    _write_private(file, text)
    click.echo(f"{len(data)} variable(s) exported to {file}")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (created so, never briefly open)."""
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)
