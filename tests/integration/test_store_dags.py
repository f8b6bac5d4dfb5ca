"""DAGs in the store on SQLite, PostgreSQL and MariaDB: write_dag / read_dag versions, the
deserialization cache, pause at creation, DAG code, import errors and inactive DAGs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from updraft import DAG, task
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator
from updraft.runlogic import specs_from_dag
from updraft.serialization import SerializedDAG
from updraft.store import dags as store_dags
from updraft.store.dags import (
    clear_import_error,
    list_import_errors,
    mark_inactive,
    read_dag,
    set_import_error,
    write_dag,
)
from updraft.store.engine import session_scope
from updraft.store.models import DagCode, DagModel, SerializedDagModel
from updraft.store.runs import row_defaults_for

START = datetime(2024, 1, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
FILE = "/dags/pipeline.py"


@pytest.fixture(autouse=True)
def _fresh_cache():
    store_dags.clear_cache()
    yield
    store_dags.clear_cache()


def make_dag(dag_id: str = "pipeline", retries: int = 1, fileloc: str = FILE,
             **dag_kwargs) -> DAG:
    with DAG(dag_id, start_date=START, schedule="@daily", catchup=False, tags=["t"],
             full_filepath=fileloc, default_args={"retries": retries}, **dag_kwargs) as dag:
        @task
        def numbers():
            return [1, 2]

        @task
        def show(x):
            print(x)

        first = EmptyOperator(task_id="first")
        first >> show.expand(x=numbers())
        BashOperator(task_id="bash", bash_command="echo {{ ds }}", pool_slots=2) << first
    return dag


def count(session, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return session.scalar(query)


def test_write_then_read(store_url):
    dag = make_dag()
    with session_scope(store_url) as session:
        assert write_dag(session, dag, file_hash="f1", source_code="# v1", now=NOW) is True
    with session_scope(store_url) as session:
        restored = read_dag(session, "pipeline")
        row = session.get(DagModel, "pipeline")
        code = session.get(DagCode, "f1")
        assert isinstance(restored, SerializedDAG)
        assert specs_from_dag(restored) == specs_from_dag(dag)
        assert row_defaults_for(restored.task_dict) == row_defaults_for(dag.task_dict)
        assert restored.file_hash == "f1" and restored.fileloc == FILE
        assert row.dag_hash == restored.dag_hash
        assert row.is_active and not row.has_import_errors
        assert row.fileloc == FILE and row.tags == ["t"] and row.owners == "updraft"
        assert row.schedule_description == "@daily" and row.catchup is False
        assert row.timetable == {"type": "cron", "expression": "@daily", "timezone": "UTC"}
        assert row.last_parsed_time == NOW
        assert code.source_code == "# v1" and code.fileloc == FILE
        assert read_dag(session, "missing") is None


def test_unchanged_dag_writes_no_new_version(store_url):
    with session_scope(store_url) as session:
        assert write_dag(session, make_dag(), file_hash="f1", now=NOW) is True
    later = NOW + timedelta(minutes=1)
    with session_scope(store_url) as session:
        assert write_dag(session, make_dag(), file_hash="f1", now=later) is False
    with session_scope(store_url) as session:
        assert count(session, SerializedDagModel, dag_id="pipeline") == 1
        assert session.get(DagModel, "pipeline").last_parsed_time == later


def test_changed_dag_adds_a_version_and_old_versions_stay_readable(store_url):
    with session_scope(store_url) as session:
        write_dag(session, make_dag(retries=1), file_hash="f1", source_code="# v1", now=NOW)
    with session_scope(store_url) as session:
        first = read_dag(session, "pipeline")
    with session_scope(store_url) as session:
        assert write_dag(session, make_dag(retries=3), file_hash="f2", source_code="# v2",
                         now=NOW + timedelta(minutes=1)) is True
    with session_scope(store_url) as session:
        latest = read_dag(session, "pipeline")
        old = read_dag(session, "pipeline", dag_hash=first.dag_hash)
        assert latest.dag_hash != first.dag_hash
        assert latest.task_dict["first"].retries == 3
        assert old.task_dict["first"].retries == 1
        assert read_dag(session, "pipeline", dag_hash="0" * 64) is None
        assert count(session, SerializedDagModel, dag_id="pipeline") == 2
        assert count(session, DagCode) == 2
    # Going back to the first version points the DAG at it again, without a third row.
    with session_scope(store_url) as session:
        assert write_dag(session, make_dag(retries=1), file_hash="f1", now=NOW) is True
    with session_scope(store_url) as session:
        assert read_dag(session, "pipeline").dag_hash == first.dag_hash
        assert count(session, SerializedDagModel, dag_id="pipeline") == 2


def test_read_dag_caches_versions_by_hash(store_url):
    with session_scope(store_url) as session:
        write_dag(session, make_dag(), file_hash="f1", now=NOW)
    with session_scope(store_url) as session:
        first = read_dag(session, "pipeline")
        again = read_dag(session, "pipeline")
        assert again is first
        by_hash = read_dag(session, "pipeline", dag_hash=first.dag_hash)
        assert by_hash is first
    store_dags.clear_cache()
    with session_scope(store_url) as session:
        fresh = read_dag(session, "pipeline")
        assert fresh is not first and fresh.dag_hash == first.dag_hash


def test_pause_at_creation_and_pause_kept(store_url, monkeypatch):
    from updraft.config import conf

    with session_scope(store_url) as session:
        write_dag(session, make_dag("default_paused"), file_hash="a", now=NOW)
        write_dag(session, make_dag("never_paused", is_paused_upon_creation=False),
                  file_hash="b", now=NOW)
        write_dag(session, make_dag("always_paused", is_paused_upon_creation=True),
                  file_hash="c", now=NOW)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION", "false")
    conf.reload()
    with session_scope(store_url) as session:
        write_dag(session, make_dag("config_unpaused"), file_hash="d", now=NOW)
    with session_scope(store_url) as session:
        paused = {r.dag_id: r.is_paused for r in session.scalars(select(DagModel))}
    assert paused == {"default_paused": True, "never_paused": False, "always_paused": True,
                      "config_unpaused": False}
    # Someone unpauses the DAG; the next parse (even of a changed DAG) keeps that.
    with session_scope(store_url) as session:
        session.get(DagModel, "default_paused").is_paused = False
    with session_scope(store_url) as session:
        write_dag(session, make_dag("default_paused", retries=5), file_hash="a2", now=NOW)
    with session_scope(store_url) as session:
        assert session.get(DagModel, "default_paused").is_paused is False


def test_write_dag_does_not_commit(store_url):
    with session_scope(store_url) as session:
        write_dag(session, make_dag(), file_hash="f1", source_code="# v1", now=NOW)
        session.rollback()
    with session_scope(store_url) as session:
        assert session.get(DagModel, "pipeline") is None
        assert count(session, SerializedDagModel) == 0


def test_import_errors(store_url):
    with session_scope(store_url) as session:
        write_dag(session, make_dag(), file_hash="f1", now=NOW)
        set_import_error(session, FILE, "Traceback: boom", NOW)
        set_import_error(session, "/dags/other.py", "SyntaxError", NOW)
    with session_scope(store_url) as session:
        errors = list_import_errors(session)
        assert [(e.filename, e.stacktrace) for e in errors] == [
            ("/dags/other.py", "SyntaxError"), (FILE, "Traceback: boom")]
        assert errors[0].timestamp == NOW
        assert session.get(DagModel, "pipeline").has_import_errors is True
    later = NOW + timedelta(hours=1)
    with session_scope(store_url) as session:
        set_import_error(session, FILE, "Traceback: boom again", later)
    with session_scope(store_url) as session:
        errors = {e.filename: e for e in list_import_errors(session)}
        assert errors[FILE].stacktrace == "Traceback: boom again"
        assert errors[FILE].timestamp == later
        assert len(errors) == 2
    with session_scope(store_url) as session:
        clear_import_error(session, FILE)
        clear_import_error(session, "/dags/never-failed.py")
    with session_scope(store_url) as session:
        assert [e.filename for e in list_import_errors(session)] == ["/dags/other.py"]
        assert session.get(DagModel, "pipeline").has_import_errors is False


def test_long_tracebacks_fit(store_url):
    stacktrace = "Traceback (most recent call last):\n" + "  line\n" * 20000
    with session_scope(store_url) as session:
        set_import_error(session, FILE, stacktrace, NOW)
    with session_scope(store_url) as session:
        assert list_import_errors(session)[0].stacktrace == stacktrace


def test_mark_inactive(store_url):
    with session_scope(store_url) as session:
        write_dag(session, make_dag("a", fileloc="/dags/one.py"), file_hash="1", now=NOW)
        write_dag(session, make_dag("b", fileloc="/dags/one.py"), file_hash="1", now=NOW)
        write_dag(session, make_dag("c", fileloc="/dags/two.py"), file_hash="2", now=NOW)
        write_dag(session, make_dag("d", fileloc="/dags/gone.py"), file_hash="3", now=NOW)
        write_dag(session, make_dag("e", fileloc="/dags/broken.py"), file_hash="4", now=NOW)
    with session_scope(store_url) as session:
        gone = mark_inactive(session, {"/dags/one.py": ["a"], "/dags/two.py": {"c"},
                                       "/dags/broken.py": None}, NOW)
        assert gone == ["b", "d"]
    with session_scope(store_url) as session:
        active = {r.dag_id: r.is_active for r in session.scalars(select(DagModel))}
        assert active == {"a": True, "b": False, "c": True, "d": False, "e": True}
        # Inactive DAGs keep their serialized versions for the runs that used them.
        assert read_dag(session, "d") is not None
        assert mark_inactive(session, {"/dags/one.py": ["a"], "/dags/two.py": ["c"],
                                       "/dags/broken.py": None}, NOW) == []
    # A DAG that comes back is active again, and that counts as a change.
    with session_scope(store_url) as session:
        assert write_dag(session, make_dag("b", fileloc="/dags/one.py"), file_hash="1",
                         now=NOW) is True
        assert session.get(DagModel, "b").is_active is True
