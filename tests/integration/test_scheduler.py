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
from datetime import UTC, datetime, timedelta
from itertools import pairwise
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
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
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


def test_task_removed_mid_run_becomes_removed(env, tmp_path, monkeypatch):
    """With run_version_policy = latest, a run follows the newest graph (ADR 5); pinned
    runs keep theirs (tests/integration/test_dag_bundles.py)."""
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__CORE__RUN_VERSION_POLICY", "latest")
    conf.reload()
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


# -- runs ----------------------------------------------------------------------------------------

SCHEDULED = '''
from datetime import datetime, timedelta, timezone
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule={schedule}, start_date=datetime.fromisoformat({start!r}),
         catchup={catchup},
         **{extra}) as dag:
    EmptyOperator(task_id="only")
'''


def scheduled_dag(folder: Path, dag_id: str, schedule: str, start: datetime, catchup: bool,
                  **extra) -> None:
    h.write_dag(folder, dag_id, SCHEDULED.format(dag_id=dag_id, schedule=schedule,
                                                 start=start.isoformat(), catchup=catchup,
                                                 extra=repr(extra)))


def wait_runs_done(dag_id: str, count: int) -> list:
    def done():
        rows = h.runs(dag_id)
        return rows if len(rows) >= count and all(
            r.state in h.TERMINAL_RUN_STATES for r in rows) else None

    return h.wait_for(done, what=f"{count} finished runs of {dag_id}",
                      describe=lambda: ([(r.run_id, r.state) for r in h.runs(dag_id)],
                                        h.import_errors()))


@pytest.mark.parametrize("schedule", ["'@daily'", "'0 0 * * *'"])
def test_catchup_creates_one_run_per_missed_interval(env, schedule):
    scheduled_dag(env, "daily", schedule, midnight(3), catchup=True)
    with h.running_scheduler(env, "sequential", parallelism=1):
        rows = wait_runs_done("daily", 3)
        time.sleep(1.5)  # a few more passes: no fourth run may appear before tomorrow
        rows = h.runs("daily")
    assert [(r.run_type, r.state, r.logical_date, r.data_interval_start, r.data_interval_end)
            for r in rows] == [("scheduled", "success", midnight(d), midnight(d),
                                midnight(d - 1)) for d in (3, 2, 1)]
    assert [r.run_id for r in rows] == [f"scheduled__{midnight(d).isoformat()}"
                                        for d in (3, 2, 1)]
    assert not any(r.external_trigger for r in rows)
    row = h.dag_row("daily")
    assert (row.next_dagrun, row.next_dagrun_data_interval_end) == (midnight(0), midnight(-1))


def test_no_catchup_creates_only_the_latest_run(env):
    scheduled_dag(env, "latest", "'@daily'", midnight(3), catchup=False)
    with h.running_scheduler(env, "sequential", parallelism=1):
        wait_runs_done("latest", 1)
        time.sleep(1.5)
        rows = h.runs("latest")
    assert [(r.logical_date, r.data_interval_start, r.data_interval_end) for r in rows] == [
        (midnight(1), midnight(1), midnight(0))]


def test_timedelta_schedule(env):
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = hour - timedelta(hours=18)
    scheduled_dag(env, "every6h", "timedelta(hours=6)", start, catchup=True)
    with h.running_scheduler(env, "sequential", parallelism=1):
        wait_runs_done("every6h", 3)
        time.sleep(1.5)
        rows = h.runs("every6h")
    assert [(r.logical_date, r.data_interval_end) for r in rows] == [
        (start + timedelta(hours=6 * i), start + timedelta(hours=6 * (i + 1))) for i in range(3)]


def test_once_schedule_runs_once(env):
    scheduled_dag(env, "once", "'@once'", midnight(3), catchup=True)
    with h.running_scheduler(env, "sequential", parallelism=1):
        wait_runs_done("once", 1)
        time.sleep(1.5)
        rows = h.runs("once")
    assert len(rows) == 1 and rows[0].logical_date == midnight(3)
    assert rows[0].state == "success"


def test_paused_upon_creation_gets_no_runs_until_unpaused(env):
    from updraft.store.commands import set_paused

    scheduled_dag(env, "sleepy", "'@daily'", midnight(2), catchup=True,
                  is_paused_upon_creation=True)
    with h.running_scheduler(env, "sequential", parallelism=1):
        assert h.wait_parsed("sleepy").is_paused
        time.sleep(1.5)  # several reconcile passes
        assert h.runs("sleepy") == []
        with h.session() as s:
            assert set_paused(s, "sleepy", False) is True
        assert [r.state for r in wait_runs_done("sleepy", 2)] == ["success", "success"]


