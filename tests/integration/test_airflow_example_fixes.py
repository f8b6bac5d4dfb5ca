"""Failures of Airflow's own example DAGs that are not about assets (issue 13, "while here"),
run with ``dag.test()`` on a real SQLite store: ``XComArg(op, key=...)`` built directly and
its ``str()`` template (Airflow's example_xcom.py, unchanged), ``@task.bash`` with
``multiple_outputs=True`` and ``output_processor=json.loads``, and an ExternalTaskSensor
waiting on a task group its DAG does not have."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from updraft import DAG, task
from updraft.operators.empty import EmptyOperator
from updraft.sensors.external_task import ExternalTaskSensor
from updraft.state import DagRunState
from updraft.taskgroup import TaskGroup
from updraft.xcom_arg import PlainXComArg, XComArg

DAY = datetime(2024, 1, 2, tzinfo=UTC)
AIRFLOW_EXAMPLES = Path(__file__).resolve().parents[1] / "airflow_examples"


@pytest.fixture(autouse=True)
def sqlite_store(updraft_home, _sqlite_template):
    shutil.copyfile(_sqlite_template, updraft_home / "updraft.db")
    return updraft_home


def xcom(run, task_id, key="return_value"):
    return run.get_task_instances()[0].xcom_pull(task_ids=task_id, key=key)


def test_xcomarg_built_directly_and_its_template():
    with DAG("direct_xcomarg", schedule=None, start_date=DAY) as dag:
        push = EmptyOperator(task_id="push")
        ref = XComArg(push, key="manually_pushed_value")
    assert isinstance(ref, PlainXComArg) and ref.key == "manually_pushed_value"
    assert XComArg(push) == PlainXComArg(push)
    assert str(ref) == ("{{ task_instance.xcom_pull(task_ids='push', dag_id='direct_xcomarg', "
                        "key='manually_pushed_value') }}")
    with pytest.raises(TypeError, match=r"XComArg\(\) needs the operator"):
        XComArg()
    assert dag.task_dict["push"] is push


def test_airflows_example_xcom_runs(tmp_path):
    from updraft import compat
    from updraft.dagbag import DagBag

    source = tmp_path / "example_xcom.py"
    shutil.copyfile(AIRFLOW_EXAMPLES / "dags" / "example_xcom.py", source)
    try:
        bag = DagBag(dag_folder=str(source), include_examples=False)
        assert bag.import_errors == {}
        run = bag.get_dag("example_xcom").test(logical_date=DAY)
    finally:
        compat.uninstall()
    assert run.state == DagRunState.SUCCESS
    assert {t.task_id: t.state for t in run.get_task_instances()} == {
        t: "success" for t in ("push", "push_by_returning", "puller", "bash_push",
                               "bash_pull", "pull_value_from_bash_push")}


def test_bash_decorator_multiple_outputs_with_an_output_processor():
    with DAG("bash_multiple_outputs", schedule=None, start_date=DAY) as dag:
        @task.bash(multiple_outputs=True, output_processor=json.loads)
        def emit():
            return """echo '{"rows": 3, "table": "orders"}'"""

        @task
        def use(rows, table):
            return f"{table}:{rows}"

        emitted = emit()
        use(emitted["rows"], emitted["table"])
    run = dag.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "emit") == {"rows": 3, "table": "orders"}
    assert (xcom(run, "emit", "rows"), xcom(run, "emit", "table")) == (3, "orders")
    assert xcom(run, "use") == "orders:3"


def test_external_task_sensor_on_a_missing_task_group_fails_at_once():
    with DAG("has_a_group", schedule="@daily", start_date=DAY) as upstream:
        with TaskGroup("load"):
            EmptyOperator(task_id="t")
    with DAG("waits_on_a_group", schedule="@daily", start_date=DAY) as waiting:
        ExternalTaskSensor(task_id="wait", external_dag_id="has_a_group",
                           external_task_group_id="no_such_group", timeout=120,
                           poke_interval=1, mode="poke")
        ExternalTaskSensor(task_id="wait_ok", external_dag_id="has_a_group",
                           external_task_group_id="load", timeout=120, poke_interval=1,
                           mode="poke")
    assert upstream.test(logical_date=DAY).state == DagRunState.SUCCESS
    started = time.monotonic()
    run = waiting.test(logical_date=DAY)
    assert time.monotonic() - started < 30  # at once, not after the 120 s timeout
    states = {t.task_id: t.state for t in run.get_task_instances()}
    assert states == {"wait": "failed", "wait_ok": "success"}
