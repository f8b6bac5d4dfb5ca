"""Airflow's async example DAGs, unchanged (tests/airflow_examples/deferrable), through a
real scheduler and a triggerer: the outcomes are the ones Airflow gives.

``example_sensors``: every sensor ends as Airflow documents it. The async time sensors defer
(``wait_some_seconds_async`` waits 2 s in the triggerer), the one whose target is an hour
away times out after its 1 s ``timeout`` and, with ``soft_fail``, is skipped, like its poke
twin; the file sensors find the file another task creates; the run succeeds.
``example_time_delta_sensor_async``: ``wait`` defers for 30 s, then ``finish`` runs.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import scheduler_helpers as h
from test_deferral import running_triggerer

from updraft import compat

EXAMPLES = Path(__file__).resolve().parents[1] / "airflow_examples" / "deferrable"


@pytest.fixture(autouse=True)
def compat_hook():
    yield
    compat.uninstall()


@pytest.fixture
def examples(tmp_path, monkeypatch, updraft_home, _sqlite_template):
    from updraft.config import conf

    dags = tmp_path / "dags"
    shutil.copytree(EXAMPLES, dags)
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__PARALLELISM", "8")
    monkeypatch.setenv("UPDRAFT__TRIGGERER__POLL_INTERVAL", "0.5")
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    conf.reload()
    return dags


def deferred_at_some_point(dag_id: str, run_id: str, task_id: str) -> bool:
    return any(e.new_state == "deferred" for e in h.events(dag_id, run_id, task_id))


@pytest.mark.slow
def test_example_sensors_end_as_in_airflow(examples):
    with h.running_scheduler(examples, "local", parallelism=8) as scheduler, \
            running_triggerer(scheduler):
        h.wait_parsed("example_sensors")
        assert not h.import_errors()
        run_id = h.trigger("example_sensors")
        assert h.wait_run("example_sensors", run_id, timeout=120) == "success", \
            h.states("example_sensors", run_id)
    states = {task: state for task, (state, _try) in h.states("example_sensors", run_id).items()}
    now = datetime.now(UTC)
    # A target an hour ahead is a time of day: past midnight it is early today, so it fires.
    later = "skipped" if (now + timedelta(hours=1)).date() == now.date() else "success"
    monday = "success" if now.weekday() == 0 else "skipped"
    assert states == {
        "wait_some_seconds": "success", "wait_some_seconds_async": "success",
        "fire_immediately": "success", "fire_immediately_async": "success",
        "timeout_after_second_date_in_the_future": later,
        "timeout_after_second_date_in_the_future_async": later,
        "Sensor_succeeds": "success", "Sensor_fails_after_3_seconds": "skipped",
        "remove_file": "success", "wait_for_file": "success", "wait_for_file_async": "success",
        "create_file_after_3_seconds": "success", "success_sensor_python": "success",
        "failure_timeout_sensor_python": "skipped",
        "week_day_sensor_failing_on_timeout": monday, "print_date_in_bash": "success",
    }
    if later == "skipped":  # an hour ahead: it deferred, and its deferral timed out
        assert deferred_at_some_point("example_sensors", run_id,
                                      "timeout_after_second_date_in_the_future_async")
        lines = [e.cause for e in h.events("example_sensors", run_id,
                                           "timeout_after_second_date_in_the_future_async")]
        assert any("deferral timed out" in line for line in lines), lines
    tries = {t: n for t, (_s, n) in h.states("example_sensors", run_id).items()}
    assert tries["wait_some_seconds_async"] == 1


@pytest.mark.slow
def test_example_time_delta_sensor_async_waits_in_the_triggerer(examples):
    with h.running_scheduler(examples, "local") as scheduler, running_triggerer(scheduler):
        h.wait_parsed("example_time_delta_sensor_async")
        run_id = h.trigger("example_time_delta_sensor_async")
        h.wait_for(lambda: h.states("example_time_delta_sensor_async", run_id)
                   .get("wait", ("", 0))[0] == "deferred", 60, what="wait to defer")
        assert h.wait_run("example_time_delta_sensor_async", run_id, timeout=120) == "success"
    tis = h.tis("example_time_delta_sensor_async", run_id)
    assert (tis["wait"].state, tis["wait"].try_number) == ("success", 1)
    assert tis["finish"].state == "success"
    run = h.runs("example_time_delta_sensor_async")[0]
    assert tis["wait"].end_date >= run.data_interval_end + timedelta(seconds=30)
