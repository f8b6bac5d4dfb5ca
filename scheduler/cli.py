"""``updraft scheduler``: run the scheduler node (and ``dags backfill``, which may run one)."""

from __future__ import annotations

import logging

import click

from updraft.cli.db import store_command
from updraft.cli.options import dags_folder_option


@click.command("scheduler")
@click.option("--num-runs", "-n", type=int, default=-1, show_default=True,
              help="Exit after this many loops (for tests); -1 runs forever.")
@click.option("--executor", help="Executor to use (default: [core] executor).")
@dags_folder_option
@store_command
def scheduler(num_runs: int, executor: str | None) -> None:
    """Run the scheduler: parse DAG files, create runs, dispatch tasks to the executor."""
    from scheduler.node import run_scheduler

    logging.basicConfig(level=logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    run_scheduler(num_runs=num_runs, executor_name=executor)
