"""Airflow's own ``example_workday_timetable.py`` and ``example_custom_weight.py``, unchanged,
with their plugin modules (``workday.py``, ``decreasing_priority_weight_strategy.py``) in the
plugins folder, through a real scheduler: the runs, data intervals and priority order are the
ones Airflow gives.

The expected values are worked out here from Airflow's semantics, independently of
Updraft's code: the workday timetable (``AfterWorkdayTimetable``) gives one-day intervals on
weekdays (and not on US federal holidays when pandas is installed, which it is not here), and
with ``catchup=False`` (Airflow 3's default) the first one is today's or the next workday's;
a manual run at ``run_after`` covers the last workday before ``run_after``'s date; a backfill
covers every workday in the range. ``DecreasingPriorityStrategy`` gives ``max(3 - try + 1, 1)``
with try 0 when the task instance is created, the default ``downstream`` rule adds the
downstream tasks' ``priority_weight`` (Airflow's ``get_weight``), and the scheduler hands out
higher weights first.
"""

from __future__ import annotations

import importlib.util
import shutil
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
import scheduler_helpers as h

from updraft import compat

pytestmark = pytest.mark.timeout(240)

EXAMPLES = Path(__file__).resolve().parents[1] / "airflow_examples"
WORKDAY = "example_workday_timetable"
CUSTOM_WEIGHT = "example_custom_weight"


def _holidays() -> set[date]:
    """US federal holidays when pandas is importable (Airflow's plugin uses them then)."""
    if importlib.util.find_spec("pandas") is None:
        return set()
    from pandas.tseries.holiday import USFederalHolidayCalendar

    days = USFederalHolidayCalendar().holidays(start="2020-01-01", end="2030-12-31")
    return {d.date() for d in days.to_pydatetime()}


HOLIDAYS = _holidays()


def workday(day: date, step: int = 1) -> date:
    """The first day from ``day`` on (``step`` 1) or back (-1) that is a weekday and not a
    holiday: AfterWorkdayTimetable.get_next_workday."""
    while day.weekday() >= 5 or day in HOLIDAYS:
        day += timedelta(days=step)
    return day


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@pytest.fixture(autouse=True)
def compat_hook():
    yield
    compat.uninstall()


@pytest.fixture
def examples(tmp_path, monkeypatch, updraft_home, _sqlite_template):
    """The example DAGs and their plugins, copied as they are, and fast scheduler settings."""
    from updraft.config import conf

    dags, plugins = tmp_path / "dags", tmp_path / "plugins"
    shutil.copytree(EXAMPLES / "dags", dags)
    shutil.copytree(EXAMPLES / "plugins", plugins)
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("UPDRAFT__CORE__PLUGINS_FOLDER", str(plugins))
    conf.reload()
    from updraft.plugins import registry

    registry.reset()
    yield dags
    registry.reset()


def test_files_are_airflows_own():
    for path in [*EXAMPLES.glob("dags/*.py"), *EXAMPLES.glob("plugins/*.py")]:
        text = path.read_text()
        assert text.lstrip("#\n ").startswith("Licensed to the Apache Software Foundation")
        assert "Apache License, Version 2.0" in text
    assert "from airflow.example_dags.plugins.workday import AfterWorkdayTimetable" in \
        (EXAMPLES / "dags" / f"{WORKDAY}.py").read_text()


