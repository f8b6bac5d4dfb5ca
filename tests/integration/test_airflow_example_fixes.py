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


def test_a_task_group_can_be_mapped():
    from updraft.decorators import task_group
    from updraft.exceptions import DagDefinitionError, NotSupportedByUpdraft

    with DAG("mapped_task_group", schedule=None, start_date=DAY) as dag:
        @task
        def numbers():
            return [1, 2, 3]

        @task
        def add_one(x):
            return x + 1

        @task
        def double(y):
            return y * 2

        @task_group
        def transform(x):
            return double(add_one(x))

        @task
        def collect(values):
            return list(values)

        collect(transform.expand(x=[1, 2, 3]))

        @task_group(group_id="shifted")
        def shift(x, offset):
            return add_one.override(task_id="shift_one")(x)

        collect.override(task_id="collect_shifted")(
            shift.partial(offset=5).expand(x=numbers()))
        with pytest.raises(NotSupportedByUpdraft, match="more than one argument"):
            shift.expand(x=[1], offset=[2])
        with pytest.raises(DagDefinitionError, match="takes lists, dicts or XComArgs, got int"):
            transform.expand(x=3)
    run = dag.test(logical_date=DAY)
    assert run.state == DagRunState.SUCCESS
    assert xcom(run, "collect") == [4, 6, 8]  # item i of add_one fed item i of double
    assert xcom(run, "collect_shifted") == [2, 3, 4]
    assert sorted((t.task_id, t.map_index) for t in run.get_task_instances()
                  if t.task_id.startswith("transform.")) == [
        ("transform.add_one", 0), ("transform.add_one", 1), ("transform.add_one", 2),
        ("transform.double", 0), ("transform.double", 1), ("transform.double", 2)]


MAPPED_GROUP_DAG = '''
from datetime import datetime
from updraft import DAG, task
from updraft.decorators import task_group

with DAG("mapped_group_on_scheduler", schedule=None, start_date=datetime(2024, 1, 1)):
    @task
    def numbers():
        return [1, 2, 3]

    @task
    def add_one(x):
        return x + 1

    @task
    def double(y):
        return y * 2

    @task_group
    def transform(x):
        return double(add_one(x))

    @task
    def collect(values):
        return list(values)

    collect(transform.expand(x=numbers()))
'''


def test_a_mapped_task_group_on_the_scheduler(tmp_path, monkeypatch, updraft_home):
    import scheduler_helpers as h

    from updraft.config import conf
    from updraft.models.xcom import get_xcom

    dags = tmp_path / "dags"
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN",
                       f"sqlite:///{updraft_home / 'updraft.db'}")
    conf.reload()
    h.write_dag(dags, "mapped_group_on_scheduler", MAPPED_GROUP_DAG)
    with h.running_scheduler(dags, "local"):
        h.wait_parsed("mapped_group_on_scheduler")
        run_id = h.trigger("mapped_group_on_scheduler")
        assert h.wait_run("mapped_group_on_scheduler", run_id) == "success"
    with h.session() as s:
        assert get_xcom(s, dag_id="mapped_group_on_scheduler", run_id=run_id,
                        task_id="collect") == [4, 6, 8]
