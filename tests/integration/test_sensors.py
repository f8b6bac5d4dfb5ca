"""Sensors end to end with ``dag.test()``: poke and reschedule modes, timeouts, backoff, and
the built-in sensors (file, time, python, bash, weekday, external task, ``@task.sensor``).

Poke mode runs on a fake clock (``_now``/``_sleep`` replaced), so nothing sleeps; reschedule
mode goes through the real runner and store with sub-second poke intervals.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from updraft.dag import DAG
from updraft.decorators import task
from updraft.exceptions import UpdraftException
from updraft.operators.python import PythonOperator
from updraft.sensors.base import BaseSensorOperator, PokeReturnValue
from updraft.sensors.bash import BashSensor
from updraft.sensors.external_task import ExternalTaskMarker, ExternalTaskSensor
from updraft.sensors.filesystem import FileSensor
from updraft.sensors.python import PythonSensor
from updraft.sensors.time import DateTimeSensor, TimeDeltaSensor, TimeSensor
from updraft.sensors.weekday import DayOfWeekSensor
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

START = datetime(2024, 1, 1, tzinfo=UTC)
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=UTC)


class FakeClock:
    """Replaces the sensors' clock: sleeping advances time instead of waiting."""

    def __init__(self, monkeypatch):
        self.now = datetime(2024, 6, 1, tzinfo=UTC)
        self.sleeps: list[float] = []
        clock = self
        monkeypatch.setattr(BaseSensorOperator, "_now", lambda self: clock.now)
        monkeypatch.setattr(BaseSensorOperator, "_sleep", lambda self, s: clock.sleep(s))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Even a zero-second sleep takes a moment of real time.
        self.now += timedelta(seconds=max(seconds, 0.001))


def _counting_poke(counter: Path, done_after: int, limit: int = 50):
    """A python_callable that is true from its ``done_after``-th call (counted in a file)."""

    def poke():
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        if n >= limit:
            raise RuntimeError(f"poked {n} times: the sensor never stopped")
        return n >= done_after

    return poke


def _store_rows(model, **where):
    from updraft.store.engine import session_scope

    with session_scope() as session:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        rows = session.scalars(query.order_by(model.id)).all()
        session.expunge_all()
        return rows


def _try_error(dag_id: str, task_id: str) -> str:
    from updraft.store.models import TaskInstanceTry

    rows = _store_rows(TaskInstanceTry, dag_id=dag_id, task_id=task_id)
    return rows[-1].error or ""


def _state(run, task_id: str) -> TI:
    return run.get_task_instance(task_id).state


# -- poke mode -------------------------------------------------------------------------------

def test_poke_mode_succeeds_after_n_pokes_and_pushes_xcom(tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch)
    counter = tmp_path / "count"
    poke = _counting_poke(counter, done_after=3)

    def wait():
        if poke():
            return PokeReturnValue(is_done=True, xcom_value={"found": "it"})
        return False

    with DAG("poke_ok", start_date=START, schedule=None) as dag:
        sensor = PythonSensor(task_id="wait", python_callable=wait, poke_interval=30)
        after = PythonOperator(task_id="after",
                               python_callable=lambda ti: ti.xcom_pull(task_ids="wait"))
        sensor >> after
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS
    assert counter.read_text() == "3"
    assert clock.sleeps == [30, 30]
    ti = run.get_task_instance("wait")
    assert ti.try_number == 1
    assert ti.xcom_pull(task_ids="wait") == {"found": "it"}
    assert ti.xcom_pull(task_ids="after") == {"found": "it"}


def test_poke_mode_timeout_fails_without_retry(tmp_path, monkeypatch):
    clock = FakeClock(monkeypatch)
    with DAG("poke_timeout", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=10,
                     timeout=35, retries=3, retry_delay=0)
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.FAILED
    ti = run.get_task_instance("wait")
    assert ti.state == TI.FAILED
    assert ti.try_number == 1  # a sensor timeout is not retried
    assert clock.sleeps == [10, 10, 10, 10]
    error = _try_error("poke_timeout", "wait")
    assert error.startswith("UpdraftSensorTimeout: Sensor has timed out; run duration of 40.0 "
                            "seconds exceeds the specified timeout of 35.0.")


