"""The ``updraft`` command.

Its own groups (``dags``, ``tasks``, ``db``, ``variables``, ``assets``, ...) live in this package and need
nothing but the ``updraft`` package. Everything else is registered in the entry-point group
``updraft.cli``, Updraft's own node commands like anyone else's (see ``pyproject.toml`` and
ADR 8): a plain name (``scheduler``) adds a command to ``updraft``, a dotted name
(``dags.backfill``) adds a subcommand to one of its groups. A registered command is imported
only when it runs: listing it in ``--help`` reads its registration and the docstring in its
source file, so ``updraft --help`` imports no node package, and no Flask, SQLAlchemy or Dask.
"""

from __future__ import annotations

import click

from updraft.cli.assets import assets
from updraft.cli.config_cmd import config
from updraft.cli.connections import connections
from updraft.cli.dags import dags
from updraft.cli.db import db
from updraft.cli.plugins import plugins
from updraft.cli.pools import pools
from updraft.cli.registered import RegisteredGroup, add_dags_folder_everywhere
from updraft.cli.tasks import tasks
from updraft.cli.variables import variables


@click.group(cls=RegisteredGroup, registered_prefix="",
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="updraft")
def main() -> None:
    """Updraft: author, schedule and watch workflows written as Python DAGs."""


for _command in (assets, config, connections, dags, db, plugins, pools, tasks, variables):
    main.add_command(_command)

__all__ = ["add_dags_folder_everywhere", "main"]

if __name__ == "__main__":
    main()
