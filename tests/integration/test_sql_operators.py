"""SQL hooks, operators and SqlSensor against real SQLite, PostgreSQL and MariaDB databases.

Each test gets a ``db`` connection (``UPDRAFT_CONN_DB`` as an Airflow-style URI) on one
backend in turn, and runs DAGs with ``dag.test()``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from updraft.config import conf
from updraft.dag import DAG
from updraft.exceptions import UpdraftException
from updraft.hooks.base import BaseHook
from updraft.hooks.sql import (
    MySqlHook,
    PostgresHook,
    SqlHook,
    SqliteHook,
    fetch_one_handler,
    split_sql_string,
)
from updraft.operators.empty import EmptyOperator
from updraft.operators.sql import (
    BranchSQLOperator,
    MySqlOperator,
    PostgresOperator,
    SQLCheckOperator,
    SQLColumnCheckOperator,
    SQLExecuteQueryOperator,
    SQLIntervalCheckOperator,
    SQLTableCheckOperator,
    SQLThresholdCheckOperator,
    SQLValueCheckOperator,
    json_safe,
)
from updraft.sensors.sql import SqlSensor
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI
from updraft.tasklog import try_log_path

START = datetime(2024, 1, 1, tzinfo=UTC)
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _airflow_uri(sqlalchemy_url: str, scheme: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(sqlalchemy_url)
    auth = url.username or ""
    if url.password:
        auth += f":{url.password}"
    return f"{scheme}://{auth}@{url.host}:{url.port}/{url.database}"


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
])
def db(request, tmp_path, monkeypatch):
    """The backend name; connection ``db`` points at a database with an ``items`` table."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path / 'data.db'}"
    elif request.param == "postgres":
        uri = _airflow_uri(request.getfixturevalue("postgres_url"), "postgres")
    else:
        uri = _airflow_uri(request.getfixturevalue("mysql_url"), "mysql")
    monkeypatch.setenv("UPDRAFT_CONN_DB", uri)
    hook = BaseHook.get_hook("db")
    hook.run(["DROP TABLE IF EXISTS items", "DROP TABLE IF EXISTS loaded",
              ("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(20), "
               "price NUMERIC(8,2), qty INTEGER)")])
    hook.insert_rows("items", [(1, "apple", Decimal("1.50"), 10), (2, "pear", Decimal("2.25"), 5),
                               (3, "fig", Decimal("4.00"), None)],
                     target_fields=["id", "name", "price", "qty"])
    yield request.param
    hook.run(["DROP TABLE IF EXISTS items", "DROP TABLE IF EXISTS loaded"])


def _ph(backend: str) -> str:
    return "?" if backend == "sqlite" else "%s"


def _states(run) -> dict[str, TI]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _xcom(run, task_id: str):
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def _log(run, task_id: str, try_number: int = 1) -> str:
    return try_log_path(conf.log_folder(), run.dag_id, run.run_id, task_id, -1,
                        try_number).read_text()


# -- hooks ------------------------------------------------------------------------------------


def test_hook_class_follows_the_connection_type(db):
    hook = BaseHook.get_hook("db")
    expected = {"sqlite": SqliteHook, "postgres": PostgresHook, "mysql": MySqlHook}[db]
    assert type(hook) is expected and isinstance(hook, SqlHook)
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert hook.get_first("SELECT COUNT(*) FROM items") == (3,)
    assert hook.get_records(f"SELECT name FROM items WHERE id > {_ph(db)} ORDER BY id",
                            parameters=[1]) == [("pear",), ("fig",)]


def test_run_return_values_follow_airflow(db):
    hook = BaseHook.get_hook("db")
    two = "SELECT 1; SELECT 2"
    assert hook.run("SELECT 1", handler=fetch_one_handler) == (1,)
    assert hook.run(two, split_statements=True, handler=fetch_one_handler) == (2,)
    assert hook.run(two, split_statements=True, return_last=False,
                    handler=fetch_one_handler) == [(1,), (2,)]
    assert hook.run(["SELECT 1"], handler=fetch_one_handler) == [(1,)]
    assert hook.run("SELECT 1") is None
    with pytest.raises(ValueError, match="List of SQL statements is empty"):
        hook.run("  ")


