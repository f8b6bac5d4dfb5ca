"""``updraft config``: print configuration values, with secrets masked."""

from __future__ import annotations

import json

import click

from updraft.cli.options import output_option, print_rows


def _shown(key: str, value) -> str:
    from updraft.secrets import REDACTED, should_hide_value_for_key

    if should_hide_value_for_key(key) or key in ("fernet_key", "sql_alchemy_conn", "nkeys_seed"):
        if key == "sql_alchemy_conn" and value:
            from sqlalchemy.engine import make_url
            from sqlalchemy.exc import ArgumentError

            try:
                return make_url(value).render_as_string(hide_password=True)
            except ArgumentError:
                return REDACTED
        return REDACTED if value not in ("", None) else ""
    return value if isinstance(value, str) else json.dumps(value)


@click.group()
def config() -> None:
    """Show the configuration (defaults, updraft.toml, UPDRAFT__SECTION__KEY variables)."""


@config.command("get-value")
@click.argument("section")
@click.argument("key")
def get_value_command(section: str, key: str) -> None:
    """Print the value of [SECTION] KEY (in clear: this is how scripts read it)."""
    from updraft.config import ConfigError, conf

    try:
        value = conf.get(section, key)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(value if isinstance(value, str) else json.dumps(value))


@config.command("list")
@click.option("--section", default=None, help="Only this section.")
@output_option
def list_command(section: str | None, output: str) -> None:
    """List every configuration value (secrets shown as ***)."""
    from updraft.config import conf

    values = conf.as_dict()
    if section is not None:
        if section not in values:
            raise click.ClickException(
                f"unknown section [{section}]; known: {', '.join(sorted(values))}")
        values = {section: values[section]}
    rows = [{"section": s, "key": k, "value": _shown(k, v)}
            for s, keys in values.items() for k, v in keys.items()]
    print_rows(rows, output, ["section", "key", "value"])
