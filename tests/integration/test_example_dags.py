"""The example DAGs in dags/: they load without import errors and every one runs to success
with ``dag.test()`` on one machine, with no outside service."""

from __future__ import annotations

from pathlib import Path

import pytest

from updraft.dagbag import DagBag
from updraft.exceptions import ParamValidationError
from updraft.state import DagRunState

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
EXAMPLE_IDS = sorted(p.stem for p in DAGS_FOLDER.glob("example_*.py"))


@pytest.fixture(scope="module")
def dagbag():
    return DagBag(DAGS_FOLDER, include_examples=False)


def states(run) -> dict[str, str]:
    return {(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"): str(ti.state)
            for ti in run.get_task_instances()}


def test_examples_load_without_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert sorted(dagbag.dag_ids) == EXAMPLE_IDS
    assert len(EXAMPLE_IDS) == 12


@pytest.mark.parametrize("dag_id", EXAMPLE_IDS)
def test_example_follows_the_rules(dagbag, dag_id):
    dag = dagbag.get_dag(dag_id)
    assert "example" in dag.tags
    assert dag.start_date is not None
    if dag.timetable.can_be_scheduled:
        assert dag.catchup is False
    source = Path(dag.fileloc).read_text()
    for line in source.splitlines():
        if line.startswith(("import ", "from ")) and "__future__" not in line:
            module = line.split()[1].split(".")[0]
            assert module in ("updraft", "json", "random", "textwrap", "datetime"), line


@pytest.mark.parametrize("dag_id", EXAMPLE_IDS)
def test_example_dag_test_succeeds(dagbag, dag_id):
    run = dagbag.get_dag(dag_id).test()
    assert run.state == DagRunState.SUCCESS, states(run)
    assert all(s in ("success", "skipped") for s in states(run).values()), states(run)


def test_bash_example_skips_on_exit_99(dagbag):
    found = states(dagbag.get_dag("example_bash").test())
    assert found["this_will_skip"] == "skipped"
    assert found["with_env"] == "success"
    assert found["run_this_last"] == "success"


def test_branching_example_runs_one_branch(dagbag):
    found = states(dagbag.get_dag("example_branching").test())
    ran = [b for b in ("branch_a", "branch_b", "branch_c", "branch_d") if found[b] == "success"]
    assert len(ran) == 1
    assert found[f"follow_{ran[0]}"] == "success"
    assert found["join"] == "success" and found["done"] == "success"
    assert sorted([found["weekday_work"], found["weekend_rest"]]) == ["skipped", "success"]


def test_dynamic_mapping_example_expands(dagbag):
    found = states(dagbag.get_dag("example_dynamic_mapping").test())
    assert [k for k in found if k.startswith("add_one[")] == [f"add_one[{i}]" for i in range(3)]
    assert len([k for k in found if k.startswith("double[")]) == 4
    assert len([k for k in found if k.startswith("run_commands[")]) == 2
    assert found["total"] == "success"


def test_templating_example_renders(dagbag):
    run = dagbag.get_dag("example_templating").test(logical_date="2024-06-01T00:00:00+00:00")
    assert run.state == DagRunState.SUCCESS
    ti = run.get_task_instance("python_templates")
    assert ti.xcom_pull(task_ids="python_templates") == "2024-06-08"
    assert ti.xcom_pull(task_ids="templated") == "Parameter I passed in"


def test_params_example_takes_conf_and_refuses_bad_values(dagbag):
    dag = dagbag.get_dag("example_params")
    run = dag.test(run_conf={"rows": 50, "mode": "full"})
    assert run.state == DagRunState.SUCCESS
    ti = run.get_task_instance("show")
    assert ti.xcom_pull(task_ids="show") == {"rows": 50, "mode": "full"}
    assert ti.xcom_pull(task_ids="templated_value") == "full:50"
    with pytest.raises(ParamValidationError, match="rows"):
        dag.test(run_conf={"rows": 0})
    with pytest.raises(ParamValidationError, match="mode"):
        dag.test(run_conf={"mode": "sometimes"})