def test_insert_rows_commits_in_chunks_and_replaces(db):
    hook = BaseHook.get_hook("db")
    hook.run("CREATE TABLE loaded (k INTEGER PRIMARY KEY, v VARCHAR(10))")
    hook.insert_rows("loaded", [(i, f"v{i}") for i in range(5)], target_fields=["k", "v"],
                     commit_every=2)
    assert hook.get_first("SELECT COUNT(*) FROM loaded") == (5,)
    if db == "postgres":
        hook.insert_rows("loaded", [(1, "new")], target_fields=["k", "v"], replace=True,
                         replace_index="k")
    else:
        hook.insert_rows("loaded", [(1, "new")], target_fields=["k", "v"], replace=True)
    assert hook.get_first("SELECT v FROM loaded WHERE k = 1") == ("new",)


def test_get_pandas_df_without_pandas_says_what_is_missing(db):
    pytest.importorskip("sqlite3")
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(UpdraftException, match="needs the pandas library"):
            BaseHook.get_hook("db").get_pandas_df("SELECT 1")
    else:
        assert len(BaseHook.get_hook("db").get_pandas_df("SELECT id FROM items")) == 3


def test_split_sql_string_keeps_quoted_semicolons():
    sql = "INSERT INTO t VALUES ('a;b'); -- c;d\nSELECT \"x;y\" FROM t; /* e; */ SELECT $$f;g$$"
    assert split_sql_string(sql) == ["INSERT INTO t VALUES ('a;b');", 'SELECT "x;y" FROM t;',
                                     "SELECT $$f;g$$"]
    assert split_sql_string("SELECT 1;;", strip_semicolon=True) == ["SELECT 1"]


def test_password_is_masked(monkeypatch, caplog):
    from updraft.secrets import redact

    monkeypatch.setenv("UPDRAFT_CONN_SECRETDB", "postgres://u:hunter2-long@127.0.0.1:1/x")
    hook = PostgresHook(postgres_conn_id="secretdb")
    assert "hunter2-long" in hook.get_uri()
    assert redact("pw hunter2-long") == "pw ***"


# -- operators --------------------------------------------------------------------------------


def test_execute_query_with_parameters_lists_and_template_file(db, tmp_path):
    (tmp_path / "by_day.sql").write_text(
        "SELECT name, '{{ ds }}' AS day FROM items WHERE id = {{ params.item }}")
    ph = _ph(db)
    with DAG("sql_exec", start_date=START, schedule=None,
             template_searchpath=str(tmp_path)) as dag:
        SQLExecuteQueryOperator(task_id="params", conn_id="db",
                                sql=f"SELECT id, name, price FROM items WHERE qty >= {ph} "
                                    "ORDER BY id", parameters=[5])
        SQLExecuteQueryOperator(task_id="many", conn_id="db",
                                sql=["UPDATE items SET qty = 1 WHERE id = 3",
                                     "SELECT qty FROM items WHERE id = 3"])
        SQLExecuteQueryOperator(task_id="split", conn_id="db", split_statements=True,
                                return_last=False, sql="SELECT 1; SELECT 'two'")
        SQLExecuteQueryOperator(task_id="file", conn_id="db", sql="by_day.sql",
                                params={"item": 2}, show_return_value_in_logs=True)
        SQLExecuteQueryOperator(task_id="quiet", conn_id="db", do_xcom_push=False,
                                sql="SELECT 1")
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS, _states(run)
    assert _xcom(run, "params") == [[1, "apple", 1.5], [2, "pear", 2.25]]
    assert _xcom(run, "many") == [None, [[1]]]
    assert _xcom(run, "split") == [[[1]], [["two"]]]
    assert _xcom(run, "file") == [["pear", "2024-03-01"]]
    assert "Operator output is:" in _log(run, "file")
    assert _xcom(run, "quiet") is None


