"""Serialized DAGs: round trips of the example DAGs and tricky ones, version and field checks,
stable hashes, and the read-only objects the scheduler uses instead of DAG files."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from updraft import DAG, Label, Param, TaskGroup, task
from updraft.dagbag import DagBag
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator
from updraft.operators.python import PythonOperator
from updraft.runlogic import specs_from_dag
from updraft.schedules import ScheduleError, Timetable
from updraft.serialization import (
    FORMAT_VERSION,
    SerializationError,
    SerializedDAG,
    UnresolvedTimetable,
    dag_hash,
    deserialize_dag,
    serialize_dag,
)
from updraft.state import TriggerRule
from updraft.store.runs import row_defaults_for

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
START = datetime(2024, 1, 1, tzinfo=UTC)


def round_trip(dag) -> SerializedDAG:
    data = serialize_dag(dag)
    # What the store gives back is what json gives back: no tuples, no non-JSON types.
    data = json.loads(json.dumps(data, allow_nan=False))
    return deserialize_dag(data)


def assert_same_for_scheduler(original, restored: SerializedDAG) -> None:
    assert restored.dag_id == original.dag_id
    assert list(restored.task_dict) == list(original.task_dict)
    assert specs_from_dag(restored) == specs_from_dag(original)
    assert row_defaults_for(restored.task_dict) == row_defaults_for(original.task_dict)
    assert restored.timetable == original.timetable
    assert restored.timezone == original.timezone
    assert restored.start_date == original.start_date
    assert restored.end_date == original.end_date
    assert restored.catchup == original.catchup
    assert restored.max_active_runs == original.max_active_runs
    assert restored.max_active_tasks == original.max_active_tasks
    assert restored.dagrun_timeout == original.dagrun_timeout
    assert restored.params.serialize() == original.params.serialize()
    assert list(restored.tags) == list(original.tags)
    assert restored.owner == original.owner
    assert restored.edge_info == original.edge_info
    assert restored.task_group_json == original.task_group.to_json()
    for task_id, op in original.task_dict.items():
        ser = restored.task_dict[task_id]
        for name in ("retries", "retry_delay", "pool", "pool_slots", "queue", "priority_weight",
                     "weight_rule", "operator_name", "task_type", "is_mapped", "is_setup",
                     "is_teardown", "on_failure_fail_dagrun", "depends_on_past",
                     "wait_for_downstream", "ignore_first_depends_on_past", "start_date",
                     "end_date", "execution_timeout", "max_active_tis_per_dag",
                     "max_active_tis_per_dagrun", "trigger_rule", "owner", "ui_color",
                     "max_retry_delay", "retry_exponential_backoff", "sla", "is_sensor"):
            assert getattr(ser, name) == getattr(op, name), (task_id, name)
        assert ser.upstream_task_ids == op.upstream_task_ids
        assert ser.downstream_task_ids == op.downstream_task_ids
        assert tuple(op.template_fields) == ser.template_fields


# -- the example DAGs ---------------------------------------------------------------------------


def _example_dags():
    bag = DagBag(DAGS_FOLDER, include_examples=False)
    assert bag.import_errors == {}
    return bag.dags


_EXAMPLE_IDS = sorted(p.stem for p in DAGS_FOLDER.glob("example_*.py"))


@pytest.mark.parametrize("dag_id", _EXAMPLE_IDS)
def test_example_dag_round_trip(dag_id):
    dag = _example_dags()[dag_id]
    restored = round_trip(dag)
    assert_same_for_scheduler(dag, restored)
    assert restored.fileloc == dag.fileloc
    assert "example" in restored.tags


def test_example_dags_all_serialize():
    assert set(_example_dags()) == set(_EXAMPLE_IDS)


# -- tricky DAGs --------------------------------------------------------------------------------


def tricky_dag(**overrides) -> DAG:
    options = {"start_date": START, "schedule": "0 6 * * 1-5", "catchup": False,
                   "params": {"rows": Param(10, type="integer", minimum=1),
                           "mode": Param("a", enum=["a", "b"], description="which mode"),
                           "required": Param(type="string"),
                           "plain": 3},
                   "tags": ["x", "y"], "dagrun_timeout": timedelta(hours=2), "max_active_runs": 3,
                   "description": "tricky", "doc_md": "# Tricky", "fail_stop": False,
                   "default_args": {"retries": 2, "retry_delay": timedelta(seconds=30),
                                 "owner": "ops"}}
    options.update(overrides)
    with DAG("tricky", **options) as dag:
        start = EmptyOperator(task_id="start", on_success_callback=lambda ctx: None)

        @task
        def make_list():
            return [1, 2, 3]

        @task
        def add(x, y):
            return x + y

        @task
        def total(values):
            return sum(values)

        listed = make_list()
        mapped = add.partial(y=10).expand(x=listed)
        literal = add.expand(x=[1, 2], y={"a": 1, "b": 2, "c": 3})
        total(mapped) >> literal
        start >> listed
        kwargs_mapped = PythonOperator.partial(
            task_id="by_kwargs", python_callable=print, retries=4,
        ).expand_kwargs([{"op_args": [1]}, {"op_args": [2]}, {"op_args": [3]}])
        zipped = BashOperator.partial(task_id="zipped").expand(
            bash_command=listed.map(lambda x: f"echo {x}"))

        with TaskGroup("outer", tooltip="outer group", default_args={"pool_slots": 2}) as outer:
            a = BashOperator(task_id="a", bash_command="echo {{ ds }} {{ params.rows }}",
                             env={"X": "{{ run_id }}"}, execution_timeout=60,
                             sla=timedelta(minutes=5), email="ops@example.com",
                             executor_config={"cpu": 2, "obj": object()})
            with TaskGroup("inner", prefix_group_id=False):
                b = PythonOperator(task_id="b", python_callable=print,
                                   op_kwargs={"when": datetime(2024, 5, 1), "n": {1, 2}},
                                   templates_dict={"x": "{{ ds }}"}, weight_rule="upstream",
                                   priority_weight=7, depends_on_past=True,
                                   wait_for_downstream=True, max_active_tis_per_dag=2,
                                   params={"task_param": Param(1, type="integer")})
            a >> Label("to inner") >> b
        start >> outer >> kwargs_mapped
        end = EmptyOperator(task_id="end", trigger_rule=TriggerRule.ALL_DONE,
                            start_date=datetime(2024, 2, 1, tzinfo=UTC))
        setup = EmptyOperator(task_id="setup").as_setup()
        teardown = EmptyOperator(task_id="teardown").as_teardown(
            setups=setup, on_failure_fail_dagrun=True)
        setup >> end >> teardown
        [kwargs_mapped, zipped] >> end
    return dag


def test_tricky_dag_round_trip():
    dag = tricky_dag()
    restored = round_trip(dag)
    assert_same_for_scheduler(dag, restored)
    assert restored.edge_info == {("outer.a", "b"): {"label": "to inner"}}
    assert restored.description == "tricky"
    assert restored.doc_md == "# Tricky"
    assert restored.dagrun_timeout == timedelta(hours=2)
    assert restored.timetable_summary == "0 6 * * 1-5"


def test_mapped_tasks_keep_their_expand_input():
    dag = tricky_dag()
    restored = round_trip(dag)
    add = restored.task_dict["add"]
    assert add.is_mapped and add.expand_input.kind == "dict_of_lists"
    assert add.expand_input.mapped_argument_names == ("x",)
    assert add.mapped_task_ids() == {"make_list"} == dag.task_dict["add"].mapped_task_ids()
    assert add.template_field_values["op_kwargs"] == {"y": 10}
    for lengths in ({"make_list": 3}, {"make_list": 0}, {}):
        for task_id in ("add", "add__1", "by_kwargs", "zipped"):
            assert restored.task_dict[task_id].get_map_length(lengths) == \
                dag.task_dict[task_id].get_map_length(lengths), (task_id, lengths)
    assert restored.task_dict["add__1"].get_map_length({}) == 6
    by_kwargs = restored.task_dict["by_kwargs"]
    assert by_kwargs.expand_input.kind == "list_of_dicts"
    assert by_kwargs.expand_input.mapped_argument_names == ("op_args",)
    assert by_kwargs.retries == 4
    assert restored.task_dict["zipped"].mapped_task_ids() == {"make_list"}
    assert not restored.task_dict["start"].is_mapped
    with pytest.raises(ValueError, match="not mapped"):
        restored.task_dict["start"].get_map_length({})


def test_task_attributes_for_the_web():
    restored = round_trip(tricky_dag())
    a = restored.task_dict["outer.a"]
    assert a.label == "a" and a.task_group_id == "outer"
    assert a.task_type == "BashOperator" and a.task_module == "updraft.operators.bash"
    assert a.template_fields == ("bash_command", "env", "cwd")
    assert a.template_field_values == {"bash_command": "echo {{ ds }} {{ params.rows }}",
                                       "env": {"X": "{{ run_id }}"}, "cwd": None}
    assert a.template_ext == (".sh", ".bash")
    assert a.execution_timeout == timedelta(seconds=60)
    assert a.sla == timedelta(minutes=5)
    assert a.email == ("ops@example.com",)
    assert a.pool_slots == 2 and a.owner == "ops" and a.retries == 2
    assert a.executor_config["cpu"] == 2
    assert a.executor_config["obj"].startswith("<object object")  # repr, without address
    assert "0x" not in a.executor_config["obj"]
    b = restored.task_dict["b"]
    assert b.task_group_id == "outer.inner"
    assert b.template_field_values["op_kwargs"] == {"when": "2024-05-01T00:00:00", "n": [1, 2]}
    assert b.template_field_values["templates_dict"] == {"x": "{{ ds }}"}
    assert b.params.get_param("task_param").schema == {"type": "integer"}
    assert b.weight_rule == "upstream" and b.priority_weight == 7
    start = restored.task_dict["start"]
    assert start.has_on_success_callback and not start.has_on_failure_callback
    teardown = restored.task_dict["teardown"]
    assert teardown.is_teardown and teardown.on_failure_fail_dagrun
    assert teardown.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert restored.task_dict["setup"].is_setup


def test_params_with_schemas_round_trip():
    restored = round_trip(tricky_dag())
    assert restored.params["rows"] == 10
    assert restored.params.get_param("mode").description == "which mode"
    assert not restored.params.get_param("required").has_value()
    assert restored.params.resolve({"required": "yes"}) == {
        "rows": 10, "mode": "a", "required": "yes", "plain": 3}
    from updraft.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        restored.params.resolve({"required": "yes", "rows": 0})


@pytest.mark.parametrize("schedule, summary", [
    (None, "None"),
    ("@once", "@once"),
    ("@daily", "@daily"),
    ("*/5 * * * *", "*/5 * * * *"),
    (timedelta(hours=3), None),
    ("@continuous", "@continuous"),
])
def test_schedules_round_trip(schedule, summary):
    options = {"max_active_runs": 1} if schedule == "@continuous" else {}
    dag = tricky_dag(schedule=schedule, **options)
    restored = round_trip(dag)
    assert restored.timetable == dag.timetable
    assert type(restored.timetable) is type(dag.timetable)
    assert restored.timetable_summary == dag.timetable.summary
    if summary is not None:
        assert restored.timetable_summary == summary
    now = datetime(2024, 3, 1, 12, tzinfo=UTC)
    assert restored.timetable.infer_manual_data_interval(run_after=now) == \
        dag.timetable.infer_manual_data_interval(run_after=now)


def test_custom_timezone_round_trip():
    tz = ZoneInfo("Europe/Amsterdam")
    dag = tricky_dag(start_date=datetime(2024, 3, 30, 6, tzinfo=tz), schedule="0 6 * * *",
                     end_date=datetime(2025, 1, 1, tzinfo=tz))
    restored = round_trip(dag)
    assert restored.timezone == tz
    assert restored.timezone_name == "Europe/Amsterdam"
    assert restored.start_date == datetime(2024, 3, 30, 5, tzinfo=UTC)
    assert restored.end_date == dag.end_date
    assert restored.timetable == dag.timetable
    after = datetime(2024, 4, 2, 12, tzinfo=UTC)
    assert restored.timetable.infer_manual_data_interval(run_after=after) == \
        dag.timetable.infer_manual_data_interval(run_after=after)
    assert specs_from_dag(restored) == specs_from_dag(dag)


def test_fixed_offset_timezone_round_trip():
    tz = timezone(timedelta(hours=-5))
    dag = tricky_dag(start_date=datetime(2024, 1, 1, tzinfo=tz))
    restored = round_trip(dag)
    assert restored.timezone_name == "-05:00"
    assert restored.start_date == dag.start_date


class EveryOtherDay(Timetable):
    """A user's timetable: the web may show it, the scheduler must not import it."""

    @property
    def summary(self) -> str:
        return "every other day"

    def serialize(self):
        return {"step": 2}


