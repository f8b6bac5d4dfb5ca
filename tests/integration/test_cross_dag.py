"""Across DAGs and the rest of the standard set, end to end with ``dag.test()``:
TriggerDagRunOperator (conf, wait_for_completion, failed_states, reset_dag_run,
skip_when_already_exists), LatestOnlyOperator, BranchDateTimeOperator,
BranchDayOfWeekOperator, ``@task.bash`` and ``days_ago``.

Target DAGs live in a DAGs folder the test writes (``[core] dags_folder``), since the trigger
operator loads them from there when the store does not know them yet.
"""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest

from updraft.config import conf
from updraft.dag import DAG
from updraft.decorators import task
from updraft.operators.datetime import BranchDateTimeOperator, target_times_as_dates
from updraft.operators.empty import EmptyOperator
from updraft.operators.latest_only import LatestOnlyOperator
from updraft.operators.trigger_dagrun import TriggerDagRunOperator
from updraft.operators.weekday import BranchDayOfWeekOperator
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI
from updraft.store.engine import session_scope
from updraft.store.runs import get_run
from updraft.tasklog import try_log_path
from updraft.utils import timezone
from updraft.utils.dates import days_ago
from updraft.utils.weekday import WeekDay

START = datetime(2024, 1, 1, tzinfo=UTC)
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=UTC)  # a Friday

TARGETS = '''
from datetime import datetime, timezone
import json
from pathlib import Path

from updraft.dag import DAG
from updraft.operators.python import PythonOperator


def record(dag_run, **_):
    Path(dag_run.conf["out"]).write_text(json.dumps({"conf": dag_run.conf,
                                                      "run_id": dag_run.run_id}))


def explode():
    raise RuntimeError("the target failed")


with DAG("target", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), schedule=None):
    PythonOperator(task_id="record", python_callable=record)

with DAG("target_fails", start_date=datetime(2024, 1, 1, tzinfo=timezone.utc), schedule=None):
    PythonOperator(task_id="explode", python_callable=explode)
'''


@pytest.fixture
def dags_folder(tmp_path, monkeypatch):
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "targets.py").write_text(textwrap.dedent(TARGETS))
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(folder))
    monkeypatch.setenv("UPDRAFT__CORE__LOAD_EXAMPLES", "False")
    conf.reload()
    return folder


def _states(run) -> dict[str, TI]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _log(run, task_id: str) -> str:
    return try_log_path(conf.log_folder(), run.dag_id, run.run_id, task_id, -1, 1).read_text()


def _stored_run(dag_id: str, run_id: str):
    with session_scope() as session:
        run = get_run(session, dag_id, run_id)
        return None if run is None else SimpleNamespace(state=run.state, conf=run.conf,
                                                        logical_date=run.logical_date)


# -- TriggerDagRunOperator ----------------------------------------------------------------------


def test_trigger_with_conf_and_wait_runs_the_target(dags_folder, tmp_path):
    out = tmp_path / "target_out.json"
    with DAG("controller", start_date=START, schedule=None) as dag:
        TriggerDagRunOperator(task_id="trigger", trigger_dag_id="target",
                              trigger_run_id="from_controller_{{ ds_nodash }}",
                              conf={"out": str(out), "day": "{{ ds }}"},
                              logical_date="{{ ts }}", wait_for_completion=True,
                              poke_interval=0.05)
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"trigger": TI.SUCCESS}
    assert json.loads(out.read_text()) == {
        "conf": {"out": str(out), "day": "2024-03-01"}, "run_id": "from_controller_20240301"}
    ti = run.get_task_instance("trigger")
    assert ti.xcom_pull(task_ids="trigger", key="trigger_run_id") == "from_controller_20240301"
    assert ti.xcom_pull(task_ids="trigger") is None
    stored = _stored_run("target", "from_controller_20240301")
    assert stored.state == DagRunState.SUCCESS and stored.logical_date == LOGICAL


def test_trigger_without_wait_leaves_a_queued_run(dags_folder, tmp_path):
    with DAG("controller_nowait", start_date=START, schedule=None) as dag:
        TriggerDagRunOperator(task_id="trigger", trigger_dag_id="target",
                              conf={"out": str(tmp_path / "never.json")})
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"trigger": TI.SUCCESS}
    run_id = run.get_task_instance("trigger").xcom_pull(task_ids="trigger",
                                                       key="trigger_run_id")
    assert run_id.startswith("manual__")
    stored = _stored_run("target", run_id)
    assert stored.state == DagRunState.QUEUED
    assert stored.conf == {"out": str(tmp_path / "never.json")}