def test_historical_operator_names(monkeypatch, postgres_url, mysql_url):
    monkeypatch.setenv("UPDRAFT_CONN_POSTGRES_DEFAULT", _airflow_uri(postgres_url, "postgres"))
    monkeypatch.setenv("UPDRAFT_CONN_MY", _airflow_uri(mysql_url, "mysql"))
    with DAG("sql_legacy", start_date=START, schedule=None) as dag:
        PostgresOperator(task_id="pg", sql="SELECT %(n)s::int + 1", parameters={"n": 41})
        MySqlOperator(task_id="my", mysql_conn_id="my", sql="SELECT %s + 1", parameters=(1,))
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS, _states(run)
    assert _xcom(run, "pg") == [[42]]
    assert _xcom(run, "my") == [[2]]


def test_check_operators_pass(db):
    with DAG("sql_checks_ok", start_date=START, schedule=None) as dag:
        SQLCheckOperator(task_id="check", conn_id="db", sql="SELECT COUNT(*), MIN(id) FROM items")
        SQLValueCheckOperator(task_id="value", conn_id="db", sql="SELECT COUNT(*) FROM items",
                              pass_value=3)
        SQLValueCheckOperator(task_id="tolerance", conn_id="db",
                              sql="SELECT SUM(qty) FROM items", pass_value=14, tolerance=0.1)
        SQLValueCheckOperator(task_id="string", conn_id="db",
                              sql="SELECT name FROM items WHERE id = 1", pass_value="apple")
        SQLThresholdCheckOperator(task_id="threshold", conn_id="db",
                                  sql="SELECT MAX(price) FROM items", min_threshold=1,
                                  max_threshold="SELECT SUM(price) FROM items")
        SQLColumnCheckOperator(task_id="columns", conn_id="db", table="items", column_mapping={
            "id": {"null_check": {"equal_to": 0}, "unique_check": {"equal_to": 0},
                   "distinct_check": {"geq_to": 3}},
            "price": {"min": {"greater_than": 1}, "max": {"leq_to": 4}},
            "qty": {"null_check": {"equal_to": 0, "partition_clause": "id < 3"}},
        })
        SQLTableCheckOperator(task_id="table", conn_id="db", table="items", checks={
            "row_count": {"check_statement": "COUNT(*) = 3"},
            "positive": {"check_statement": "price > 0", "partition_clause": "id < 3"},
        })
    run = dag.test(logical_date=LOGICAL)
    assert set(_states(run).values()) == {TI.SUCCESS}, _states(run)


def test_check_operators_fail_with_airflow_messages(db):
    with DAG("sql_checks_bad", start_date=START, schedule=None) as dag:
        SQLCheckOperator(task_id="check", conn_id="db", sql="SELECT COUNT(*) FROM items "
                                                            "WHERE id > 99")
        SQLCheckOperator(task_id="empty", conn_id="db", sql="SELECT id FROM items WHERE id > 99",
                         retry_on_failure=False)
        SQLValueCheckOperator(task_id="value", conn_id="db", sql="SELECT COUNT(*) FROM items",
                              pass_value=4, tolerance=0.1)
        SQLThresholdCheckOperator(task_id="threshold", conn_id="db",
                                  sql="SELECT MAX(price) FROM items", min_threshold=5,
                                  max_threshold=10)
        SQLColumnCheckOperator(task_id="columns", conn_id="db", table="items", column_mapping={
            "qty": {"null_check": {"equal_to": 0}}})
        SQLTableCheckOperator(task_id="table", conn_id="db", table="items", checks={
            "row_count": {"check_statement": "COUNT(*) = 5"}})
    run = dag.test(logical_date=LOGICAL)
    assert set(_states(run).values()) == {TI.FAILED}, _states(run)
    assert ("Test failed.\nQuery:\nSELECT COUNT(*) FROM items WHERE id > 99\nResults:\n(0,)"
            in _log(run, "check"))
    assert "The following query returned zero rows: SELECT id FROM items" in _log(run, "empty")
    assert "Test failed.\nPass value:4.0\nTolerance:10.0%\n" in _log(run, "value")
    assert 'Threshold Check: "threshold" failed.' in _log(run, "threshold")
    assert re.search(r"Result: 4(\.0+)? is not within thresholds 5.0 and 10.0",
                     _log(run, "threshold"))
    columns = _log(run, "columns")
    assert "The following tests have failed:\nColumn: qty\n\tCheck: null_check," in columns
    assert re.search(r"'result': (1|Decimal\('1'\)), 'success': False", columns)
    assert "The following tests have failed:\n\tCheck: row_count," in _log(run, "table")