def test_max_active_runs_one_serialises_runs(env, tmp_path):
    body = WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task

with DAG("serial", schedule="@daily", start_date=datetime.fromisoformat({start!r}), catchup=True,
         max_active_runs=1) as dag:
    @task
    def work():
        time.sleep(0.3)

    work()
'''
    h.write_dag(env, "serial", body.format(start=midnight(3).isoformat()))
    with h.running_scheduler(env, "local", parallelism=4):
        rows = wait_runs_done("serial", 3)
    assert [r.state for r in rows] == ["success"] * 3
    for earlier, later in pairwise(rows):
        assert earlier.logical_date < later.logical_date
        assert earlier.end_date <= later.start_date, (earlier, later)


def test_dagrun_timeout_fails_the_run_and_skips_unfinished_tasks(env, tmp_path):
    body = WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task

with DAG("timed", schedule=None, start_date=datetime(2024, 1, 1),
         dagrun_timeout=timedelta(seconds=2)) as dag:
    @task
    def slow():
        wait_file("release")

    @task
    def after():
        pass

    slow() >> after()
'''
    h.write_dag(env, "timed", body)
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("timed")
        run_id = h.trigger("timed")
        assert h.wait_run("timed", run_id) == "failed"
        (tmp_path / "release").touch()  # the try ends; its outcome is refused by the store
    assert h.states("timed", run_id) == {"slow": ("skipped", 1), "after": ("skipped", 0)}
    assert any("dagrun_timeout" in e.cause for e in h.events("timed", run_id, "slow")
               if e.new_state == "skipped")
    # The try still running when the run timed out cannot record an outcome over "skipped".
    assert h.try_rows("timed") == []


PARAMS_DAG = '''
from datetime import datetime
from updraft import DAG, Param, task

with DAG("configured", schedule=None, start_date=datetime(2024, 1, 1),
         params={"size": Param(3, type="integer", minimum=1)}) as dag:
    @task
    def show(params=None, dag_run=None, logical_date=None):
        return {"size": params["size"], "conf": dag_run.conf,
                "logical_date": logical_date.isoformat()}

    show()
'''