def test_examples_schedule_as_in_airflow(examples):
    from scheduler.runs import compute_next_dagrun, create_backfill_runs
    from updraft.store.commands import set_paused
    from updraft.store.dags import read_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    today = date.today()
    with h.running_scheduler(examples, executor="sequential", parallelism=1):
        h.wait_parsed(WORKDAY)
        h.wait_parsed(CUSTOM_WEIGHT)
        h.wait_for(lambda: h.dag_row(WORKDAY).next_dagrun_create_after,
                   what="the workday DAG's next run")
        row = h.dag_row(WORKDAY)
        with session_scope() as session:
            # Paused from here on: the backfill runs anyway, the timetable creates nothing.
            set_paused(session, WORKDAY, True, owner="test")
            stored = read_dag(session, WORKDAY)
            created = create_backfill_runs(session, stored, midnight(date(2021, 1, 1)),
                                           midnight(date(2021, 1, 12)), datetime.now(UTC))
        manual_at = datetime(2021, 1, 4, 12, tzinfo=UTC)
        manual = h.trigger(WORKDAY, logical_date=manual_at)
        for run_id in created:
            h.wait_run(WORKDAY, run_id)
        # example_custom_weight (catchup=False, daily) gets yesterday's run at once.
        h.wait_for(lambda: [r for r in h.runs(CUSTOM_WEIGHT)
                            if r.state in h.TERMINAL_RUN_STATES], what="the custom-weight run")

    # -- the workday timetable -----------------------------------------------------------
    assert stored.timetable_json == {"__type": "workday.AfterWorkdayTimetable", "data": {}}
    assert stored.timetable_summary == "AfterWorkdayTimetable"
    first = workday(today)  # catchup=False: today (00:00 UTC) or the next workday
    assert (row.next_dagrun, row.next_dagrun_data_interval_start,
            row.next_dagrun_data_interval_end, row.next_dagrun_create_after) == (
        midnight(first), midnight(first), midnight(first + timedelta(days=1)),
        midnight(first + timedelta(days=1)))

    runs = {r.run_id: r for r in h.runs(WORKDAY)}
    assert not [r for r in runs.values() if r.run_type == "scheduled"]  # nothing due yet
    expected_days = [d for d in (date(2021, 1, 1) + timedelta(days=i) for i in range(12))
                     if workday(d) == d]
    backfilled = sorted((r for r in runs.values() if r.run_type == "backfill"),
                        key=lambda r: r.logical_date)
    assert [(r.logical_date, r.data_interval_start, r.data_interval_end, r.state)
            for r in backfilled] == [
        (midnight(d), midnight(d), midnight(d + timedelta(days=1)), "success")
        for d in expected_days]
    if not HOLIDAYS:
        assert [d.day for d in expected_days] == [1, 4, 5, 6, 7, 8, 11, 12]
    # A manual run at run_after covers the last workday before run_after's date.
    last_workday = workday(manual_at.date() - timedelta(days=1), step=-1)
    run = runs[manual]
    assert (run.run_type, run.data_interval_start, run.data_interval_end) == (
        "manual", midnight(last_workday), midnight(last_workday + timedelta(days=1)))
    # As in Airflow, the next scheduled run follows the last automated run (the backfill's
    # last), the next workday after it, catchup or not.
    with session_scope() as session:
        compute_next_dagrun(session, session.get(DagModel, WORKDAY),
                            read_dag(session, WORKDAY), datetime.now(UTC))
        after = workday(expected_days[-1] + timedelta(days=1))
        assert (session.get(DagModel, WORKDAY).next_dagrun_data_interval_start,
                session.get(DagModel, WORKDAY).next_dagrun_data_interval_end) == (
            midnight(after), midnight(after + timedelta(days=1)))
        session.rollback()

    # -- the custom priority-weight strategy ---------------------------------------------
    (weighted,) = [r for r in h.runs(CUSTOM_WEIGHT) if r.run_type == "scheduled"]
    assert (weighted.data_interval_start, weighted.data_interval_end) == (
        midnight(today - timedelta(days=1)), midnight(today))
    tis = h.tis(CUSTOM_WEIGHT, weighted.run_id)
    assert {task: ti.priority_weight for task, ti in tis.items()} == {
        "start": 1 + (1 + 1 + 2),  # downstream: its own 1 plus task_1, task_2, task_non_custom
        "task_1": max(3 - 0 + 1, 1),  # DecreasingPriorityStrategy() instance
        "task_2": max(3 - 0 + 1, 1),  # the same class, given by its Airflow class path
        "task_non_custom": 2,  # priority_weight=2, nothing downstream
    }
    assert {ti.state for ti in tis.values()} == {"success"}
    # One slot: the tries after "start" run by weight, the custom-weighted ones first.
    order = [t.task_id for t in sorted(tis.values(), key=lambda t: t.start_date)]
    assert order[0] == "start" and set(order[1:3]) == {"task_1", "task_2"} \
        and order[3] == "task_non_custom"