def test_custom_timetable_is_kept_but_never_imported(monkeypatch):
    dag = tricky_dag(schedule=EveryOtherDay())
    data = serialize_dag(dag)
    assert data["dag"]["timetable"]["type"] == "custom"
    imported = []
    import importlib

    real_import = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: imported.append(name) or real_import(name, *a))
    restored = deserialize_dag(json.loads(json.dumps(data)))
    assert imported == []
    assert isinstance(restored.timetable, UnresolvedTimetable)
    assert restored.timetable_summary == "every other day"
    assert restored.timetable.summary == "every other day"
    assert restored.timetable.class_path.endswith("EveryOtherDay")
    assert restored.timetable.data == {"step": 2}
    with pytest.raises(ScheduleError, match="does not import user code"):
        restored.timetable.infer_manual_data_interval(run_after=START)
    with pytest.raises(ScheduleError, match="EveryOtherDay"):
        restored.timetable.next_dagrun_info(last_automated_data_interval=None,
                                            restriction=None)


# -- versions and fields ------------------------------------------------------------------------


def test_envelope_has_version():
    data = serialize_dag(tricky_dag())
    assert set(data) == {"v", "dag"} and data["v"] == FORMAT_VERSION == 1


def test_unknown_version_is_rejected():
    data = serialize_dag(tricky_dag())
    data["v"] = 2
    with pytest.raises(SerializationError, match="unknown version 2; this Updraft reads "
                                                  "version 1"):
        deserialize_dag(data)
    del data["v"]
    with pytest.raises(SerializationError, match="unknown version None"):
        deserialize_dag(data)