def test_failed_target_fails_the_waiting_trigger(dags_folder):
    with DAG("controller_fail", start_date=START, schedule=None) as dag:
        TriggerDagRunOperator(task_id="strict", trigger_dag_id="target_fails",
                              trigger_run_id="strict", wait_for_completion=True,
                              poke_interval=0.05)
        TriggerDagRunOperator(task_id="lenient", trigger_dag_id="target_fails",
                              trigger_run_id="lenient", wait_for_completion=True,
                              poke_interval=0.05, allowed_states=["success", "failed"],
                              failed_states=[])
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"strict": TI.FAILED, "lenient": TI.SUCCESS}
    assert "target_fails failed with failed states failed" in _log(run, "strict")
    assert _stored_run("target_fails", "strict").state == DagRunState.FAILED


def test_existing_run_fails_skips_or_is_reset(dags_folder, tmp_path):
    out = tmp_path / "reset.json"
    target_conf = {"out": str(out)}

    def controller(dag_id: str, **options) -> DAG:
        with DAG(dag_id, start_date=START, schedule=None) as dag:
            TriggerDagRunOperator(task_id="trigger", trigger_dag_id="target",
                                  trigger_run_id="fixed", conf=target_conf,
                                  wait_for_completion=True, poke_interval=0.05, **options)
        return dag

    assert _states(controller("first").test(logical_date=LOGICAL)) == {"trigger": TI.SUCCESS}
    out.unlink()
    again = controller("again").test(logical_date=LOGICAL)
    assert _states(again) == {"trigger": TI.FAILED}
    assert "already exists" in _log(again, "trigger")
    skipped = controller("skipper", skip_when_already_exists=True).test(logical_date=LOGICAL)
    assert _states(skipped) == {"trigger": TI.SKIPPED}
    assert not out.exists()
    reset = controller("resetter", reset_dag_run=True).test(logical_date=LOGICAL)
    assert _states(reset) == {"trigger": TI.SUCCESS}
    assert json.loads(out.read_text())["run_id"] == "fixed"


def test_unknown_target_dag_fails_clearly(dags_folder):
    with DAG("controller_unknown", start_date=START, schedule=None) as dag:
        TriggerDagRunOperator(task_id="trigger", trigger_dag_id="no_such_dag")
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"trigger": TI.FAILED}
    assert "Dag id no_such_dag not found" in _log(run, "trigger")


# -- LatestOnlyOperator -------------------------------------------------------------------------


def test_latest_only_never_skips_manual_runs():
    with DAG("latest_manual", start_date=START, schedule="@daily") as dag:
        LatestOnlyOperator(task_id="latest_only") >> EmptyOperator(task_id="work")
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"latest_only": TI.SUCCESS, "work": TI.SUCCESS}


class _FakeTi:
    def __init__(self):
        self.skipped: list[str] = []
        self.branches: list[str] | None = None

    def skip_downstream(self, task_ids):
        self.skipped += list(task_ids)

    def record_branch(self, task_ids):
        self.branches = list(task_ids)


@pytest.mark.parametrize(("now", "skipped"), [
    (datetime(2024, 3, 2, 12, tzinfo=UTC), []),  # inside the following interval: latest
    (datetime(2024, 3, 9, 12, tzinfo=UTC), ["a", "b"]),  # a week later: not the latest
])
def test_latest_only_on_scheduled_runs(now, skipped, monkeypatch):
    with DAG("latest_sched", start_date=START, schedule="@daily") as dag:
        latest = LatestOnlyOperator(task_id="latest_only")
        latest >> [EmptyOperator(task_id="a"), EmptyOperator(task_id="b")]
    monkeypatch.setattr(LatestOnlyOperator, "_now", lambda self: now)
    run = SimpleNamespace(run_type="scheduled", logical_date=datetime(2024, 3, 1, tzinfo=UTC),
                          data_interval_start=datetime(2024, 3, 1, tzinfo=UTC),
                          data_interval_end=datetime(2024, 3, 2, tzinfo=UTC))
    ti = _FakeTi()
    assert latest.execute({"dag_run": run, "dag": dag, "task": latest, "ti": ti}) is None
    assert ti.skipped == skipped


# -- BranchDateTimeOperator and BranchDayOfWeekOperator -----------------------------------------


