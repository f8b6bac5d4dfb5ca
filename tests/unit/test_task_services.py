"""Operators and sensors that act on other runs talk to the task services of their try, not
to the store (issue 15): these drive them with a fake implementation, no store at all."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from updraft.exceptions import DagRunAlreadyExists, UpdraftException, UpdraftSkipException
from updraft.operators.trigger_dagrun import XCOM_RUN_ID, TriggerDagRunOperator
from updraft.sensors.external_task import ExternalTaskSensor
from updraft.sensors.python import PythonSensor
from updraft.task_services import DagInfo, NoTaskServices, RunInfo, TaskServices, task_services

DAY = datetime(2024, 6, 1, tzinfo=UTC)


class FakeServices(TaskServices):
    """Answers from dictionaries; records what was asked."""

    def __init__(self, *, alive: bool = True):
        self.runs: dict[tuple[str, str], RunInfo] = {}
        self.tis: list[tuple[str, datetime, str, int, str]] = []  # dag, date, task, index, state
        self.run_states: dict[tuple[str, datetime], str] = {}
        self.dags: dict[str, DagInfo] = {}
        self.alive = alive
        self.calls: list[tuple] = []
        self.reschedules: dict[tuple, datetime] = {}
        #: What a run becomes when it is run here.
        self.ends_as = "success"

    def trigger_dag_run(self, dag_id, *, run_id, logical_date, conf, owner,
                        replace_existing=False):
        self.calls.append(("trigger", dag_id, run_id, logical_date, conf, owner,
                           replace_existing))
        if (dag_id, run_id) in self.runs and not replace_existing:
            raise DagRunAlreadyExists(f"A run with id {run_id!r} of DAG {dag_id!r} exists")
        self.runs[(dag_id, run_id)] = RunInfo(dag_id, run_id, "queued", logical_date,
                                              conf or {})
        return run_id

    def get_dag_run(self, dag_id, run_id):
        return self.runs.get((dag_id, run_id))

    def scheduler_alive(self):
        return self.alive

    def run_dag_run_here(self, dag_id, run_id):
        self.calls.append(("run here", dag_id, run_id))
        old = self.runs[(dag_id, run_id)]
        self.runs[(dag_id, run_id)] = RunInfo(dag_id, run_id, self.ends_as, old.logical_date,
                                              old.conf)

    def count_dag_runs(self, dag_id, logical_dates, states):
        return sum(1 for (d, when), state in self.run_states.items()
                   if d == dag_id and when in logical_dates and state in states)

    def count_task_instances(self, dag_id, logical_dates, states, *, task_ids=None,
                             task_id_prefix=None):
        return sum(1 for d, when, task, _index, state in self.tis
                   if d == dag_id and when in logical_dates and state in states
                   and (task_ids is None or task in task_ids)
                   and (task_id_prefix is None or task.startswith(task_id_prefix)))

    def task_instance_keys(self, dag_id, logical_date, task_id_prefix):
        return [(task, index) for d, when, task, index, _state in self.tis
                if d == dag_id and when == logical_date and task.startswith(task_id_prefix)]

    def dag_info(self, dag_id):
        return self.dags.get(dag_id, DagInfo(dag_id, False, None, False))

    def stored_task_ids(self, dag_id):
        return {task for d, _when, task, _index, _state in self.tis if d == dag_id}

    def first_reschedule_at(self, dag_id, run_id, task_id, map_index, try_number):
        return self.reschedules.get((dag_id, run_id, task_id, map_index, try_number))


class FakeTi:
    def __init__(self, services=None, **values):
        self.pushed: dict = {}
        self.dag_id, self.run_id, self.task_id, self.map_index = "mine", "r1", "t", -1
        self.try_number, self.max_tries = 1, 0
        self.__dict__.update(values)
        if services is not None:
            self.task_services = services

    def xcom_push(self, key, value):
        self.pushed[key] = value


def context(services, **extra):
    return {"task_services": services, "ti": FakeTi(), "logical_date": DAY, **extra}


# -- the interface ---------------------------------------------------------------------------

def test_a_context_without_services_fails_saying_what_is_missing():
    assert isinstance(task_services({}), NoTaskServices)
    with pytest.raises(UpdraftException, match=r"needs the task services of a try"):
        task_services({}).scheduler_alive()
    services = FakeServices()
    assert task_services({"ti": FakeTi(services)}) is services  # reachable from the ti too


def test_authoring_modules_do_not_import_the_store():
    import subprocess

    probe = ("import sys\nimport updraft.operators.trigger_dagrun, updraft.sensors.external_task,"
             " updraft.sensors.base, updraft.task_services\n"
             "print(sorted(m for m in sys.modules if m.startswith(('updraft.store', 'sqlalchemy'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


# -- TriggerDagRunOperator -------------------------------------------------------------------

def test_trigger_creates_the_run_through_the_services_and_pushes_its_id():
    services = FakeServices()
    op = TriggerDagRunOperator(task_id="go", trigger_dag_id="other", trigger_run_id="r9",
                               conf={"a": 1}, logical_date=DAY, owner="me")
    ctx = context(services)
    op.execute(ctx)
    assert services.calls == [("trigger", "other", "r9", DAY, {"a": 1}, "me", False)]
    assert ctx["ti"].pushed == {XCOM_RUN_ID: "r9"}


def test_trigger_skips_or_fails_on_an_existing_run():
    services = FakeServices()
    services.trigger_dag_run("other", run_id="r9", logical_date=DAY, conf=None, owner=None)
    skipping = TriggerDagRunOperator(task_id="go", trigger_dag_id="other", trigger_run_id="r9",
                                     skip_when_already_exists=True)
    with pytest.raises(UpdraftSkipException, match="DagRunAlreadyExists"):
        skipping.execute(context(services))
    failing = TriggerDagRunOperator(task_id="go2", trigger_dag_id="other", trigger_run_id="r9")
    with pytest.raises(DagRunAlreadyExists):
        failing.execute(context(services))
    replacing = TriggerDagRunOperator(task_id="go3", trigger_dag_id="other",
                                      trigger_run_id="r9", reset_dag_run=True)
    replacing.execute(context(services))
    assert services.calls[-1][-1] is True


def test_trigger_waits_and_runs_the_run_here_when_no_scheduler_is_alive():
    services = FakeServices(alive=False)
    op = TriggerDagRunOperator(task_id="go", trigger_dag_id="other", trigger_run_id="r9",
                               wait_for_completion=True, poke_interval=0)
    op.execute(context(services))
    assert ("run here", "other", "r9") in services.calls
    services = FakeServices(alive=False)
    services.ends_as = "failed"
    op = TriggerDagRunOperator(task_id="go", trigger_dag_id="other", trigger_run_id="r9",
                               wait_for_completion=True, poke_interval=0)
    with pytest.raises(UpdraftException, match="other failed with failed states failed"):
        op.execute(context(services))


# -- ExternalTaskSensor ----------------------------------------------------------------------

def test_external_task_sensor_counts_through_the_services():
    services = FakeServices()
    sensor = ExternalTaskSensor(task_id="wait", external_dag_id="up",
                                external_task_ids=["a", "b"], failed_states=["failed"])
    services.tis = [("up", DAY, "a", -1, "success"), ("up", DAY, "b", -1, "running")]
    assert sensor.poke(context(services)) is False
    services.tis[1] = ("up", DAY, "b", -1, "success")
    assert sensor.poke(context(services)) is True
    services.tis[0] = ("up", DAY, "a", -1, "failed")
    with pytest.raises(UpdraftException, match=r"Some of the external tasks \['a', 'b'\]"):
        sensor.poke(context(services))


def test_external_task_sensor_groups_runs_and_dates():
    services = FakeServices()
    group = ExternalTaskSensor(task_id="g", external_dag_id="up", external_task_group_id="grp",
                               execution_delta=timedelta(days=1))
    before = DAY - timedelta(days=1)
    services.tis = [("up", before, "grp.x", 0, "success"), ("up", before, "grp.x", 1, "running")]
    assert group.poke(context(services)) is False
    services.tis[1] = ("up", before, "grp.x", 1, "success")
    assert group.poke(context(services)) is True
    whole = ExternalTaskSensor(task_id="w", external_dag_id="up", skipped_states=["failed"])
    services.run_states[("up", DAY)] = "failed"
    with pytest.raises(UpdraftSkipException, match="states-to-skip-on"):
        whole.poke(context(services))
    services.run_states[("up", DAY)] = "success"
    assert whole.poke(context(services)) is True


def test_external_task_sensor_check_existence_uses_what_the_services_know(tmp_path):
    services = FakeServices()
    sensor = ExternalTaskSensor(task_id="wait", external_dag_id="up", external_task_id="a",
                                check_existence=True)
    with pytest.raises(UpdraftException, match="The external DAG up does not exist."):
        sensor.poke(context(services))
    services.dags["up"] = DagInfo("up", True, str(tmp_path / "gone.py"), True)
    with pytest.raises(UpdraftException, match="The external DAG up was deleted."):
        sensor.poke(context(services))
    services.dags["up"] = DagInfo("up", True, None, True)
    with pytest.raises(UpdraftException, match="The external task a in DAG up does not exist."):
        sensor.poke(context(services))
    services.tis = [("up", DAY, "a", -1, "success")]
    assert sensor.poke(context(services)) is True


# -- BaseSensorOperator ----------------------------------------------------------------------

def test_reschedule_timeout_counts_from_the_first_reschedule_the_services_know():
    services = FakeServices()
    began = DAY - timedelta(hours=2)
    services.reschedules[("mine", "r1", "t", -1, 1)] = began
    sensor = PythonSensor(task_id="t", python_callable=lambda: False, mode="reschedule",
                          timeout=3600)
    ti = FakeTi(services, try_number=2, max_tries=1)
    sensor.retries = 1
    started = sensor._sensing_started_at({"ti": ti, "task_services": services})
    assert started == began  # the first try's, so that a retry does not reset the timeout
    fresh = SimpleNamespace(dag_id="mine", run_id="r2", task_id="t", map_index=-1,
                            try_number=1, max_tries=0)
    sensor.retries = 0
    now = sensor._sensing_started_at({"ti": fresh, "task_services": services})
    assert now > DAY  # none recorded: it begins now