def test_soft_fail_timeout_skips_and_downstream_skips(monkeypatch):
    FakeClock(monkeypatch)
    with DAG("soft_fail", start_date=START, schedule=None) as dag:
        sensor = PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=5,
                              timeout=5, soft_fail=True)
        sensor >> PythonOperator(task_id="after", python_callable=lambda: None)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "wait") == TI.SKIPPED
    assert _state(run, "after") == TI.SKIPPED
    assert run.state == DagRunState.SUCCESS


def test_silent_fail_keeps_poking_and_never_fail_skips(tmp_path, monkeypatch):
    FakeClock(monkeypatch)
    counter = tmp_path / "count"

    def flaky():
        n = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(n))
        if n < 3:
            raise OSError("not yet")
        return True

    def broken():
        raise OSError("boom")

    with DAG("silent", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="flaky", python_callable=flaky, poke_interval=1, silent_fail=True)
        PythonSensor(task_id="broken", python_callable=broken, poke_interval=1, never_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "flaky") == TI.SUCCESS
    assert counter.read_text() == "3"
    assert _state(run, "broken") == TI.SKIPPED


# -- reschedule mode -------------------------------------------------------------------------

def test_reschedule_mode_records_reschedules_and_keeps_try_number(tmp_path):
    from updraft.store.models import TaskReschedule, TiEvent

    counter = tmp_path / "count"
    with DAG("resched_ok", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="wait", python_callable=_counting_poke(counter, done_after=3),
                     poke_interval=0.1, mode="reschedule")
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS
    ti = run.get_task_instance("wait")
    assert ti.state == TI.SUCCESS
    assert ti.try_number == 1
    rows = _store_rows(TaskReschedule, dag_id="resched_ok", task_id="wait")
    assert len(rows) == 2
    assert {r.try_number for r in rows} == {1}
    for row in rows:
        assert row.reschedule_date - row.end_date <= timedelta(seconds=0.5)
        assert row.reschedule_date > row.start_date
    states = [e.new_state for e in _store_rows(TiEvent, dag_id="resched_ok", task_id="wait")]
    assert states.count("up_for_reschedule") == 2
    assert states[-1] == "success"


def test_reschedule_timeout_counts_from_first_poke(tmp_path):
    from updraft.store.models import TaskReschedule

    counter = tmp_path / "count"
    with DAG("resched_timeout", start_date=START, schedule=None) as dag:
        # Each poke takes no time: only the first reschedule row's start can make it time out.
        PythonSensor(task_id="wait", python_callable=_counting_poke(counter, done_after=10**6),
                     poke_interval=0.1, timeout=0.6, mode="reschedule")
    run = dag.test(logical_date=LOGICAL)
    ti = run.get_task_instance("wait")
    assert ti.state == TI.FAILED
    assert ti.try_number == 1
    rows = _store_rows(TaskReschedule, dag_id="resched_timeout", task_id="wait")
    assert len(rows) >= 3
    assert int(counter.read_text()) == len(rows) + 1
    assert "Sensor has timed out" in _try_error("resched_timeout", "wait")
    assert "UpdraftSensorTimeout" in _try_error("resched_timeout", "wait")


def test_reschedule_soft_fail_skips(tmp_path):
    with DAG("resched_soft", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=0.05,
                     timeout=0.2, mode="reschedule", soft_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "wait") == TI.SKIPPED


# -- exponential backoff ---------------------------------------------------------------------

def test_exponential_backoff_intervals_in_poke_mode(monkeypatch):
    clock = FakeClock(monkeypatch)
    with DAG("backoff", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=10,
                     timeout=2000, exponential_backoff=True, soft_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "wait") == TI.SKIPPED
    sleeps = clock.sleeps
    # Airflow's rule: the n-th wait is in [b, 2b) with b = max(int(10 * 2**(n-2)), 1),
    # never past the time left before the timeout.
    for n, seconds in enumerate(sleeps[:-1], start=1):
        base = max(int(10 * 2 ** (n - 2)), 1)
        assert base <= seconds < 2 * base, (n, seconds)
    assert 2000 <= sum(sleeps) <= 2001
    assert len(sleeps) >= 7


