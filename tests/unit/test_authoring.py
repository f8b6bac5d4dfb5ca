"""Authoring API: DAG construction and validation, dependencies, groups, TaskFlow, params."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from updraft import DAG, Label, Param, TaskGroup, chain, chain_linear, cross_downstream, dag, task
from updraft.decorators import task_group
from updraft.exceptions import (
    DagCycleException,
    DagDefinitionError,
    DuplicateTaskIdFound,
    InvalidIdentifier,
)
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator
from updraft.operators.python import PythonOperator
from updraft.state import TriggerRule

START = datetime(2024, 1, 1, tzinfo=UTC)


def ups(dag_obj, task_id):
    return dag_obj.get_task(task_id).upstream_task_ids


def downs(dag_obj, task_id):
    return dag_obj.get_task(task_id).downstream_task_ids


# -- validation errors ----------------------------------------------------------------------

def test_cycle_is_named_in_the_message():
    with DAG("cyc", start_date=START, schedule=None) as d:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        a >> b >> c >> a
    with pytest.raises(DagCycleException) as err:
        d.validate()
    message = str(err.value)
    assert "cyc" in message
    for tid in "abc":
        assert f"'{tid}'" in message or f" {tid}" in message or f"{tid} " in message
    cycle = d.find_cycle()
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    with pytest.raises(DagCycleException):
        d.topological_sort()


def test_no_cycle_in_a_diamond():
    with DAG("diamond", start_date=START, schedule=None) as d:
        a, b, c, e = (EmptyOperator(task_id=t) for t in "abce")
        a >> [b, c] >> e
    d.validate()
    assert d.find_cycle() == []
    order = [t.task_id for t in d.topological_sort()]
    assert order.index("a") < order.index("b") < order.index("e")
    assert order.index("c") < order.index("e")


def test_task_cannot_depend_on_itself():
    with DAG("selfdep", start_date=START, schedule=None):
        a = EmptyOperator(task_id="a")
        with pytest.raises(DagDefinitionError):
            a >> a


def test_duplicate_task_id():
    with DAG("dup", start_date=START, schedule=None):
        EmptyOperator(task_id="a")
        with pytest.raises(DuplicateTaskIdFound, match="'a'"):
            EmptyOperator(task_id="a")


@pytest.mark.parametrize("bad", ["has space", "semi;colon", "", "x" * 251, "slash/x"])
def test_invalid_task_id(bad):
    with DAG("ids", start_date=START, schedule=None), pytest.raises(InvalidIdentifier):
        EmptyOperator(task_id=bad)


def test_invalid_dag_id():
    with pytest.raises(InvalidIdentifier):
        DAG("bad dag id", start_date=START, schedule=None)


def test_invalid_group_id_with_dot():
    with DAG("gid", start_date=START, schedule=None), pytest.raises(InvalidIdentifier):
        TaskGroup("a.b")


def test_unknown_trigger_rule():
    with DAG("tr", start_date=START, schedule=None):
        with pytest.raises(DagDefinitionError, match="trigger_rule"):
            EmptyOperator(task_id="a", trigger_rule="sometimes")
        ok = EmptyOperator(task_id="b", trigger_rule="none_failed_or_skipped")
        assert ok.trigger_rule == TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS


@pytest.mark.parametrize("schedule", ["not a cron", "@fortnightly", "61 * * * *", 42])
def test_bad_schedule(schedule):
    with pytest.raises(DagDefinitionError, match="badsched"):
        DAG("badsched", start_date=START, schedule=schedule)


def test_schedule_and_schedule_interval_both_refused():
    with pytest.raises(DagDefinitionError):
        DAG("both", start_date=START, schedule="@daily", schedule_interval="@daily")


def test_task_added_to_two_dags():
    with DAG("one", start_date=START, schedule=None):
        a = EmptyOperator(task_id="a")
    other = DAG("two", start_date=START, schedule=None)
    with pytest.raises(DagDefinitionError, match="already belongs"):
        other.add_tasks([a])
    with DAG("three", start_date=START, schedule=None):
        b = EmptyOperator(task_id="b")
    with pytest.raises(DagDefinitionError, match="more than one DAG"):
        a >> b


def test_unknown_operator_argument():
    with DAG("args", start_date=START, schedule=None), \
            pytest.raises(DagDefinitionError, match="Invalid arguments"):
            EmptyOperator(task_id="a", no_such_argument=1)


def test_missing_required_argument():
    with DAG("req", start_date=START, schedule=None), \
            pytest.raises(DagDefinitionError, match="bash_command"):
            BashOperator(task_id="a")


def test_end_date_before_start_date():
    d = DAG("dates", start_date=START, end_date=START - timedelta(days=1), schedule=None)
    with pytest.raises(DagDefinitionError, match="end_date"):
        d.validate()


def test_bad_param_default_refused_at_validation():
    d = DAG("pdef", start_date=START, schedule=None,
            params={"n": Param("x", type="integer")})
    with pytest.raises(DagDefinitionError, match="n"):
        d.validate()


# -- default_args -------------------------------------------------------------------------

def test_default_args_fill_missing_arguments():
    args = {"owner": "alice", "retries": 3, "retry_delay": timedelta(seconds=7),
            "start_date": START, "unknown_key": "ignored"}
    with DAG("da", default_args=args, schedule=None) as d:
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b", retries=1)
        c = BashOperator(task_id="c", bash_command="true")
    assert d.start_date == START
    assert (a.owner, a.retries, a.retry_delay) == ("alice", 3, timedelta(seconds=7))
    assert b.retries == 1
    assert c.retries == 3 and c.owner == "alice"
    assert a.start_date == START


def test_default_args_fill_subclass_required_arguments():
    with DAG("dareq", default_args={"bash_command": "echo hi"}, start_date=START,
             schedule=None):
        op = BashOperator(task_id="a")
    assert op.bash_command == "echo hi"


def test_default_args_merge_with_nested_task_groups():
    with DAG("nested", start_date=START, schedule=None,
             default_args={"owner": "dag", "retries": 1, "queue": "q_dag"}) as d:
        top = EmptyOperator(task_id="top")
        with TaskGroup("outer", default_args={"owner": "outer", "retries": 2}):
            o = EmptyOperator(task_id="o")
            with TaskGroup("inner", default_args={"retries": 5}):
                i = EmptyOperator(task_id="i")
                explicit = EmptyOperator(task_id="e", retries=9, default_args={"owner": "me"})
    assert (top.owner, top.retries, top.queue) == ("dag", 1, "q_dag")
    assert (o.owner, o.retries, o.queue) == ("outer", 2, "q_dag")
    assert (i.owner, i.retries, i.queue) == ("outer", 5, "q_dag")
    assert (explicit.owner, explicit.retries) == ("me", 9)
    assert i.task_id == "outer.inner.i"
    assert d.has_task("outer.inner.e")


def test_default_args_params_become_dag_params():
    args = {"params": {"x": 1}, "start_date": START}
    with DAG("dparams", default_args=args, params={"y": 2}, schedule=None) as d:
        EmptyOperator(task_id="a")
    assert d.params["x"] == 1 and d.params["y"] == 2
    assert args == {"params": {"x": 1}, "start_date": START}  # the caller's dict is untouched


def test_dag_import_is_the_decorator_in_any_import_order():
    import updraft
    import updraft.dag  # binds the submodule on the package before the import below
    from updraft import dag as imported

    @imported(start_date=START, schedule=None)
    def via_import():
        EmptyOperator(task_id="a")

    assert via_import().dag_id == "via_import"
    assert updraft.dag.DAG is DAG


def test_mapped_operator_gets_default_args():
    with DAG("mapda", start_date=START, schedule=None,
             default_args={"retries": 4, "owner": "bob"}):
        m = BashOperator.partial(task_id="m").expand(bash_command=["a", "b"])
    assert m.retries == 4 and m.owner == "bob"
    assert m.partial_kwargs["retries"] == 4


# -- >> and << ------------------------------------------------------------------------------

def test_shift_operators_with_lists():
    with DAG("shift", start_date=START, schedule=None) as d:
        a, b, c, e, f = (EmptyOperator(task_id=t) for t in "abcef")
        result = a >> [b, c]
        [b, c] >> e
        f << e
        assert result == [b, c]
    assert downs(d, "a") == {"b", "c"}
    assert ups(d, "e") == {"b", "c"}
    assert ups(d, "f") == {"e"}
    assert [t.task_id for t in d.roots] == ["a"]
    assert [t.task_id for t in d.leaves] == ["f"]


def test_lshift_returns_the_right_operand():
    with DAG("lshift", start_date=START, schedule=None) as d:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        c << b << a
    assert ups(d, "c") == {"b"} and ups(d, "b") == {"a"}
    with DAG("rlshift", start_date=START, schedule=None) as d2:
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        [a, b] << c
    assert downs(d2, "c") == {"a", "b"}


def test_shift_with_task_groups_uses_roots_and_leaves():
    with DAG("groups", start_date=START, schedule=None) as d:
        start = EmptyOperator(task_id="start")
        with TaskGroup("g") as g:
            g1 = EmptyOperator(task_id="g1")
            g2 = EmptyOperator(task_id="g2")
            g3 = EmptyOperator(task_id="g3")
            g1 >> g2
        end = EmptyOperator(task_id="end")
        start >> g >> end
    assert downs(d, "start") == {"g.g1", "g.g3"}
    assert ups(d, "end") == {"g.g2", "g.g3"}
    assert g.upstream_task_ids == {"start"}
    assert g.downstream_task_ids == {"end"}
    assert [g1.label, g3.label] == ["g1", "g3"]


def test_group_to_group_and_list_of_groups():
    with DAG("g2g", start_date=START, schedule=None) as d:
        with TaskGroup("x") as x:
            EmptyOperator(task_id="a")
        with TaskGroup("y") as y:
            EmptyOperator(task_id="b")
        end = EmptyOperator(task_id="end")
        x >> y
        [x, y] >> end
    assert ups(d, "y.b") == {"x.a"}
    assert ups(d, "end") == {"x.a", "y.b"}


def test_shift_with_xcom_args():
    with DAG("xarg", start_date=START, schedule=None) as d:
        @task
        def produce():
            return 1

        out = produce()
        after = EmptyOperator(task_id="after")
        before = EmptyOperator(task_id="before")
        out >> after
        before >> out
    assert ups(d, "after") == {"produce"}
    assert ups(d, "produce") == {"before"}


def test_xcom_arg_argument_creates_dependency():
    with DAG("xdep", start_date=START, schedule=None) as d:
        @task
        def a():
            return 1

        @task
        def b(x, y):
            return x

        b(a(), y={"nested": [a()]})
    assert ups(d, "b") == {"a", "a__1"}


def test_operator_templated_xcom_arg_creates_dependency():
    with DAG("xop", start_date=START, schedule=None) as d:
        @task
        def a():
            return 1

        PythonOperator(task_id="p", python_callable=print, op_args=[a()])
        BashOperator(task_id="b", bash_command="echo 1", env={"X": a()})
    assert ups(d, "p") == {"a"}
    assert ups(d, "b") == {"a__1"}


def test_task_without_dag_joins_when_related():
    with DAG("late", start_date=START, schedule=None) as d:
        a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    assert not b.has_dag
    a >> b
    assert b.dag is d and d.has_task("b")


# -- chain, cross_downstream, chain_linear ---------------------------------------------------

def test_chain_pairs_lists():
    with DAG("chain", start_date=START, schedule=None) as d:
        t = {n: EmptyOperator(task_id=n) for n in ["a", "b", "c", "e", "f", "g"]}
        chain(t["a"], [t["b"], t["c"]], [t["e"], t["f"]], t["g"])
    assert downs(d, "a") == {"b", "c"}
    assert downs(d, "b") == {"e"}
    assert downs(d, "c") == {"f"}
    assert ups(d, "g") == {"e", "f"}


def test_chain_different_lengths_raises():
    with DAG("chainbad", start_date=START, schedule=None):
        a, b, c = (EmptyOperator(task_id=t) for t in "abc")
        with pytest.raises(ValueError):
            chain([a, b], [c])


def test_chain_with_groups_and_xcom_args():
    with DAG("chaingx", start_date=START, schedule=None) as d:
        @task
        def first():
            return 1

        with TaskGroup("g") as g:
            EmptyOperator(task_id="inside")
        last = EmptyOperator(task_id="last")
        chain(first(), g, last)
    assert ups(d, "g.inside") == {"first"}
    assert ups(d, "last") == {"g.inside"}


def test_cross_downstream():
    with DAG("cross", start_date=START, schedule=None) as d:
        a, b, c, e = (EmptyOperator(task_id=t) for t in "abce")
        cross_downstream([a, b], [c, e])
    assert ups(d, "c") == {"a", "b"} and ups(d, "e") == {"a", "b"}


def test_chain_linear():
    with DAG("linear", start_date=START, schedule=None) as d:
        t = {n: EmptyOperator(task_id=n) for n in "abcefg"}
        chain_linear(t["a"], [t["b"], t["c"]], [t["e"], t["f"]], t["g"])
    assert downs(d, "b") == {"e", "f"} and downs(d, "c") == {"e", "f"}
    assert ups(d, "g") == {"e", "f"}


# -- task groups -----------------------------------------------------------------------------

def test_task_group_prefixes():
    with DAG("prefix", start_date=START, schedule=None) as d:
        with TaskGroup("a"):
            EmptyOperator(task_id="t")
            with TaskGroup("b"):
                EmptyOperator(task_id="t")
        with TaskGroup("np", prefix_group_id=False):
            EmptyOperator(task_id="plain")
            with TaskGroup("child") as child:
                EmptyOperator(task_id="c")
    assert set(d.task_ids) == {"a.t", "a.b.t", "plain", "child.c"}
    assert child.group_id == "child"
    groups = d.get_task_group_dict()
    assert {"a", "a.b", "np", "child"} <= set(groups)


def test_duplicate_group_id():
    with DAG("dupg", start_date=START, schedule=None):
        TaskGroup("g")
        with pytest.raises(DuplicateTaskIdFound):
            TaskGroup("g")


def test_task_group_decorator_suffixes_repeated_calls():
    with DAG("tgdeco", start_date=START, schedule=None) as d:
        @task_group
        def section():
            EmptyOperator(task_id="x")

        section()
        section()
    assert {"section.x", "section__1.x"} <= set(d.task_ids)


def test_task_group_decorator_returns_group_for_dependencies():
    with DAG("tgdeps", start_date=START, schedule=None) as d:
        @task_group(group_id="grp")
        def section():
            EmptyOperator(task_id="x")

        EmptyOperator(task_id="start") >> section() >> EmptyOperator(task_id="end")
    assert ups(d, "grp.x") == {"start"}
    assert ups(d, "end") == {"grp.x"}


# -- TaskFlow ------------------------------------------------------------------------------

def test_task_ids_get_suffixes():
    with DAG("suffix", start_date=START, schedule=None) as d:
        @task
        def f():
            return 1

        f()
        f()
        f()
        with TaskGroup("g"):
            f()
            f()
    assert set(d.task_ids) == {"f", "f__1", "f__2", "g.f", "g.f__1"}


def test_override():
    with DAG("over", start_date=START, schedule=None) as d:
        @task(retries=2)
        def f():
            return 1

        f.override(task_id="renamed", retries=5)()
        f()
    assert d.get_task("renamed").retries == 5
    assert d.get_task("f").retries == 2


def _returns_dict() -> dict:
    return {}


def _returns_typed_dict() -> dict[str, int]:
    return {}


def _returns_int() -> int:
    return 1


def _returns_list() -> list[int]:
    return []


def _returns_unannotated():
    return {}


@pytest.mark.parametrize(("func", "expected"), [
    (_returns_dict, True), (_returns_typed_dict, True), (_returns_int, False),
    (_returns_list, False), (_returns_unannotated, False)])
def test_multiple_outputs_inference(func, expected):
    with DAG("mo", start_date=START, schedule=None) as d:
        task(func)()
    assert d.get_task(func.__name__).multiple_outputs is expected


def test_multiple_outputs_explicit_wins():
    with DAG("moe", start_date=START, schedule=None) as d:
        @task(multiple_outputs=False)
        def fn() -> dict[str, int]:
            return {}

        fn()
    assert d.get_task("fn").multiple_outputs is False


def test_task_call_checks_signature():
    with DAG("sig", start_date=START, schedule=None):
        @task
        def f(a, b):
            return a

        with pytest.raises(DagDefinitionError):
            f(1)


def test_task_docstring_becomes_doc_md():
    with DAG("doc", start_date=START, schedule=None) as d:
        @task
        def f():
            """Does things."""

        f()
    assert d.get_task("f").doc_md == "Does things."


def test_dag_decorator_params_and_defaults():
    @dag(start_date=START, schedule=None, params={"extra": Param(3, type="integer")})
    def my_pipeline(n: int = 5, name: str = "x"):
        """Pipeline docs."""
        @task
        def show(value):
            return value

        show(n)

    d = my_pipeline()
    assert d.dag_id == "my_pipeline"
    assert d.params["n"] == 5 and d.params["name"] == "x" and d.params["extra"] == 3
    assert d.doc_md == "Pipeline docs."
    d2 = my_pipeline(n=9)
    assert d2.params["n"] == 9


def test_dag_decorator_with_explicit_id():
    @dag(dag_id="custom", start_date=START, schedule="@daily")
    def builder():
        EmptyOperator(task_id="a")

    d = builder()
    assert d.dag_id == "custom" and d.task_ids == ["a"]


def test_dag_decorator_validates():
    @dag(start_date=START, schedule=None)
    def cyclic():
        a = EmptyOperator(task_id="a")
        b = EmptyOperator(task_id="b")
        a >> b >> a

    with pytest.raises(DagCycleException):
        cyclic()


# -- labels --------------------------------------------------------------------------------

def test_label_edges():
    with DAG("labels", start_date=START, schedule=None) as d:
        a, b, c, e = (EmptyOperator(task_id=t) for t in "abce")
        a >> Label("yes") >> b
        a >> Label("multi") >> [c, e]
        e << Label("back") << b
    assert d.get_edge_info("a", "b") == {"label": "yes"}
    assert d.get_edge_info("a", "c") == {"label": "multi"}
    assert d.get_edge_info("a", "e") == {"label": "multi"}
    assert d.get_edge_info("b", "e") == {"label": "back"}
    assert ups(d, "e") == {"a", "b"}
    assert d.get_edge_info("c", "e") == {}


def test_label_edges_to_group():
    with DAG("labelg", start_date=START, schedule=None) as d:
        a = EmptyOperator(task_id="a")
        with TaskGroup("g") as g:
            EmptyOperator(task_id="x")
        a >> Label("into") >> g
    assert d.get_edge_info("a", "g.x") == {"label": "into"}


# -- setup / teardown wiring ---------------------------------------------------------------

def test_as_teardown_wiring_and_trigger_rule():
    with DAG("st", start_date=START, schedule=None) as d:
        s = EmptyOperator(task_id="s")
        w = EmptyOperator(task_id="w")
        t = EmptyOperator(task_id="t")
        s >> w >> t.as_teardown(setups=s)
    assert s.is_setup and t.is_teardown
    assert t.trigger_rule == TriggerRule.ALL_DONE_SETUP_SUCCESS
    assert ups(d, "t") == {"s", "w"}


def test_setup_teardown_context_manager():
    with DAG("stcm", start_date=START, schedule=None) as d:
        s = EmptyOperator(task_id="s").as_setup()
        t = EmptyOperator(task_id="t").as_teardown(setups=s)
        with s >> t:
            EmptyOperator(task_id="w1") >> EmptyOperator(task_id="w2")
    assert ups(d, "w1") == {"s"}
    assert ups(d, "t") == {"s", "w2"}


def test_group_leaves_look_through_teardown():
    with DAG("stg", start_date=START, schedule=None) as d:
        with TaskGroup("g") as g:
            s = EmptyOperator(task_id="s")
            w = EmptyOperator(task_id="w")
            t = EmptyOperator(task_id="t")
            s >> w >> t.as_teardown(setups=s)
        end = EmptyOperator(task_id="end")
        g >> end
    assert ups(d, "end") == {"g.w"}


def test_labels_between_groups_and_tasks():
    with DAG("group_labels", start_date=datetime(2024, 1, 1, tzinfo=UTC), schedule=None) as d:
        with TaskGroup("load") as load:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        done = EmptyOperator(task_id="done")
        load >> Label("loaded") >> done
    assert d.task_dict["done"].upstream_task_ids == {"load.b"}
    assert d.get_edge_info("load.b", "done") == {"label": "loaded"}
