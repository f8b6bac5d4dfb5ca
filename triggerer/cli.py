"""``updraft triggerer``: run the triggerer node (ADR 11)."""

from __future__ import annotations

import logging

import click

from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option


@click.command("triggerer")
@click.option("--capacity", type=int, default=None,
              help="Most triggers this process runs at once (default: [triggerer] capacity).")
@dags_folder_option
@store_command
def triggerer(capacity: int | None) -> None:
    """Run deferred tasks' triggers: many on one event loop, shared with other triggerers
    through leases in the store."""
    from triggerer.node import run_triggerer

    logging.basicConfig(level=logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    run_triggerer(capacity=capacity)