def test_unknown_fields_are_rejected_precisely():
    base = serialize_dag(tricky_dag())

    data = copy.deepcopy(base)
    data["extra"] = 1
    with pytest.raises(SerializationError, match="^serialized DAG has unknown field 'extra'$"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    data["dag"]["x"] = 1
    with pytest.raises(SerializationError,
                       match="^serialized DAG has unknown field 'x' in DAG 'tricky'$"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    data["dag"]["tasks"][0]["x"] = 1
    with pytest.raises(SerializationError,
                       match="^serialized DAG has unknown field 'x' in task 'start'$"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    data["dag"]["params"]["rows"]["x"] = 1
    with pytest.raises(SerializationError, match="unknown field 'x' in param 'rows' in DAG"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    mapped = next(t for t in data["dag"]["tasks"] if t["task_id"] == "add")
    mapped["expand_input"]["x"] = 1
    with pytest.raises(SerializationError,
                       match="unknown field 'x' in the expand input in task 'add'"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    data["dag"]["task_group"]["children"][0] = {
        "group_id": "g", "label": "g", "tooltip": "", "ui_color": "c", "prefix_group_id": True,
        "children": [], "x": 1}
    with pytest.raises(SerializationError, match="unknown field 'x' in task group"):
        deserialize_dag(data)

    data = copy.deepcopy(base)
    data["dag"]["timetable"]["x"] = 1
    with pytest.raises(SerializationError, match="invalid timetable in DAG 'tricky'"):
        deserialize_dag(data)


def test_missing_and_mistyped_fields_are_rejected():
    base = serialize_dag(tricky_dag())
    data = copy.deepcopy(base)
    del data["dag"]["tasks"][0]["retries"]
    with pytest.raises(SerializationError, match="missing field 'retries' in task 'start'"):
        deserialize_dag(data)
    data = copy.deepcopy(base)
    data["dag"]["tasks"][0]["retries"] = "3"
    with pytest.raises(SerializationError, match="field 'retries' in task 'start' has an "
                                                  "invalid value '3' \\(expected an integer\\)"):
        deserialize_dag(data)
    data = copy.deepcopy(base)
    data["dag"]["tasks"][0]["trigger_rule"] = "sometimes"
    with pytest.raises(SerializationError, match="unknown trigger rule 'sometimes'"):
        deserialize_dag(data)
    data = copy.deepcopy(base)
    data["dag"]["tasks"][0]["downstream_task_ids"].append("ghost")
    with pytest.raises(SerializationError, match="refers to task 'ghost'"):
        deserialize_dag(data)
    data = copy.deepcopy(base)
    data["dag"]["timezone"] = "Mars/Olympus"
    with pytest.raises(SerializationError, match="invalid timezone"):
        deserialize_dag(data)
    with pytest.raises(SerializationError, match="must be an object"):
        deserialize_dag([])


# -- hashes -------------------------------------------------------------------------------------


def test_hash_is_stable_and_follows_changes():
    first = serialize_dag(tricky_dag())
    second = serialize_dag(tricky_dag())
    assert first == second
    assert dag_hash(first) == dag_hash(second)
    assert len(dag_hash(first)) == 64
    # Key order does not matter: the hash is over canonical JSON.
    reordered = json.loads(json.dumps(first))
    reordered["dag"] = dict(reversed(list(reordered["dag"].items())))
    assert dag_hash(reordered) == dag_hash(first)
    assert deserialize_dag(first).dag_hash == dag_hash(first)

    changed = tricky_dag()
    changed.task_dict["start"].retries = 5
    assert dag_hash(serialize_dag(changed)) != dag_hash(first)
    renamed = tricky_dag(description="other")
    assert dag_hash(serialize_dag(renamed)) != dag_hash(first)
    assert dag_hash(serialize_dag(tricky_dag(), file_hash="abc")) != dag_hash(first)


def test_serialized_form_is_json_and_read_only():
    data = serialize_dag(tricky_dag())
    json.dumps(data, allow_nan=False)
    restored = deserialize_dag(data)
    with pytest.raises(AttributeError):
        restored.dag_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        restored.task_dict["start"].retries = 9  # type: ignore[misc]
    assert restored.get_task("start").task_id == "start"
    assert restored.has_task("end") and not restored.has_task("nope")
    assert {t.task_id for t in restored.roots} == {t.task_id for t in tricky_dag().roots}
    from updraft.exceptions import TaskNotFound

    with pytest.raises(TaskNotFound):
        restored.get_task("nope")


def test_edge_labels_from_xcomarg():
    with DAG("labels", start_date=START, schedule=None) as dag:
        @task
        def first():
            return 1

        last = EmptyOperator(task_id="last")
        first() >> Label("done") >> last
    restored = round_trip(dag)
    assert restored.get_edge_info("first", "last") == {"label": "done"}


def test_naive_task_dates_become_aware_in_the_dag_timezone():
    tz = ZoneInfo("Europe/Amsterdam")
    with DAG("naive", start_date=datetime(2024, 1, 1, tzinfo=tz), schedule=None) as dag:
        EmptyOperator(task_id="e", start_date=datetime(2024, 2, 1, 6),
                      end_date=datetime(2024, 3, 1))
    restored = round_trip(dag)
    assert dag.task_dict["e"].start_date == datetime(2024, 2, 1, 5, tzinfo=UTC)
    assert restored.task_dict["e"].start_date == datetime(2024, 2, 1, 5, tzinfo=UTC)
    assert restored.task_dict["e"].end_date == datetime(2024, 2, 29, 23, tzinfo=UTC)
