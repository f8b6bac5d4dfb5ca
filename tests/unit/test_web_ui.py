"""The UI's pure parts: graph layout, safe markdown, the trigger form, the DAG list queries."""

from __future__ import annotations

from datetime import datetime

from updraft import DAG, Param, TaskGroup
from updraft.operators.empty import EmptyOperator
from updraft.serialization import deserialize_dag, serialize_dag
from web.ui.forms import param_fields, read_conf
from web.ui.graph import aggregate_state, layout_dag, render_svg
from web.ui.markdown import render_markdown


def _dag():
    with DAG("g", schedule=None, start_date=datetime(2024, 1, 1),
             params={"n": Param(2, type="integer", minimum=1, maximum=5),
                     "mode": Param("a", type="string", enum=["a", "b"]),
                     "flag": Param(False, type="boolean")}) as dag:
        a = EmptyOperator(task_id="a")
        with TaskGroup("grp"):
            b = EmptyOperator(task_id="b")
            c = EmptyOperator(task_id="c")
            b >> c
        d = EmptyOperator(task_id="d")
        a >> b
        c >> d
        a >> d  # a long edge: a dummy point in each layer between
    return deserialize_dag(serialize_dag(dag))


def test_layers_follow_the_longest_path_and_groups_are_boxed():
    layout = layout_dag(_dag())
    layer = {n.node_id: n.layer for n in layout.nodes.values() if n.kind == "task"}
    assert layer == {"a": 0, "grp.b": 1, "grp.c": 2, "d": 3}
    assert sum(1 for n in layout.nodes.values() if n.kind == "dummy") == 2
    (box,) = layout.groups
    inside = [layout.nodes["grp.b"], layout.nodes["grp.c"]]
    assert all(box.x < n.x and box.y < n.y and n.x < box.x + box.w for n in inside)
    for edge in layout.edges:  # every edge goes left to right
        assert edge.points[0][0] < edge.points[-1][0]


def test_a_collapsed_group_is_one_node_with_the_worst_state():
    layout = layout_dag(_dag(), collapsed=["grp"])
    assert "group:grp" in layout.nodes and "grp.b" not in layout.nodes
    svg = render_svg(layout, {"grp.b": "success", "grp.c": "failed"})
    assert 'class="node group-node state-failed"' in svg
    assert aggregate_state(["success", "skipped"]) == "success"
    assert aggregate_state(["success", "running"]) == "running"


def test_markdown_escapes_html_and_keeps_a_safe_subset():
    html = str(render_markdown("# T\n\n**b** <script>x</script> [ok](https://e.org) "
                               "[bad](javascript:alert(1))\n\n- one\n- two"))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://e.org"' in html and 'href="javascript' not in html
    assert "<strong>b</strong>" in html and "<li>two</li>" in html


def test_trigger_form_fields_and_validation():
    dag = _dag()
    kinds = {f.name: f.kind for f in param_fields(dag.params)}
    assert kinds == {"n": "integer", "mode": "select", "flag": "checkbox"}
    conf, errors = read_conf(dag.params, {"param.n": "9", "param.mode": "b"})
    assert "n" in errors and "maximum of 5" in errors["n"]
    conf, errors = read_conf(dag.params, {"param.n": "3", "param.mode": "b",
                                          "param.flag.present": "1", "param.flag": "on",
                                          "conf": '{"extra": 1}'})
    assert errors == {} and conf == {"n": 3, "mode": "b", "flag": True, "extra": 1}
    _conf, errors = read_conf(dag.params, {"conf": "[1"})
    assert "conf is not valid JSON" in errors["conf"]


