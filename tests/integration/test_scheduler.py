"""The scheduler end to end, against real components: DAG files in a folder, the DAG
processor in child processes, a real store (SQLite; PostgreSQL for the concurrency tests),
and real executors (sequential, local processes, Dask in-process).

Every check reads the store, which is the truth: run and task instance states, try numbers
and the rows of ``task_instance_try`` (one per try that ran, so a try that ran twice shows).
Waits poll with generous deadlines; nothing asserts on durations.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import scheduler_helpers as h

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    """Fast scheduler settings, a DAGs folder and a migrated SQLite store; returns the folder."""
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    return dags


def midnight(days_ago: int) -> datetime:
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


# -- the DAG processor ---------------------------------------------------------------------------

SIMPLE = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
'''


def test_smoke_manual_run(env):
    h.write_dag(env, "simple", SIMPLE.format(dag_id="simple"))
    with h.running_scheduler(env, "sequential"):
        h.wait_parsed("simple")
        run_id = h.trigger("simple")
        assert h.wait_run("simple", run_id) == "success"
    assert h.states("simple", run_id) == {"a": ("success", 1), "b": ("success", 1)}


def test_new_file_is_parsed_with_its_serialized_form(env):
    from sqlalchemy import select

    from updraft.store.models import SerializedDagModel

    with h.running_scheduler(env, "sequential", parallelism=1):
        h.write_dag(env, "fresh", SIMPLE.format(dag_id="fresh"))
        row = h.wait_parsed("fresh")
    assert row.is_active and not row.is_paused and row.fileloc.endswith("fresh.py")
    with h.session() as s:
        stored = s.scalars(select(SerializedDagModel).where(
            SerializedDagModel.dag_id == "fresh")).all()
        assert len(stored) == 1 and stored[0].dag_hash == row.dag_hash
        assert "a" in json.dumps(stored[0].data) and "b" in json.dumps(stored[0].data)
    from updraft.store.dags import read_dag

    with h.session() as s:
        dag = read_dag(s, "fresh")
    assert sorted(dag.task_dict) == ["a", "b"]
    assert dag.task_dict["a"].downstream_task_ids == {"b"}


def test_import_error_recorded_then_cleared_when_fixed(env):
    broken = SIMPLE.format(dag_id="fragile") + '\nraise ValueError("the file is broken")\n'
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.write_dag(env, "fragile", broken)
        errors = h.wait_for(h.import_errors, what="an import error")
        assert set(errors) == {"fragile.py"}
        assert "Traceback" in errors["fragile.py"]
        assert 'ValueError: the file is broken' in errors["fragile.py"]
        assert 'raise ValueError("the file is broken")' in errors["fragile.py"]
        assert h.dag_row("fragile") is None
        h.write_dag(env, "fragile", SIMPLE.format(dag_id="fragile"))
        h.wait_parsed("fragile")
        h.wait_for(lambda: not h.import_errors(), what="the import error to be cleared")


def test_slow_file_times_out_without_blocking_the_others(env, monkeypatch):
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT", "2")
    conf.reload()
    h.write_dag(env, "slow", "import time\ntime.sleep(30)\n" + SIMPLE.format(dag_id="slow"))
    h.write_dag(env, "quick", SIMPLE.format(dag_id="quick"))
    started = time.monotonic()
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("quick")
        quick_after = time.monotonic() - started
        errors = h.wait_for(lambda: h.import_errors().get("slow.py"), what="the timeout")
    assert "DagBag import timeout" in errors and "after 2s" in errors
    assert h.dag_row("slow") is None
    # Not a speed check: the quick file must not wait for the 30 s sleep of the slow one.
    assert quick_after < 25, quick_after


def test_removed_file_marks_the_dag_inactive(env):
    path = h.write_dag(env, "doomed", SIMPLE.format(dag_id="doomed"))
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("doomed")
        path.unlink()
        h.wait_for(lambda: not h.dag_row("doomed").is_active, what="the DAG to be inactive")


WAIT_FILE = '''
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

FOLDER = Path({folder!r})


def wait_file(name, timeout=120):
    """Block until FOLDER/name exists (the test releases the task)."""
    deadline = time.monotonic() + timeout
    while not (FOLDER / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(name)
        time.sleep(0.05)
'''


def test_task_removed_mid_run_becomes_removed(env, tmp_path):
    body = WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task
from updraft.operators.empty import EmptyOperator

with DAG("shrinking", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def first():
        wait_file("release")

    first() >> [EmptyOperator(task_id="kept"){gone}]
'''
    h.write_dag(env, "shrinking", body.replace("{gone}", ', EmptyOperator(task_id="gone")'))
    with h.running_scheduler(env, "local", parallelism=1) as scheduler:
        old = h.wait_parsed("shrinking")
        run_id = h.trigger("shrinking")
        h.wait_for(lambda: h.states("shrinking", run_id)["first"][0] == "running",
                   what="first to run")
        h.write_dag(env, "shrinking", body.replace("{gone}", ""))
        new = h.wait_parsed("shrinking", hash_not=old.dag_hash)
        h.wait_scheduler_sees(scheduler, "shrinking", new.dag_hash)
        (tmp_path / "release").touch()
        assert h.wait_run("shrinking", run_id) == "success"
    assert h.states("shrinking", run_id) == {"first": ("success", 1), "kept": ("success", 1),
                                             "gone": ("removed", 0)}
