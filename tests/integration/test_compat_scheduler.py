"""The Airflow DAG corpus runs unchanged through the scheduler too, with the same outcome as
``dag.test()``: every task instance ends in the same state after the same number of tries."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from updraft import compat
from updraft.state import DagRunState

from test_airflow_compat import CORPUS, supported_files

DAY = datetime(2024, 1, 2, tzinfo=UTC)


@pytest.fixture(autouse=True)
def compat_hook():
    yield
    compat.uninstall()
    sys.modules.pop("airflow", None)


@pytest.fixture
def scheduler(monkeypatch, updraft_home, _sqlite_template):
    """A real scheduler (DAG processor in child processes, sequential executor) on the corpus."""
    from updraft.config import conf

    shutil.copyfile(_sqlite_template, updraft_home / "updraft.db")
    for name, value in {
        "AIRFLOW_VAR_DEPLOY_ENV": "staging",
        "AIRFLOW_VAR_COMPAT_SETTINGS": '{"batch": 5}',
        "AIRFLOW_CONN_COMPAT_SQLITE": f"sqlite:///{updraft_home / 'compat.db'}",
        "UPDRAFT__CORE__DAGS_FOLDER": str(CORPUS),
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__SCHEDULER__RECONCILE_INTERVAL": "0.3",
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "0.5",
        "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "1",
    }.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    from executors import get_executor
    from scheduler.core import Scheduler

    job = Scheduler(get_executor("sequential"), run_processor=True)
    thread = threading.Thread(target=job.run, daemon=True)
    thread.start()
    yield job
    job.stop()
    thread.join(60)


def _wait(predicate, what: str, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _outcome(run) -> dict:
    return {(t.task_id, t.map_index): (str(t.state), t.try_number)
            for t in run.get_task_instances()}


def test_corpus_through_the_scheduler_matches_dag_test(scheduler):
    from updraft.dagbag import DagBag
    from updraft.runtime_models import DagRun
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel
    from updraft.store.runs import get_run

    bag = DagBag(dag_folder=CORPUS, include_examples=False)
    dag_ids = sorted(d.dag_id for d in bag.dags.values()
                     if d.fileloc.rsplit("/", 1)[-1] in supported_files())
    assert len(dag_ids) >= 12

    def parsed():
        with session_scope() as session:
            rows = [session.get(DagModel, d) for d in dag_ids]
            return all(r is not None and r.is_active for r in rows)

    _wait(parsed, "the corpus to be parsed by the scheduler")
    runs = {}
    with session_scope() as session:
        for dag_id in dag_ids:
            runs[dag_id] = trigger_dag_run(session, dag_id, logical_date=DAY,
                                           triggered_by="test").run_id
    scheduler.wake()

    def finished():
        with session_scope() as session:
            found = {d: get_run(session, d, r) for d, r in runs.items()}
            done = all(r.state in (DagRunState.SUCCESS, DagRunState.FAILED)
                       for r in found.values())
            if not done:
                return None
            runs_now = {d: DagRun.from_row(r) for d, r in found.items()}
        return {d: (str(r.state), _outcome(r)) for d, r in runs_now.items()}

    through_scheduler = _wait(finished, "every corpus run to finish", timeout=240)
    scheduler.stop()
    for dag_id in dag_ids:
        # dag.test replaces the scheduler's run at the same logical date: same inputs.
        expected = bag.get_dag(dag_id).test(logical_date=DAY)
        assert through_scheduler[dag_id] == (str(expected.state), _outcome(expected)), dag_id
