"""The CLI's commands to the scheduler over NATS (``--via-bus``), which the composition root
registers as subcommands of ``updraft dags`` and ``updraft tasks`` (issue 15): each reaches a
real scheduler through a real NATS server and says what happened."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import scheduler_helpers as h
from click.testing import CliRunner

pytestmark = pytest.mark.timeout(180)

CHAIN_DAG = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
'''


@pytest.fixture
def bus_env(updraft_home, tmp_path, monkeypatch, _sqlite_template, nats_url):
    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template, nats_url,
                             "clibus")
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()


@contextmanager
def running(dags):
    """A scheduler (sequential executor) serving the bus, in a thread."""
    from bus.node import SchedulerBus
    from executors import get_executor
    from scheduler.core import Scheduler

    scheduler = Scheduler(get_executor("sequential"), dags_folder=str(dags))
    node = SchedulerBus(scheduler)
    node.start(wait=5)
    thread = threading.Thread(target=scheduler.run, name="test-scheduler", daemon=True)
    thread.start()
    try:
        yield
    finally:
        scheduler.stop()
        thread.join(timeout=60)
        node.stop()


def cli(*args: str):
    from updraft.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_trigger_pause_clear_and_delete_via_the_bus(bus_env):
    h.write_dag(bus_env, "chain", CHAIN_DAG.format(dag_id="chain"))
    with running(bus_env):
        h.wait_parsed("chain")
        unpaused = cli("dags", "unpause", "chain", "--via-bus")
        assert unpaused.stdout == "Dag: chain, paused: False\n", unpaused.output
        triggered = cli("dags", "trigger", "chain", "-r", "r1", "--via-bus")
        assert triggered.exit_code == 0, triggered.output
        assert (triggered.stdout, triggered.stderr) == ("Created run r1 of chain (via the bus)\n",
                                                        "")
        assert h.wait_run("chain", "r1") == "success"

        cleared = cli("tasks", "clear", "chain", "--run-id", "r1", "-t", "^b$", "--via-bus")
        assert cleared.stdout == "Cleared 1 task instance(s) (via the bus)\n", cleared.output
        assert h.wait_run("chain", "r1") == "success"

        assert cli("dags", "pause", "chain", "--via-bus").stdout == "Dag: chain, paused: True\n"
        waiting = cli("dags", "trigger", "chain", "-r", "r2", "--via-bus")
        assert waiting.stdout == "Created run r2 of chain (via the bus)\n"
        assert "chain is paused: the run stays queued until the DAG is unpaused" in waiting.stderr
        assert h.run_state("chain", "r2") == "queued"

        deleted = cli("dags", "delete-run", "chain", "r2", "--yes", "--via-bus")
        assert deleted.stdout == "Deleted run r2 of chain\n", deleted.output
        refused = cli("dags", "trigger", "nope", "--via-bus")
        assert refused.exit_code == 1
        assert "the scheduler refused 'trigger' (not_found):" in refused.output
        assert "'nope' not found" in refused.output