def test_exponential_backoff_capped_by_max_wait():
    with DAG("backoff_cap", start_date=START, schedule=None):
        sensor = PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=60,
                              exponential_backoff=True, max_wait=timedelta(minutes=3))
    started = datetime(2024, 1, 1, tzinfo=UTC)
    intervals = [sensor._get_next_poke_interval(started, 0, n) for n in range(1, 8)]
    assert intervals[0] < 60  # first wait is half the interval, with jitter
    assert max(intervals) == 180
    assert intervals == sorted(intervals) or max(intervals[3:]) == 180
    # Deterministic for the same inputs (the jitter is a hash, not a random draw).
    assert intervals == [sensor._get_next_poke_interval(started, 0, n) for n in range(1, 8)]


def test_exponential_backoff_in_reschedule_mode_estimates_the_poke_count():
    with DAG("backoff_resched", start_date=START, schedule=None):
        sensor = PythonSensor(task_id="wait", python_callable=lambda: False, poke_interval=10,
                              exponential_backoff=True, mode="reschedule")
    started = datetime(2024, 1, 1, tzinfo=UTC)
    early = sensor._get_next_poke_interval(started, 0, 1)
    later = sensor._get_next_poke_interval(started, 300, 1)
    assert 5 <= early < 10
    assert later >= 40  # several backoff steps fit in 300 s, so the wait has grown


# -- validation ------------------------------------------------------------------------------

def test_argument_validation_messages():
    with DAG("validation", start_date=START, schedule=None):
        with pytest.raises(UpdraftException, match="The mode must be one of "
                           r"\['poke', 'reschedule'\],'validation .s1'; received 'x'\."):
            PythonSensor(task_id="s1", python_callable=bool, mode="x")
        with pytest.raises(UpdraftException, match="Operator arg `poke_interval` must be "
                           "timedelta object or a non-negative number"):
            PythonSensor(task_id="s2", python_callable=bool, poke_interval=-1)
        with pytest.raises(UpdraftException, match="Operator arg `timeout` must be"):
            PythonSensor(task_id="s3", python_callable=bool, timeout=-5)
        with pytest.raises(ValueError, match="mutually exclusive"):
            PythonSensor(task_id="s4", python_callable=bool, soft_fail=True, never_fail=True)
        sensor = PythonSensor(task_id="s5", python_callable=bool,
                              poke_interval=timedelta(minutes=2), timeout=timedelta(hours=1))
    assert sensor.poke_interval == 120 and sensor.timeout == 3600
    assert sensor.is_sensor
    assert PythonSensor(task_id="s6", python_callable=bool).timeout == 7 * 24 * 3600


# -- built-in sensors ------------------------------------------------------------------------

def test_file_sensor_waits_for_file_written_upstream(tmp_path, monkeypatch):
    FakeClock(monkeypatch)
    base = tmp_path / "landing"
    (base / "in" / "deep").mkdir(parents=True)
    monkeypatch.setenv("UPDRAFT_CONN_FS_LANDING",
                       json.dumps({"conn_type": "fs", "extra": {"path": str(base)}}))

    def produce(ds):
        (base / "in" / "deep" / f"data_{ds}.csv").write_text("a,b\n")

    with DAG("files", start_date=START, schedule=None) as dag:
        make = PythonOperator(task_id="produce", python_callable=produce)
        exact = FileSensor(task_id="exact", fs_conn_id="fs_landing", poke_interval=1,
                           filepath="in/deep/data_{{ ds }}.csv", timeout=3)
        pattern = FileSensor(task_id="pattern", fs_conn_id="fs_landing", poke_interval=1,
                             filepath="in/**/*.csv", recursive=True, timeout=3)
        folder = FileSensor(task_id="folder", fs_conn_id="fs_landing", poke_interval=1,
                            filepath="in", timeout=3)
        absent = FileSensor(task_id="absent", filepath=str(base / "nope*.txt"),
                            poke_interval=1, timeout=2, soft_fail=True)
        make >> [exact, pattern, folder, absent]
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "exact") == TI.SUCCESS
    assert _state(run, "pattern") == TI.SUCCESS
    assert _state(run, "folder") == TI.SUCCESS
    assert _state(run, "absent") == TI.SKIPPED
    ti = run.get_task_instance("exact")
    assert ti.rendered_fields["filepath"] == "in/deep/data_2024-03-01.csv"


