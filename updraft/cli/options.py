"""Options and helpers that every ``updraft`` command shares."""

from __future__ import annotations

import json
import os
from functools import wraps

import click

from updraft.config import conf


def dags_folder_option(func):
    """Add ``--dags-folder`` (overrides ``[core] dags_folder`` for this command)."""

    @click.option("--dags-folder", "-S", "dags_folder", type=click.Path(file_okay=True),
                  default=None, help="Folder (or file) of DAG files; default: [core] dags_folder.")
    @wraps(func)
    def wrapper(*args, dags_folder=None, **kwargs):
        if dags_folder:
            os.environ["UPDRAFT__CORE__DAGS_FOLDER"] = str(os.path.abspath(dags_folder))
            conf.reload()
        return func(*args, **kwargs)

    return wrapper


def output_option(func):
    """Add ``-o/--output table|json|plain``."""
    return click.option("--output", "-o", type=click.Choice(["table", "json", "plain"]),
                        default="table", show_default=True, help="Output format.")(func)


def print_rows(rows: list[dict], output: str, columns: list[str] | None = None) -> None:
    """Print a list of dicts as JSON, plain tab-separated lines or an aligned table."""
    if output == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    columns = columns or (list(rows[0]) if rows else [])
    if output == "plain":
        for row in rows:
            click.echo("\t".join(str(row.get(c, "")) for c in columns))
        return
    if not rows:
        click.echo("No data found")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    click.echo(" | ".join(c.ljust(widths[c]) for c in columns))
    click.echo("-+-".join("-" * widths[c] for c in columns))
    for row in rows:
        click.echo(" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def parse_json_option(value: str | None, what: str = "--conf") -> dict | None:
    """Parse a JSON object given on the command line, with a precise error."""
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"invalid JSON ({exc.msg} at line {exc.lineno} column "
                                 f"{exc.colno}): {value!r}", param_hint=what) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"must be a JSON object, got {type(parsed).__name__}",
                                 param_hint=what)
    return parsed