def xcom(dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    from updraft.models.xcom import get_xcom

    with h.session() as s:
        return get_xcom(s, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index)


def test_manual_trigger_with_conf_and_logical_date(env):
    h.write_dag(env, "configured", PARAMS_DAG)
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("configured")
        run_id = h.trigger("configured", conf={"size": 7, "note": "hi"}, logical_date=when)
        assert h.wait_run("configured", run_id) == "success"
    assert run_id == f"manual__{when.isoformat()}"
    (run,) = h.runs("configured")
    assert (run.run_type, run.logical_date, run.data_interval_start, run.data_interval_end,
            run.external_trigger) == ("manual", when, when, when, True)
    assert xcom("configured", run_id, "show") == {
        "size": 7, "conf": {"size": 7, "note": "hi"}, "logical_date": when.isoformat()}


def test_trigger_refusals_are_precise(env):
    from updraft.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError

    h.write_dag(env, "configured", PARAMS_DAG)
    when = datetime(2024, 5, 1, tzinfo=UTC)
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("configured")
        h.trigger("configured", run_id="nightly", logical_date=when)
        with pytest.raises(DagRunAlreadyExists) as same_id:
            h.trigger("configured", run_id="nightly")
        with pytest.raises(DagRunAlreadyExists) as same_date:
            h.trigger("configured", run_id="other", logical_date=when)
        with pytest.raises(ParamValidationError) as bad_conf:
            h.trigger("configured", conf={"size": "big"})
        with pytest.raises(ParamValidationError) as too_small:
            h.trigger("configured", conf={"size": 0})
        with pytest.raises(DagNotFound) as missing:
            h.trigger("nope")
    assert str(same_id.value) == "A run with id 'nightly' of DAG 'configured' already exists"
    assert str(same_date.value) == ("A run of DAG 'configured' at logical date "
                                    "2024-05-01T00:00:00+00:00 already exists: nightly")
    assert str(bad_conf.value).startswith("DAG 'configured' refused the run: ")
    assert "size" in str(bad_conf.value) and "big" in str(bad_conf.value)
    assert "size" in str(too_small.value)
    assert "'nope' not found" in str(missing.value)
    assert [r.run_id for r in h.runs("configured")] == ["nightly"]


# -- dependencies, with the LocalExecutor ---------------------------------------------------------

RULES_DAG = '''
from datetime import datetime
from updraft import DAG, task
from updraft.operators.empty import EmptyOperator

with DAG("rules", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def boom():
        raise RuntimeError("boom")

    @task
    def fine():
        return "fine"

    failing, ok = boom(), fine()
    failing >> [EmptyOperator(task_id="on_failure", trigger_rule="one_failed"),
                EmptyOperator(task_id="needs_success"),
                EmptyOperator(task_id="cleanup", trigger_rule="all_done")]
    ok >> EmptyOperator(task_id="no_failure_seen", trigger_rule="one_failed")

    @task.branch
    def choose():
        return "left"

    left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
    join = EmptyOperator(task_id="join", trigger_rule="none_failed_min_one_success")
    choose() >> [left, right]
    left >> join
    right >> join
    right >> EmptyOperator(task_id="right_child")

    @task.short_circuit
    def gate():
        return False

    gate() >> EmptyOperator(task_id="gated") >> EmptyOperator(task_id="gated_child")

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def double(x):
        return 2 * x

    @task
    def total(values):
        return sum(values)

    total(double.expand(x=numbers()))
'''


def test_trigger_rules_branching_short_circuit_and_mapping(env):
    h.write_dag(env, "rules", RULES_DAG)
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("rules")
        run_id = h.trigger("rules")
        assert h.wait_run("rules", run_id) == "failed"  # leaf needs_success: upstream_failed
    assert h.states("rules", run_id) == {
        "boom": ("failed", 1), "fine": ("success", 1),
        "on_failure": ("success", 1), "needs_success": ("upstream_failed", 0),
        "cleanup": ("success", 1), "no_failure_seen": ("skipped", 0),
        "choose": ("success", 1), "left": ("success", 1), "right": ("skipped", 0),
        "join": ("success", 1), "right_child": ("skipped", 0),
        "gate": ("success", 1), "gated": ("skipped", 0), "gated_child": ("skipped", 0),
        "numbers": ("success", 1), ("double", 0): ("success", 1),
        ("double", 1): ("success", 1), ("double", 2): ("success", 1),
        "total": ("success", 1)}
    assert [xcom("rules", run_id, "double", i) for i in range(3)] == [2, 4, 6]
    assert xcom("rules", run_id, "total") == 12
    causes = [e.cause for e in h.events("rules", run_id, "right")]
    assert any("branch chose left" in c for c in causes), causes


def test_retry_after_retry_delay_counts_tries_exactly(env):
    h.write_dag(env, "retrying", '''
from datetime import datetime, timedelta
from updraft import DAG, task

with DAG("retrying", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(retries=1, retry_delay=timedelta(seconds=1))
    def flaky(ti=None):
        if ti.try_number == 1:
            raise ValueError("first try fails")
        return ti.try_number

    flaky()
''')
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("retrying")
        run_id = h.trigger("retrying")
        assert h.wait_run("retrying", run_id) == "success"
    assert h.states("retrying", run_id) == {"flaky": ("success", 2)}
    assert xcom("retrying", run_id, "flaky") == 2
    first, second = h.try_rows("retrying", run_id)
    assert (first.try_number, first.state, second.try_number, second.state) == (
        1, "up_for_retry", 2, "success")
    assert "ValueError: first try fails" in first.error
    # Correctness, not speed: the second try may not start before the retry delay is over.
    assert second.start_date >= first.end_date + timedelta(seconds=1)


def test_depends_on_past_waits_for_the_previous_run(env, tmp_path):
    body = WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task

with DAG("past", schedule="@daily", start_date=datetime.fromisoformat({start!r}),
         catchup=True) as dag:
    @task(depends_on_past=True)
    def step(logical_date=None):
        if logical_date == dag.start_date and not (FOLDER / "fixed").exists():
            raise RuntimeError("the first run fails until fixed")

    step()
'''
    from updraft.store.commands import clear_task_instances

    h.write_dag(env, "past", body.format(start=midnight(2).isoformat()))
    with h.running_scheduler(env, "local", parallelism=2):
        first_id = f"scheduled__{midnight(2).isoformat()}"
        second_id = f"scheduled__{midnight(1).isoformat()}"
        assert h.wait_run("past", first_id) == "failed"
        time.sleep(1.5)  # several passes: the second run must not start its task
        assert h.run_state("past", second_id) == "running"
        assert h.states("past", second_id) == {"step": ("none", 0)}
        (tmp_path / "fixed").touch()
        with h.session() as s:
            clear_task_instances(s, "past", run_id=first_id, owner="test")
        assert h.wait_run("past", first_id) == "success"
        assert h.wait_run("past", second_id) == "success"
    assert h.states("past", first_id) == {"step": ("success", 2)}
    assert h.states("past", second_id) == {"step": ("success", 1)}
    first = h.tis("past", first_id)["step"]
    second = h.tis("past", second_id)["step"]
    assert second.start_date >= first.end_date


def test_reschedule_continues_the_same_try(env, tmp_path):
    from sqlalchemy import select

    from updraft.store.models import TaskReschedule

    body = WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, BaseOperator
from updraft.exceptions import UpdraftRescheduleException
from updraft.store.models import utcnow


class PokeTwice(BaseOperator):
    """Reschedules itself once, then succeeds (a sensor in reschedule mode, minimal)."""

    def execute(self, context):
        marker = FOLDER / "poked"
        if not marker.exists():
            marker.touch()
            raise UpdraftRescheduleException(utcnow() + timedelta(seconds=1))
        return context["ti"].try_number


def second_poke():
    pokes = FOLDER / "pokes"
    count = len(pokes.read_text()) if pokes.exists() else 0
    pokes.write_text("x" * (count + 1))
    return count >= 1


with DAG("resched", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    PokeTwice(task_id="sensor") >> PokeTwice(task_id="after", trigger_rule="all_success")
    try:
        from updraft.sensors.python import PythonSensor
    except ImportError:  # the sensors package is optional for this test
        pass
    else:
        PythonSensor(task_id="python_sensor", mode="reschedule", poke_interval=0.5,
                     python_callable=second_poke)
'''
    h.write_dag(env, "resched", body)
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("resched")
        run_id = h.trigger("resched")
        assert h.wait_run("resched", run_id) == "success"
    final = h.states("resched", run_id)
    with_sensor = "python_sensor" in final
    assert final == {"sensor": ("success", 1), "after": ("success", 1),
                     **({"python_sensor": ("success", 1)} if with_sensor else {})}
    assert xcom("resched", run_id, "sensor") == 1
    assert sorted((r.task_id, r.try_number, r.state) for r in h.try_rows("resched", run_id)) \
        == [("after", 1, "success"), *([("python_sensor", 1, "success")] if with_sensor else []),
            ("sensor", 1, "success")]
    with h.session() as s:
        reschedules = s.scalars(select(TaskReschedule)).all()
        assert sorted((r.task_id, r.try_number) for r in reschedules) == [
            *([("python_sensor", 1)] if with_sensor else []), ("sensor", 1)]
    assert (tmp_path / "pokes").read_text() == "xx" or not with_sensor
    assert [e.new_state for e in h.events("resched", run_id, "sensor")] == [
        "scheduled", "queued", "running", "up_for_reschedule", "scheduled", "queued",
        "running", "success"]


def test_pool_of_one_slot_runs_tasks_one_at_a_time(env):
    from updraft.store.models import PoolModel

    with h.session() as s:
        s.add(PoolModel(pool="single", slots=1, description="one at a time"))
    h.write_dag(env, "pooled", '''
import time
from datetime import datetime
from updraft import DAG, task

with DAG("pooled", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    for name in ("p1", "p2", "p3"):
        task(task_id=name, pool="single")(lambda: time.sleep(0.4))()
''')
    with h.running_scheduler(env, "local", parallelism=3):
        h.wait_parsed("pooled")
        run_id = h.trigger("pooled")
        assert h.wait_run("pooled", run_id) == "success"
    spans = sorted((r.start_date, r.end_date) for r in h.tis("pooled", run_id).values())
    assert len(spans) == 3
    for (_, end), (start, _) in pairwise(spans):
        assert end <= start, spans


def test_priority_weight_orders_tasks_with_parallelism_one(env):
    h.write_dag(env, "priorities", '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("priorities", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    for name, weight in (("low", 1), ("high", 10), ("middle", 5)):
        EmptyOperator(task_id=name, priority_weight=weight, weight_rule="absolute")
''')
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("priorities")
        run_id = h.trigger("priorities")
        assert h.wait_run("priorities", run_id) == "success"
    rows = h.tis("priorities", run_id)
    assert sorted(rows, key=lambda t: rows[t].start_date) == ["high", "middle", "low"]
    assert [r.task_id for r in h.try_rows("priorities", run_id)] == ["high", "middle", "low"]


def test_execution_timeout_kills_a_long_task(env):
    h.write_dag(env, "slowtask", '''
import time
from datetime import datetime, timedelta
from updraft import DAG, task

with DAG("slowtask", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(execution_timeout=timedelta(seconds=1))
    def forever():
        time.sleep(120)

    forever()
''')
    with h.running_scheduler(env, "local", parallelism=1):
        h.wait_parsed("slowtask")
        run_id = h.trigger("slowtask")
        assert h.wait_run("slowtask", run_id) == "failed"
    assert h.states("slowtask", run_id) == {"forever": ("failed", 1)}
    (row,) = h.try_rows("slowtask", run_id)
    assert row.error.startswith("UpdraftTaskTimeout: Timeout, PID: ")
    assert "ran longer than 0:00:01" in row.error


# -- every executor, and PostgreSQL ---------------------------------------------------------------

SMALL_DAG = '''
from datetime import datetime, timedelta
from updraft import DAG, task

with DAG("small", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def start():
        return [1, 2]

    @task(retries=1, retry_delay=timedelta(seconds=0))
    def flaky(x, ti=None):
        if ti.try_number == 1:
            raise ValueError("first try fails")
        return x * 10

    @task
    def broken():
        raise RuntimeError("broken for good")

    @task
    def after_broken():
        pass

    @task(trigger_rule="all_done")
    def finish(values):
        return sorted(values)

    values = flaky.expand(x=start())
    broken() >> after_broken()
    finish(values)
'''

SMALL_EXPECTED = {
    "start": ("success", 1), ("flaky", 0): ("success", 2), ("flaky", 1): ("success", 2),
    "broken": ("failed", 1), "after_broken": ("upstream_failed", 0), "finish": ("success", 1)}


@pytest.mark.parametrize("kind", ["sequential", "local", "dask"])
def test_every_executor_gives_the_same_states_and_tries(env, kind):
    h.write_dag(env, "small", SMALL_DAG)
    with h.running_scheduler(env, kind, parallelism=2):
        h.wait_parsed("small")
        run_id = h.trigger("small")
        assert h.wait_run("small", run_id) == "failed"  # after_broken is a failed leaf
    assert h.states("small", run_id) == SMALL_EXPECTED
    assert xcom("small", run_id, "finish") == [10, 20]
    tries = sorted((r.task_id, r.map_index, r.try_number, r.state)
                   for r in h.try_rows("small", run_id))
    assert tries == [("broken", -1, 1, "failed"), ("finish", -1, 1, "success"),
                     ("flaky", 0, 1, "up_for_retry"), ("flaky", 0, 2, "success"),
                     ("flaky", 1, 1, "up_for_retry"), ("flaky", 1, 2, "success"),
                     ("start", -1, 1, "success")]


@pytest.fixture
def pg_url(env, postgres_url, monkeypatch):
    """The test's store on PostgreSQL (migrated and emptied), as the default store."""
    from sqlalchemy import delete

    from updraft.config import conf
    from updraft.store.engine import get_engine
    from updraft.store.migrate import _ensure_default_pool, migrate
    from updraft.store.models import Base

    migrate(postgres_url)
    with get_engine(postgres_url).begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))
        _ensure_default_pool(connection)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", postgres_url)
    conf.reload()
    return postgres_url


@pytest.mark.postgres
def test_postgres_end_to_end(pg_url, env):
    h.write_dag(env, "small", SMALL_DAG)
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("small")
        run_id = h.trigger("small")
        assert h.wait_run("small", run_id) == "failed"
    assert h.states("small", run_id) == SMALL_EXPECTED
    assert len(h.try_rows("small", run_id)) == 7


WIDE_DAG = '''
from datetime import datetime
from updraft import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64) as dag:
    @task
    def root():
        pass

    @task
    def leaf(i):
        return i

    top = root()
    for i in range({width}):
        top >> task(task_id=f"t{{i:02d}}")(leaf.function)(i)
'''


@pytest.mark.postgres
@pytest.mark.slow
def test_two_schedulers_on_postgres_never_run_a_try_twice(pg_url, env):
    from collections import Counter

    h.write_dag(env, "wide", WIDE_DAG.format(dag_id="wide", width=49))
    with h.running_scheduler(env, "local", parallelism=3) as first, \
            h.running_scheduler(env, "local", parallelism=3) as second:
        h.wait_parsed("wide")
        run_ids = [h.trigger("wide", run_id=f"run_{n}") for n in range(2)]
        for run_id in run_ids:
            assert h.wait_run("wide", run_id, timeout=180) == "success"
        assert first.node_id != second.node_id
    for run_id in run_ids:
        final = h.states("wide", run_id)
        assert len(final) == 50
        assert set(final.values()) == {("success", 1)}, final
        tries = Counter((r.task_id, r.map_index, r.try_number) for r in h.try_rows("wide", run_id))
        assert len(tries) == 50 and set(tries.values()) == {1}, tries
        assert all(r.state == "success" for r in h.try_rows("wide", run_id))
    # Which scheduler queued what varies from run to run; usually both take part.


# -- crash safety ---------------------------------------------------------------------------------

CRASH_SETTINGS = {"UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD": "3",
                  "UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "0.5"}


# A task whose first try waits two minutes (to be killed), and whose second succeeds.
DOOMED_DAG = '''
from updraft import DAG, task

with DAG("DAG_ID", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def doomed(ti=None):
        if ti.try_number == 1:
            (FOLDER / "pid").write_text(str(os.getpid()))
            time.sleep(120)
        return ti.try_number

    doomed()
'''


@pytest.fixture
def crash_env(env, monkeypatch):
    from updraft.config import conf

    for name, value in CRASH_SETTINGS.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    return env


def check_tries_consistent(dag_id: str, run_id: str) -> list:
    """Every task instance succeeded; its tries are 1..n, each recorded once, the last a
    success and the earlier ones failed by the scheduler (lost worker or zombie)."""
    from collections import defaultdict

    final = h.tis(dag_id, run_id)
    assert {r.state for r in final.values()} == {"success"}, h.states(dag_id, run_id)
    by_ti = defaultdict(list)
    for row in h.try_rows(dag_id, run_id):
        by_ti[row.task_id].append(row)
    assert set(by_ti) == set(final)
    earlier = []
    for task_id, rows in by_ti.items():
        numbers = sorted(r.try_number for r in rows)
        assert numbers == list(range(1, final[task_id].try_number + 1)), (task_id, numbers)
        rows.sort(key=lambda r: r.try_number)
        assert rows[-1].state == "success", (task_id, [(r.try_number, r.state) for r in rows])
        earlier += rows[:-1]
    for row in earlier:
        assert row.state == "up_for_retry", (row.task_id, row.state, row.error)
        assert any(cause in row.error for cause in (
            "zombie", "lost the try", "the try's process", "worker")), row.error
    return earlier


@pytest.mark.slow
def test_scheduler_killed_mid_run_recovers_with_every_task_once(crash_env, tmp_path):
    h.write_dag(crash_env, "crashy", WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task

with DAG("crashy", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64,
         default_args={"retries": 1, "retry_delay": timedelta(seconds=0)}) as dag:
    def nap(i):
        time.sleep(0.5)
        return i

    for i in range(40):
        task(task_id=f"t{i:02d}")(nap)(i)
''')
    log_path = tmp_path / "scheduler.log"
    process = h.start_scheduler_process(log_path, "local", UPDRAFT__CORE__PARALLELISM="4")
    try:
        h.wait_parsed("crashy")
        run_id = h.trigger("crashy")

        def mid_run():
            done = len(h.try_rows("crashy", run_id))
            running = [t for t, (s, _) in h.states("crashy", run_id).items() if s == "running"]
            return running if done >= 8 and running else None

        h.wait_for(mid_run, what="the run to be half way",
                   describe=lambda: log_path.read_text()[-3000:])
    finally:
        h.kill_group(process, signal.SIGKILL)
    assert process.returncode == -signal.SIGKILL
    assert h.run_state("crashy", run_id) == "running"
    with h.running_scheduler(crash_env, "local", parallelism=4):
        assert h.wait_run("crashy", run_id) == "success"
    earlier = check_tries_consistent("crashy", run_id)
    # The tries that ran when the scheduler and its workers were killed were lost with
    # them: the next scheduler failed them at once (their worker process is gone from this
    # host), without using a retry.
    assert earlier and all(r.error.startswith("lost: the worker running it was lost") and
                           "no longer runs on this host" in r.error and
                           "without using one of its retries" in r.error
                           for r in earlier), [r.error for r in earlier]


@pytest.mark.slow
def test_dask_worker_killed_mid_bundled_run_finishes_every_task_once(crash_env):
    """Tries go to Dask in bundles; a worker killed mid-run loses the bundles it held: Dask
    runs them again elsewhere, the store refuses what was already claimed, and the try the
    dead worker ran is failed as a zombie and retried."""
    from executors import get_executor

    h.write_dag(crash_env, "bundled", '''
import time
from datetime import datetime, timedelta
from updraft import DAG, task

with DAG("bundled", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=1000,
         default_args={"retries": 1, "retry_delay": timedelta(seconds=0)}) as dag:
    def nap(i):
        time.sleep(0.02)
        return i

    for i in range(300):
        task(task_id=f"t{i:03d}")(nap)(i)
''')
    executor = get_executor("dask", parallelism=64, n_workers=2, threads_per_worker=2,
                            processes=True, dashboard_address=None, scheduler_address="")
    with h.running_scheduler(crash_env, executor):
        h.wait_parsed("bundled")
        run_id = h.trigger("bundled")
        h.wait_for(lambda: len(h.try_rows("bundled", run_id)) >= 60,
                   what="a fifth of the run")
        victim = next(iter(executor.client.run(os.getpid).values()))
        os.kill(victim, signal.SIGKILL)
        assert h.wait_run("bundled", run_id) == "success"
        assert executor.bundled_tries > 0
    # Usually the dead worker's running tries show as zombies here, retried once.
    check_tries_consistent("bundled", run_id)


def test_killed_task_process_is_failed_and_retried(crash_env, tmp_path):
    h.write_dag(crash_env, "victim", WAIT_FILE.format(folder=str(tmp_path)) +
                DOOMED_DAG.replace("DAG_ID", "victim"))
    with h.running_scheduler(crash_env, "local", parallelism=1):
        h.wait_parsed("victim")
        run_id = h.trigger("victim")
        pid = int(h.wait_for(lambda: (tmp_path / "pid").exists() and
                             (tmp_path / "pid").read_text(), what="the task's pid"))
        os.kill(pid, signal.SIGKILL)
        assert h.wait_run("victim", run_id) == "success"
    assert h.states("victim", run_id) == {"doomed": ("success", 2)}
    (first,) = check_tries_consistent("victim", run_id)
    assert first.try_number == 1


@pytest.mark.slow
def test_task_of_a_dead_worker_elsewhere_is_failed_as_a_zombie(crash_env, tmp_path):
    from sqlalchemy import update

    from updraft.store.models import TaskInstanceModel

    h.write_dag(crash_env, "orphan", WAIT_FILE.format(folder=str(tmp_path)) +
                DOOMED_DAG.replace("DAG_ID", "orphan"))
    process = h.start_scheduler_process(tmp_path / "scheduler.log", "local")
    try:
        h.wait_parsed("orphan")
        run_id = h.trigger("orphan")
        h.wait_for(lambda: (tmp_path / "pid").exists(), what="the task to start")
    finally:
        h.kill_group(process, signal.SIGKILL)  # the scheduler and the task's worker die
    assert h.states("orphan", run_id) == {"doomed": ("running", 1)}
    # As if its worker had run on another machine: only its silence can tell it died.
    with h.session() as session:
        session.execute(update(TaskInstanceModel).where(TaskInstanceModel.run_id == run_id)
                        .values(worker="elsewhere:1:local"))
    with h.running_scheduler(crash_env, "sequential", parallelism=1):
        assert h.wait_run("orphan", run_id) == "success"
    (first,) = check_tries_consistent("orphan", run_id)
    assert "zombie: no heartbeat" in first.error and "threshold 3s" in first.error
    causes = [e.cause for e in h.events("orphan", run_id, "doomed")
              if e.old_state == "running" and e.new_state == "up_for_retry"]
    assert len(causes) == 1 and causes[0].startswith("lost: zombie"), causes


# -- the CLI ----------------------------------------------------------------------------------------

def cli(*args: str):
    from click.testing import CliRunner

    from updraft.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_cli_trigger_pause_unpause_list_runs(env):
    h.write_dag(env, "configured", PARAMS_DAG)
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("configured")
        paused = cli("dags", "pause", "configured")
        assert paused.exit_code == 0, paused.output
        assert paused.output.strip() == "Dag: configured, paused: True"
        assert h.dag_row("configured").is_paused
        result = cli("dags", "trigger", "configured", "-c", '{"size": 5}', "-r", "by_cli",
                     "-l", "2024-06-01T00:00:00+00:00")
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "Created run by_cli of configured"
        # A newcomer is told why the run will not start (issue 15).
        assert result.stderr.strip() == ("configured is paused: the run stays queued until "
                                         "the DAG is unpaused (`updraft dags unpause "
                                         "configured`).")
        time.sleep(1.5)  # Airflow: a paused DAG's manual runs wait, queued
        assert h.run_state("configured", "by_cli") == "queued"
        refused = cli("dags", "trigger", "configured", "-r", "by_cli")
        assert refused.exit_code == 1
        assert "A run with id 'by_cli' of DAG 'configured' already exists" in refused.output
        unpaused = cli("dags", "unpause", "configured")
        assert unpaused.output.strip() == "Dag: configured, paused: False"
        assert h.wait_run("configured", "by_cli") == "success"
    listed = cli("dags", "list-runs", "configured", "-o", "json")
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)
    assert {k: row[k] for k in ("dag_id", "run_id", "state", "run_type", "conf")} == {
        "dag_id": "configured", "run_id": "by_cli", "state": "success", "run_type": "manual",
        "conf": {"size": 5}}
    assert row["logical_date"].startswith("2024-06-01T00:00:00")
    assert xcom("configured", "by_cli", "show")["size"] == 5


def test_cli_clear_failed_and_downstream_reruns_them(env, tmp_path):
    h.write_dag(env, "fixable", WAIT_FILE.format(folder=str(tmp_path)) + '''
from updraft import DAG, task

with DAG("fixable", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def fine():
        return 1

    @task
    def extract():
        if not (FOLDER / "fixed").exists():
            raise RuntimeError("not fixed yet")

    @task
    def load():
        pass

    fine() >> extract() >> load()
''')
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("fixable")
        run_id = h.trigger("fixable")
        assert h.wait_run("fixable", run_id) == "failed"
        assert h.states("fixable", run_id) == {"fine": ("success", 1), "extract": ("failed", 1),
                                               "load": ("upstream_failed", 0)}
        (tmp_path / "fixed").touch()
        result = cli("tasks", "clear", "fixable", "-t", "^(fine|extract)$", "--only-failed",
                     "--downstream", "--yes")
        assert result.exit_code == 0, result.output
        assert "Cleared 2 task instance(s)" in result.output
        assert "extract  (failed)" in result.output and "load  (upstream_failed)" in result.output
        assert h.wait_run("fixable", run_id) == "success"
    assert h.states("fixable", run_id) == {"fine": ("success", 1), "extract": ("success", 2),
                                           "load": ("success", 1)}
    (run,) = h.runs("fixable")
    assert run.clear_number == 1


def test_cli_backfill_prints_a_summary(env):
    scheduled_dag(env, "filled", "'@daily'", datetime(2024, 1, 1, tzinfo=UTC),
                  catchup=False, is_paused_upon_creation=True)
    result = cli("dags", "backfill", "filled", "-s", "2024-01-02", "-e", "2024-01-04",
                 "--executor", "sequential")
    assert result.exit_code == 0, result.output
    assert "Backfill of filled: 3 run(s), 3 created" in result.output
    assert "Backfill done: 3 run(s) succeeded, 0 failed" in result.output
    rows = h.runs("filled")
    assert [(r.run_type, r.state, r.logical_date.day, r.data_interval_end.day) for r in rows] == [
        ("backfill", "success", d, d + 1) for d in (2, 3, 4)]


CALLBACK_DAG = '''
import os
from datetime import datetime
from updraft import DAG
from updraft.operators.bash import BashOperator


def record(context):
    with open(os.environ["CALLBACK_FILE"], "a") as handle:
        handle.write(f"{context['dag_run'].run_id} {context['reason']}\\n")


with DAG("called_back", start_date=datetime(2024, 1, 1), schedule=None,
         on_failure_callback=record) as dag:
    BashOperator(task_id="fails", bash_command="exit 1")
'''


def test_dag_failure_callback_runs_in_a_child_process(env, tmp_path, monkeypatch):
    marker = tmp_path / "callbacks.txt"
    monkeypatch.setenv("CALLBACK_FILE", str(marker))
    h.write_dag(env, "called_back", CALLBACK_DAG)
    with h.running_scheduler(env, "sequential", parallelism=1):
        h.wait_parsed("called_back")
        run_id = h.trigger("called_back")
        assert h.wait_run("called_back", run_id) == "failed"
        h.wait_for(marker.exists, what="the DAG's on_failure_callback to run")
    assert marker.read_text() == f"{run_id} leaf task(s) failed: fails\n"