def test_time_sensors_in_the_past_succeed_at_once():
    with DAG("times", start_date=START, schedule="@daily") as dag:
        TimeDeltaSensor(task_id="delta", delta=timedelta(hours=1), poke_interval=3600)
        DateTimeSensor(task_id="datetime", target_time="{{ data_interval_end }}",
                       poke_interval=3600)
        DateTimeSensor(task_id="datetime_obj", target_time=datetime(2020, 1, 1),
                       poke_interval=3600)
        TimeSensor(task_id="time_of_day", target_time=time(0, 0), poke_interval=1)
    run = dag.test(logical_date=LOGICAL)
    for task_id in ("delta", "datetime", "datetime_obj"):
        assert _state(run, task_id) == TI.SUCCESS, task_id
    assert _state(run, "time_of_day") == TI.SUCCESS
    ti = run.get_task_instance("datetime")
    # A manual @daily run at noon covers the day before: the interval ends at midnight.
    assert ti.rendered_fields["target_time"] == "2024-03-01 00:00:00+00:00"


def test_time_sensors_in_the_future_wait(monkeypatch):
    clock = FakeClock(monkeypatch)
    clock.now = datetime(2024, 3, 1, 0, 30, tzinfo=UTC)
    with DAG("future", start_date=START, schedule="@daily") as dag:
        # The data interval ends at 2024-03-01 00:00: the delta is reached at 01:00.
        TimeDeltaSensor(task_id="delta", delta=timedelta(hours=1), poke_interval=600,
                        timeout=7200)
        DateTimeSensor(task_id="dt", target_time="2024-03-01T03:00:00",
                       poke_interval=600, timeout=3600)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "delta") == TI.SUCCESS
    assert clock.sleeps[:3] == [600, 600, 600]
    assert _state(run, "dt") == TI.FAILED  # 03:00 is more than an hour away
    with pytest.raises(TypeError, match="Expected str or datetime.datetime"):
        DateTimeSensor(task_id="bad", target_time=5)


def test_python_sensor_templates_and_context(monkeypatch):
    FakeClock(monkeypatch)
    seen = {}

    def check(path, templates_dict, ds, **kwargs):
        seen.update(path=path, templated=templates_dict["day"], ds=ds,
                    has_ti="ti" in kwargs)
        return True

    with DAG("py_ctx", start_date=START, schedule=None) as dag:
        PythonSensor(task_id="wait", python_callable=check,
                     op_kwargs={"path": "/data/{{ ds_nodash }}"},
                     templates_dict={"day": "{{ ds }}"})
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "wait") == TI.SUCCESS
    assert seen == {"path": "/data/20240301", "templated": "2024-03-01", "ds": "2024-03-01",
                    "has_ti": True}


def test_bash_sensor_exit_codes(tmp_path, monkeypatch):
    FakeClock(monkeypatch)
    marker = tmp_path / "marker"
    with DAG("bash_sensor", start_date=START, schedule=None) as dag:
        BashSensor(task_id="ok", bash_command="exit 0", poke_interval=1)
        # Fails twice (creating the marker on the second poke), then succeeds.
        BashSensor(task_id="eventually",
                   bash_command=f"if [ -f {marker} ]; then exit 0; fi; "
                                f"test -f {marker}.1 && touch {marker}; touch {marker}.1; "
                                "exit 3",
                   poke_interval=1, timeout=10)
        BashSensor(task_id="hard_fail", bash_command="exit 7", retry_exit_code=3,
                   poke_interval=1, retries=2, retry_delay=0)
        BashSensor(task_id="retry_code", bash_command="exit 3", retry_exit_code=3,
                   poke_interval=1, timeout=2, soft_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "ok") == TI.SUCCESS
    assert _state(run, "eventually") == TI.SUCCESS
    hard = run.get_task_instance("hard_fail")
    assert hard.state == TI.FAILED and hard.try_number == 1  # UpdraftFailException: no retry
    assert "Command exited with return code 7" in _try_error("bash_sensor", "hard_fail")
    assert _state(run, "retry_code") == TI.SKIPPED