def test_column_check_mapping_is_validated():
    with pytest.raises(ValueError, match="Only supply one of greater_than or geq_to"):
        SQLColumnCheckOperator(task_id="c", table="t", conn_id="db", column_mapping={
            "a": {"min": {"greater_than": 1, "geq_to": 1}}})
    with pytest.raises(UpdraftException, match="Invalid column check: average"):
        SQLColumnCheckOperator(task_id="c", table="t", conn_id="db", column_mapping={
            "a": {"average": {"equal_to": 1}}})


def test_branch_sql_operator(db):
    with DAG("sql_branch", start_date=START, schedule=None) as dag:
        branch = BranchSQLOperator(task_id="branch", conn_id="db",
                                   sql="SELECT COUNT(*) > 2 FROM items",
                                   follow_task_ids_if_true="many", follow_task_ids_if_false="few")
        branch >> [EmptyOperator(task_id="many"), EmptyOperator(task_id="few")]
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"branch": TI.SUCCESS, "many": TI.SUCCESS, "few": TI.SKIPPED}


def test_sql_sensor(db, tmp_path):
    with DAG("sql_sensor", start_date=START, schedule=None) as dag:
        SqlSensor(task_id="ready", conn_id="db", sql="SELECT COUNT(*) FROM items",
                  poke_interval=0.01, timeout=5)
        SqlSensor(task_id="custom", conn_id="db", sql=f"SELECT qty FROM items WHERE id = {_ph(db)}",
                  parameters=[2], success=lambda v: v == 5, poke_interval=0.01, timeout=5)
        SqlSensor(task_id="empty", conn_id="db", sql="SELECT id FROM items WHERE id > 99",
                  fail_on_empty=True, poke_interval=0.01, timeout=5)
        SqlSensor(task_id="failure", conn_id="db", sql="SELECT COUNT(*) FROM items",
                  failure=lambda v: v == 3, poke_interval=0.01, timeout=5)
        SqlSensor(task_id="never", conn_id="db", sql="SELECT id FROM items WHERE id > 99",
                  poke_interval=0.05, timeout=0.2)
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"ready": TI.SUCCESS, "custom": TI.SUCCESS, "empty": TI.FAILED,
                            "failure": TI.FAILED, "never": TI.FAILED}
    assert "No rows returned, raising as per fail_on_empty flag" in _log(run, "empty")
    assert "Failure criteria met. self.failure(3) returned True" in _log(run, "failure")
    assert "Sensor has timed out" in _log(run, "never")


def test_json_safe_results():
    assert json_safe([(1, Decimal("2.50"), datetime(2024, 1, 2, tzinfo=UTC).date())]) == \
        [[1, 2.5, "2024-01-02"]]
    assert json_safe((Decimal(10),)) == [10]


def test_interval_check(db):
    hook = BaseHook.get_hook("db")
    hook.run("CREATE TABLE loaded (ds VARCHAR(10), v INTEGER)")
    hook.insert_rows("loaded", [("2024-02-23", 100), ("2024-03-01", 110)],
                     target_fields=["ds", "v"])
    with DAG("sql_interval", start_date=START, schedule=None) as dag:
        SQLIntervalCheckOperator(task_id="ok", conn_id="db", table="loaded",
                                 metrics_thresholds={"SUM(v)": 1.5})
        SQLIntervalCheckOperator(task_id="tight", conn_id="db", table="loaded",
                                 metrics_thresholds={"SUM(v)": 1.05})
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"ok": TI.SUCCESS, "tight": TI.FAILED}
    assert "The following tests have failed:\n SUM(v)" in _log(run, "tight")