def test_branch_datetime_on_the_logical_date():
    with DAG("branch_dt", start_date=START, schedule=None) as dag:
        inside = BranchDateTimeOperator(task_id="inside", target_lower=time(11),
                                        target_upper=time(13), use_task_logical_date=True,
                                        follow_task_ids_if_true="in_a",
                                        follow_task_ids_if_false="out_a")
        inside >> [EmptyOperator(task_id="in_a"), EmptyOperator(task_id="out_a")]
        outside = BranchDateTimeOperator(task_id="outside",
                                         target_lower=datetime(2024, 3, 2, tzinfo=UTC),
                                         target_upper=None, use_task_logical_date=True,
                                         follow_task_ids_if_true="in_b",
                                         follow_task_ids_if_false="out_b")
        outside >> [EmptyOperator(task_id="in_b"), EmptyOperator(task_id="out_b")]
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"inside": TI.SUCCESS, "in_a": TI.SUCCESS, "out_a": TI.SKIPPED,
                            "outside": TI.SUCCESS, "in_b": TI.SKIPPED, "out_b": TI.SUCCESS}


def test_branch_datetime_window_over_midnight_and_validation():
    base = datetime(2024, 3, 1, 23, tzinfo=UTC)
    lower, upper = target_times_as_dates(base, time(22), time(2))
    assert (lower, upper) == (datetime(2024, 3, 1, 22), datetime(2024, 3, 2, 2))
    from updraft.exceptions import UpdraftException

    with pytest.raises(UpdraftException, match="Both target_upper and target_lower are None"):
        BranchDateTimeOperator(task_id="x", target_lower=None, target_upper=None,
                               follow_task_ids_if_true="a", follow_task_ids_if_false="b")


def test_branch_day_of_week():
    with DAG("branch_dow", start_date=START, schedule=None) as dag:
        friday = BranchDayOfWeekOperator(task_id="friday", week_day={"Friday", WeekDay.SATURDAY},
                                         use_task_logical_date=True,
                                         follow_task_ids_if_true="weekend_soon",
                                         follow_task_ids_if_false="midweek")
        friday >> [EmptyOperator(task_id="weekend_soon"), EmptyOperator(task_id="midweek")]
        monday = BranchDayOfWeekOperator(task_id="monday", week_day="monday",
                                         use_task_logical_date=True,
                                         follow_task_ids_if_true=["is_monday"],
                                         follow_task_ids_if_false=["not_monday"])
        monday >> [EmptyOperator(task_id="is_monday"), EmptyOperator(task_id="not_monday")]
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"friday": TI.SUCCESS, "weekend_soon": TI.SUCCESS,
                            "midweek": TI.SKIPPED, "monday": TI.SUCCESS,
                            "is_monday": TI.SKIPPED, "not_monday": TI.SUCCESS}


# -- @task.bash and date helpers ----------------------------------------------------------------


def test_task_bash_runs_the_returned_command():
    with DAG("bash_deco", start_date=START, schedule=None, params={"who": "world"}) as dag:
        @task.bash
        def greet(n: int) -> str:
            return f"echo start; echo hello {{{{ params.who }}}} {{{{ ds }}}} $(({n} * 2))"

        @task.bash(env={"COLOR": "blue"})
        def colour() -> str:
            return "echo $COLOR"

        @task.bash
        def empty() -> str:
            return "  "

        @task.bash
        def failing() -> str:
            return "exit 3"

        @task
        def consume(line: str) -> str:
            return line.upper()

        consume(greet(21))
        colour()
        empty()
        failing()
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"greet": TI.SUCCESS, "colour": TI.SUCCESS, "empty": TI.FAILED,
                            "failing": TI.FAILED, "consume": TI.SUCCESS}
    ti = run.get_task_instance("consume")
    assert ti.xcom_pull(task_ids="greet") == "hello world 2024-03-01 42"
    assert ti.xcom_pull(task_ids="consume") == "HELLO WORLD 2024-03-01 42"
    assert ti.xcom_pull(task_ids="colour") == "blue"
    assert "must be a non-empty string" in _log(run, "empty")
    assert "non-zero exit code 3" in _log(run, "failing")
    assert dag.task_dict["greet"].operator_name == "@task.bash"


def test_days_ago_and_timezone_helpers():
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert days_ago(0) == today
    assert days_ago(2) == today - timedelta(days=2)
    assert days_ago(1, hour=6, minute=30) == today - timedelta(days=1) + timedelta(hours=6,
                                                                                     minutes=30)
    assert days_ago(1).tzinfo is not None
    assert timezone.datetime(2024, 1, 2) == datetime(2024, 1, 2, tzinfo=UTC)
    assert timezone.parse("2024-01-02T03:04:05") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    aware = timezone.make_aware(datetime(2024, 1, 2), "Europe/Paris")
    assert timezone.convert_to_utc(aware) == datetime(2024, 1, 1, 23, tzinfo=UTC)
    assert timezone.make_naive(aware, "UTC") == datetime(2024, 1, 1, 23)
    with pytest.raises(ValueError, match="make_aware expects a naive datetime"):
        timezone.make_aware(aware)
    assert timezone.utcnow().tzinfo is not None