def test_day_of_week_sensor(monkeypatch):
    FakeClock(monkeypatch)  # 2024-06-01 is a Saturday
    with DAG("weekday", start_date=START, schedule=None) as dag:
        DayOfWeekSensor(task_id="weekend", week_day={"saturday", "Sunday"})
        DayOfWeekSensor(task_id="logical_friday", week_day="FRIDAY",
                        use_task_logical_date=True)  # 2024-03-01 is a Friday
        DayOfWeekSensor(task_id="monday", week_day="monday", timeout=60, poke_interval=60,
                        soft_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "weekend") == TI.SUCCESS
    assert _state(run, "logical_friday") == TI.SUCCESS
    assert _state(run, "monday") == TI.SKIPPED
    with pytest.raises(AttributeError, match='Invalid Week Day passed: "Funday"'):
        DayOfWeekSensor(task_id="bad", week_day="Funday", dag=dag)


# -- ExternalTaskSensor ----------------------------------------------------------------------

def _upstream_dag(dag_id: str, fail: bool = False) -> DAG:
    def work():
        if fail:
            raise ValueError("upstream broke")

    with DAG(dag_id, start_date=START, schedule="@daily") as dag:
        PythonOperator(task_id="work", python_callable=work)
        ExternalTaskMarker(task_id="marker", external_dag_id="downstream",
                           external_task_id="wait")
    return dag


def test_external_task_sensor_waits_for_task_at_same_logical_date(monkeypatch):
    FakeClock(monkeypatch)
    upstream = _upstream_dag("upstream")
    assert upstream.test(logical_date=LOGICAL).state == DagRunState.SUCCESS
    with DAG("downstream", start_date=START, schedule="@daily") as dag:
        ExternalTaskSensor(task_id="wait", external_dag_id="upstream",
                           external_task_id="work", poke_interval=1, timeout=5,
                           check_existence=True)
        ExternalTaskSensor(task_id="wait_dag", external_dag_id="upstream", poke_interval=1,
                           timeout=5)
        ExternalTaskSensor(task_id="wait_other_day", external_dag_id="upstream",
                           external_task_ids=["work"], poke_interval=1, timeout=3,
                           execution_delta=timedelta(days=1), soft_fail=True)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "wait") == TI.SUCCESS
    assert _state(run, "wait_dag") == TI.SUCCESS
    assert _state(run, "wait_other_day") == TI.SKIPPED  # no upstream run the day before


def test_external_task_sensor_execution_delta_and_date_fn(monkeypatch):
    FakeClock(monkeypatch)
    upstream = _upstream_dag("upstream_delta")
    upstream.test(logical_date=LOGICAL - timedelta(hours=2))
    with DAG("downstream_delta", start_date=START, schedule=None) as dag:
        ExternalTaskSensor(task_id="by_delta", external_dag_id="upstream_delta",
                           external_task_id="work", execution_delta=timedelta(hours=2),
                           poke_interval=1, timeout=3)
        ExternalTaskSensor(task_id="by_fn", external_dag_id="upstream_delta",
                           external_task_id="work", poke_interval=1, timeout=3,
                           execution_date_fn=lambda dt: [dt - timedelta(hours=2)])
        ExternalTaskSensor(task_id="by_fn_ctx", external_dag_id="upstream_delta",
                           external_task_id="work", poke_interval=1, timeout=3,
                           execution_date_fn=lambda execution_date, context, ds:
                           execution_date - timedelta(hours=2 if ds == "2024-03-01" else 0))
        ExternalTaskSensor(task_id="same_date", external_dag_id="upstream_delta",
                           external_task_id="work", poke_interval=1, timeout=3)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "by_delta") == TI.SUCCESS
    assert _state(run, "by_fn") == TI.SUCCESS
    assert _state(run, "by_fn_ctx") == TI.SUCCESS
    assert _state(run, "same_date") == TI.FAILED
    assert "Sensor has timed out" in _try_error("downstream_delta", "same_date")


