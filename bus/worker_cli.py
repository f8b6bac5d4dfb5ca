"""``updraft worker``: run a NATS queue worker (see ``bus.worker``)."""

from __future__ import annotations

import logging
import os
import sys

import click

from updraft.cli.db import store_command


@click.command("worker")
@click.option("--queues", "-q", default=None,
              help="Comma-separated queues to serve (default: [worker] queues).")
@click.option("--concurrency", "-c", type=int, default=None,
              help="Tries run at once (default: [worker] concurrency).")
@click.option("--node-id", default=None, help="Name of this worker (default: host-pid-random).")
@store_command
def worker(queues: str | None, concurrency: int | None, node_id: str | None) -> None:
    """Run tasks from the NATS work queue (executor nats_queue) until SIGTERM."""
    from bus.connection import BusUnavailable
    from bus.worker import Worker, wait_for_stop_signals

    logging.basicConfig(level=logging.INFO,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    try:
        runner = Worker(queues=queues, concurrency=concurrency, node_id=node_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    wait_for_stop_signals(runner)
    try:
        abandoned = runner.run()
    except BusUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    sys.stdout.flush()
    sys.stderr.flush()
    if abandoned:
        # Pool threads still run user code and cannot be interrupted: leave without them.
        os._exit(3)