def test_dag_list_is_two_queries(store_url):
    from sqlalchemy import event

    from updraft.store.commands import trigger_dag_run
    from updraft.store.dags import write_dag
    from updraft.store.engine import get_engine, session_scope
    from updraft.store.models import utcnow
    from web.ui.queries import list_dags

    with session_scope() as session:
        for i in range(30):
            with DAG(f"listed_{i:02d}", schedule=None, start_date=datetime(2024, 1, 1),
                     tags=["t"], is_paused_upon_creation=False) as dag:
                EmptyOperator(task_id="only")
            write_dag(session, dag, file_hash=None, now=utcnow())
        trigger_dag_run(session, "listed_03")
    statements = []
    event.listen(get_engine(), "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    with session_scope() as session:
        listing = list_dags(session, search="listed", tags=["t"], limit=10, offset=0)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2
    assert listing.total == 30 and len(listing.dags) == 10
    runs = {d.dag_id: d.runs for d in listing.dags}
    assert runs["listed_03"][0].ti_counts == {"none": 1}


def test_rfc3339_dates_are_parsed_strictly_and_clamped_for_filters():
    import pytest

    from web.api.common import parse_rfc3339

    assert parse_rfc3339("2024-01-31t06:00:00.1234567z").isoformat() == \
        "2024-01-31T06:00:00.123456+00:00"
    assert parse_rfc3339("2024-06-30T23:59:60+02:00").isoformat() == \
        "2024-06-30T21:59:59.999999+00:00"
    for text in ("2024-01-31", "2024-01-31 06:00:00Z", "2024-01-31T06:00Z",
                 "2024-02-30T00:00:00Z", "2024-01-31T06:00:00", "2024-01-31T06:00:00+24:00"):
        with pytest.raises(ValueError):
            parse_rfc3339(text)
    assert parse_rfc3339("0000-01-01T00:00:00Z", clamp=True).year == 1000
    assert parse_rfc3339("9999-12-31T23:59:59-14:00", clamp=True).year == 9999
    with pytest.raises(ValueError):
        parse_rfc3339("9999-12-31T23:59:59-14:00")


def test_request_bodies_are_checked_against_the_document_with_precise_reasons():
    from web.api.common import _describe, _error_rank
    from web.api.openapi import request_validator

    def reason(schema, body):
        errors = sorted(request_validator(schema).iter_errors(body), key=_error_rank)
        return _describe(errors[0]) if errors else None

    assert reason("PoolCreate", {"name": "p", "slots": 2}) is None
    assert reason("PoolCreate", {"name": "p"}) == "field 'slots' is required"
    assert reason("PoolCreate", {"name": "p", "slots": None}) == \
        "field 'slots' must not be null"
    assert reason("PoolCreate", {"name": "p", "slots": 2**31}) == \
        "field 'slots' must be at most 2147483647, got 2147483648"
    assert reason("PoolCreate", {"name": " ", "slots": 1}).startswith("field 'name' is invalid")
    assert reason("PoolCreate", {"name": "p", "slots": 1, "x": 1}).startswith(
        "unknown field(s) 'x'")
    assert reason("VariableCreate", {"key": "k\n", "value": "v"}).startswith(
        "field 'key' is invalid")
    assert reason("DAGRunTrigger", {"dag_run_id": ".."}).startswith("field 'dag_run_id'")
    assert reason("DAGRunTrigger", {"logical_date": "1899-12-31T00:00:00Z"}).startswith(
        "field 'logical_date'")
    assert reason("TaskInstanceState", {"new_state": "success", "map_indexes": [1, -1]}) == \
        "field 'map_indexes[1]' must be at least 0, got -1"
    assert reason("ConnectionCreate", {"conn_id": "c", "conn_type": "http",
                                       "extra": None}) is None


def test_login_failures_are_counted_per_address_and_name():
    from web.auth.users import LoginLimiter

    limiter = LoginLimiter(max_failures=3, window=60, address_failures=5)
    for _ in range(3):
        limiter.failed("10.0.0.1", "Alice", now=0)
    assert not limiter.allowed("10.0.0.1", "alice", now=1)  # names match whatever the case
    assert limiter.allowed("10.0.0.1", "bob", now=1)  # one proxy, another user
    assert limiter.allowed("10.0.0.2", "alice", now=1)
    assert limiter.retry_after("10.0.0.1", "alice", now=1) == 60
    for name in ("c", "d"):
        limiter.failed("10.0.0.1", name, now=2)
    assert not limiter.allowed("10.0.0.1", "bob", now=3)  # a spray from one address stops
    assert limiter.allowed("10.0.0.1", "bob", now=61)


def test_usernames_rule():
    import pytest

    from web.auth.users import UserError, validate_username

    for good in ("admin", "a.b-c_d@example.com", "X1+tag"):
        assert validate_username(good) == good
    for bad in ("", "<script>", "-lead", "a b", "x" * 65, "é"):
        with pytest.raises(UserError):
            validate_username(bad)