def test_external_task_sensor_failed_and_skipped_states(monkeypatch):
    FakeClock(monkeypatch)
    upstream = _upstream_dag("upstream_bad", fail=True)
    assert upstream.test(logical_date=LOGICAL).state == DagRunState.FAILED
    with DAG("downstream_bad", start_date=START, schedule=None) as dag:
        ExternalTaskSensor(task_id="fails", external_dag_id="upstream_bad",
                           external_task_id="work", failed_states=["failed"], poke_interval=1,
                           retries=1, retry_delay=0)
        ExternalTaskSensor(task_id="soft", external_dag_id="upstream_bad",
                           external_task_id="work", failed_states=["failed"], poke_interval=1,
                           soft_fail=True)
        ExternalTaskSensor(task_id="skips", external_dag_id="upstream_bad",
                           external_task_id="work", skipped_states=["failed"], poke_interval=1)
        ExternalTaskSensor(task_id="dag_failed", external_dag_id="upstream_bad",
                           allowed_states=["success"], failed_states=["failed"],
                           poke_interval=1)
        ExternalTaskSensor(task_id="missing", external_dag_id="no_such_dag",
                           check_existence=True, poke_interval=1)
    run = dag.test(logical_date=LOGICAL)
    assert _state(run, "fails") == TI.FAILED
    assert ("Some of the external tasks ['work'] in DAG upstream_bad failed."
            in _try_error("downstream_bad", "fails"))
    assert _state(run, "soft") == TI.SKIPPED
    assert _state(run, "skips") == TI.SKIPPED
    assert _state(run, "dag_failed") == TI.FAILED
    assert "The external DAG upstream_bad failed." in _try_error("downstream_bad", "dag_failed")
    assert _state(run, "missing") == TI.FAILED
    assert ("The external DAG no_such_dag does not exist."
            in _try_error("downstream_bad", "missing"))


def test_external_task_sensor_validation():
    with DAG("ext_validation", start_date=START, schedule=None):
        with pytest.raises(ValueError, match="Only one of `external_task_id` or "
                           "`external_task_ids`"):
            ExternalTaskSensor(task_id="a", external_dag_id="x", external_task_id="t",
                               external_task_ids=["t"])
        with pytest.raises(ValueError, match="Only one of `execution_delta` or "
                           "`execution_date_fn`"):
            ExternalTaskSensor(task_id="b", external_dag_id="x",
                               execution_delta=timedelta(1), execution_date_fn=lambda d: d)
        with pytest.raises(UpdraftException, match="Duplicate values provided"):
            ExternalTaskSensor(task_id="c", external_dag_id="x", external_task_id="t",
                               allowed_states=["success"], failed_states=["success"])
        with pytest.raises(ValueError, match="Valid values for `allowed_states`"):
            ExternalTaskSensor(task_id="d", external_dag_id="x", allowed_states=["skipped"])
        marker = ExternalTaskMarker(task_id="m", external_dag_id="x", external_task_id="t")
        with pytest.raises(ValueError, match="recursion_depth should be a positive integer"):
            ExternalTaskMarker(task_id="m2", external_dag_id="x", external_task_id="t",
                               recursion_depth=0)
    assert marker.logical_date == "{{ logical_date.isoformat() }}"
    assert marker.recursion_depth == 10


# -- @task.sensor ----------------------------------------------------------------------------

def test_task_sensor_decorator(tmp_path, monkeypatch):
    FakeClock(monkeypatch)
    counter = tmp_path / "count"

    with DAG("decorated", start_date=START, schedule=None) as dag:
        @task.sensor(poke_interval=5, timeout=60, mode="poke")
        def wait_for_value(threshold: int) -> PokeReturnValue:
            n = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(n))
            return PokeReturnValue(is_done=n >= threshold, xcom_value=n * 10)

        @task.sensor(poke_interval=5, timeout=12, soft_fail=True)
        def never() -> bool:
            return False

        @task
        def consume(value):
            return value + 1

        consume(wait_for_value(3))
        never()
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS
    ti = run.get_task_instance("wait_for_value")
    assert ti.state == TI.SUCCESS
    assert ti.xcom_pull(task_ids="wait_for_value") == 30
    assert ti.xcom_pull(task_ids="consume") == 31
    assert _state(run, "never") == TI.SKIPPED
    sensor = dag.get_task("wait_for_value")
    assert sensor.is_sensor and sensor.operator_name == "@task.sensor"
    assert sensor.poke_interval == 5 and sensor.mode == "poke"
