"""The store on SQLite, PostgreSQL and MariaDB: migrations, variables, connections, XComs,
pools and the CLI commands that use them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, select, text

from updraft.cli import main
from updraft.config import conf
from updraft.models.connection import (
    Connection,
    add_connection,
    delete_connection,
    get_connection,
    list_connections,
)
from updraft.models.variable import Variable
from updraft.models.xcom import (
    XComSizeError,
    clear_xcoms,
    get_xcom,
    get_xcom_rows,
    set_xcom,
)
from updraft.store import migrate as store_migrate
from updraft.store.engine import get_engine, session_scope
from updraft.store.models import Base, ConnectionModel, VariableModel

HEAD = store_migrate.head_revision()


def cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


# Migrations ------------------------------------------------------------------------------


def test_migration_creates_exactly_the_model_tables(store_url):
    tables = set(inspect(get_engine(store_url)).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert store_migrate.current_revision(store_url) == store_migrate.head_revision()


def test_schema_matches_models(store_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with get_engine(store_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_migrate_twice_keeps_data(store_url):
    Variable.set("kept", "value")
    store_migrate.migrate(store_url)
    store_migrate.migrate(store_url)
    assert Variable.get("kept") == "value"
    with session_scope() as session:
        pools = session.execute(text("SELECT pool, slots FROM slot_pool")).all()
    assert pools == [("default_pool", conf.getint("core", "default_pool_slots"))]


def test_upgrade_from_the_first_revision_keeps_task_instances(tmp_path):
    from alembic import command

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with get_engine(url).connect() as connection:
        command.upgrade(store_migrate.alembic_config(connection), "0001")
        connection.execute(text(
            "INSERT INTO task_instance (dag_id, run_id, task_id, map_index, state, try_number,"
            " max_tries, pool, pool_slots, priority_weight) VALUES ('d', 'r', 't', -1,"
            " 'success', 1, 0, 'default_pool', 1, 1)"))
        connection.commit()
    store_migrate.migrate(url)
    assert store_migrate.current_revision(url) == HEAD
    with get_engine(url).connect() as connection:
        row = connection.execute(text("SELECT state, try_id, worker FROM task_instance")).one()
    assert tuple(row) == ("success", None, None)


def test_0004_drops_the_unused_lease_and_role_tables_and_its_downgrade_restores_them(
        store_url):
    from alembic import command

    def tables() -> set[str]:
        return set(inspect(get_engine(store_url)).get_table_names())

    assert not {"lease", "role"} & tables()
    try:
        with get_engine(store_url).begin() as connection:
            command.downgrade(store_migrate.alembic_config(connection), "0003")
        assert {"lease", "role"} <= tables()
    finally:  # the store is shared by the next tests on this backend
        store_migrate.migrate(store_url)
    assert not {"lease", "role"} & tables()
    assert store_migrate.current_revision(store_url) == HEAD


def test_check_reports_head_and_missing_schema(store_url):
    assert f"at revision {HEAD} (head)" in store_migrate.check(store_url)
    with get_engine(store_url).begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
    try:
        with pytest.raises(store_migrate.StoreNotReadyError, match="has no Updraft schema"):
            store_migrate.check(store_url)
    finally:  # the store is shared by the next tests on this backend
        with get_engine(store_url).begin() as connection:
            connection.execute(text(f"INSERT INTO alembic_version (version_num) VALUES ('{HEAD}')"))


def test_check_unreachable_store_is_precise():
    url = "postgresql://nobody:pw@127.0.0.1:1/none"
    with pytest.raises(store_migrate.StoreNotReadyError,
                       match=r"cannot reach the store at postgresql\+psycopg://nobody:\*\*\*@"):
        store_migrate.check(url)


def test_reset_drops_data_and_extra_tables(store_url):
    Variable.set("gone", "soon")
    with get_engine(store_url).begin() as connection:
        connection.execute(text("CREATE TABLE leftover_table (id INTEGER PRIMARY KEY)"))
    store_migrate.reset(store_url)
    assert "leftover_table" not in inspect(get_engine(store_url)).get_table_names()
    assert Variable.get("gone", default_var=None) is None
    assert store_migrate.current_revision(store_url) == HEAD


def test_two_processes_migrate_one_sqlite_file_at_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    code = "import sys; from updraft.store.migrate import migrate; migrate(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], stderr=subprocess.PIPE)
             for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert store_migrate.current_revision(url) == HEAD
    with get_engine(url).connect() as connection:
        assert connection.execute(text("SELECT COUNT(*) FROM slot_pool")).scalar() == 1


def test_fresh_home_works_without_db_migrate():
    # No store_url: the default SQLite store in the new UPDRAFT_HOME does not exist yet.
    assert store_migrate.current_revision() is None
    Variable.set("first", "1")
    assert Variable.get("first") == "1"
    assert store_migrate.current_revision() == HEAD


# Variables ------------------------------------------------------------------------------


def test_variable_set_get_json_delete(store_url):
    Variable.set("plain", "hello", description="a greeting")
    Variable.set("cfg", {"a": [1, 2], "b": None}, serialize_json=True)
    assert Variable.get("plain") == "hello"
    assert Variable.get("cfg", deserialize_json=True) == {"a": [1, 2], "b": None}
    assert Variable.get_description("plain") == "a greeting"
    Variable.set("plain", "changed")
    assert Variable.get("plain") == "changed"
    assert Variable.get_description("plain") == "a greeting"
    assert Variable.delete("plain") == 1
    assert Variable.delete("plain") == 0
    with pytest.raises(KeyError, match="Variable plain does not exist"):
        Variable.get("plain")
    assert Variable.get("plain", default_var="dflt") == "dflt"
    with pytest.raises(ValueError, match="Variable plain2 is not valid JSON"):
        Variable.set("plain2", "not json")
        Variable.get("plain2", deserialize_json=True)


def test_variable_values_are_encrypted_at_rest(store_url):
    Variable.set("db_password", "clear-text-pw")
    with session_scope() as session:
        row = session.scalars(select(VariableModel).where(VariableModel.key == "db_password")).one()
        assert row.is_encrypted and "clear-text-pw" not in row.val
    from updraft.secrets import redact

    assert redact("pw=clear-text-pw") == "pw=***"


def test_variable_env_override(store_url, monkeypatch):
    Variable.set("region", "stored")
    monkeypatch.setenv("AIRFLOW_VAR_REGION", "from-airflow-env")
    assert Variable.get("region") == "from-airflow-env"
    monkeypatch.setenv("UPDRAFT_VAR_REGION", '{"x": 1}')
    assert Variable.get("region", deserialize_json=True) == {"x": 1}


def test_variable_update_and_setdefault(store_url):
    with pytest.raises(KeyError):
        Variable.update("absent", "x")
    assert Variable.setdefault("absent", "first") == "first"
    assert Variable.setdefault("absent", "second") == "first"
    Variable.update("absent", [1], serialize_json=True)
    assert Variable.get("absent", deserialize_json=True) == [1]


def test_variable_with_caller_session_does_not_commit(store_url):
    with session_scope() as session:
        Variable.set("tx", "inside", session=session)
        assert Variable.get("tx", session=session) == "inside"
        session.rollback()
    assert Variable.get("tx", default_var=None) is None


def test_wrong_fernet_key_gives_precise_error(store_url, monkeypatch):
    Variable.set("locked", "value")
    from updraft.secrets import SecretsError, generate_fernet_key

    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", generate_fernet_key())
    conf.reload()
    with pytest.raises(SecretsError, match="cannot decrypt variable locked: the fernet key does "
                                           "not match"):
        Variable.get("locked")


# Connections ----------------------------------------------------------------------------


def test_connection_encrypted_at_rest_and_round_trip(store_url):
    conn = Connection(conn_id="pg", conn_type="postgres", host="db", login="u",
                      password="very-secret-pw", schema="s", port=5432,
                      extra={"sslmode": "require", "api_key": "extra-secret-key"})
    add_connection(conn)
    with get_engine(store_url).connect() as connection:
        raw = connection.execute(select(ConnectionModel.__table__.c.password,
                                        ConnectionModel.__table__.c.extra)).one()
    assert "very-secret-pw" not in raw.password
    assert "extra-secret-key" not in raw.extra and "sslmode" not in raw.extra
    loaded = get_connection("pg")
    assert loaded == conn
    assert Connection.get_connection_from_secrets("pg").get_password() == "very-secret-pw"
    with pytest.raises(ValueError, match="connection pg already exists"):
        add_connection(conn)
    assert [c.conn_id for c in list_connections()] == ["pg"]
    assert delete_connection("pg") == 1
    assert get_connection("pg") is None


# XComs ----------------------------------------------------------------------------------

ALL_TYPES = {
    "none": None, "bool": True, "int": 7, "float": 1.5, "str": "héllo", "list": [1, [2]],
    "aware": dt.datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "naive": dt.datetime(2024, 5, 1, 12, 30),
    "date": dt.date(2024, 2, 29), "delta": dt.timedelta(days=1, seconds=2, microseconds=3),
    "tuple": (1, ("a", 2)), "set": {1, 2, 3}, "frozen": frozenset({"x"}),
    "decimal": Decimal("10.000000000000000001"), "looks_tagged": {"__type__": "tuple", "x": 1},
}


def test_xcom_round_trip_of_every_supported_type(store_url):
    keys = {"dag_id": "d", "run_id": "r1", "task_id": "t"}
    with session_scope() as session:
        set_xcom(session, **keys, map_index=-1, key="return_value", value=ALL_TYPES)
        for name, value in ALL_TYPES.items():
            set_xcom(session, **keys, map_index=0, key=name, value=value)
    with session_scope() as session:
        assert get_xcom(session, **keys, map_index=-1, key="return_value") == ALL_TYPES
        for name, value in ALL_TYPES.items():
            got = get_xcom(session, **keys, map_index=0, key=name)
            assert got == value and type(got) is type(value), name
        assert get_xcom(session, **keys, map_index=5, key="missing") is None


def test_xcom_upsert_and_filters(store_url):
    with session_scope() as session:
        for task_id, index in [("a", -1), ("b", 0), ("b", 1)]:
            set_xcom(session, dag_id="d", run_id="r", task_id=task_id, map_index=index,
                     key="return_value", value=f"{task_id}{index}")
        set_xcom(session, dag_id="d", run_id="r", task_id="a", map_index=-1,
                 key="return_value", value="replaced")
        set_xcom(session, dag_id="d", run_id="other", task_id="a", map_index=-1,
                 key="return_value", value="other run")
    with session_scope() as session:
        rows = get_xcom_rows(session, dag_id="d", run_id="r")
        assert [(r.task_id, r.map_index, r.value) for r in rows] == [
            ("a", -1, "replaced"), ("b", 0, "b0"), ("b", 1, "b1")]
        assert rows[0].timestamp.tzinfo is not None
        assert [r.value for r in get_xcom_rows(session, dag_id="d", run_id="r", task_ids="b",
                                               map_indexes=[1])] == ["b1"]
        assert get_xcom_rows(session, dag_id="d", run_id="r", key="nope") == []
        assert clear_xcoms(session, dag_id="d", run_id="r", task_id="b", map_index=0) == 1
        assert clear_xcoms(session, dag_id="d", run_id="r", task_id="b") == 1
        assert [r.task_id for r in get_xcom_rows(session, dag_id="d", run_id="r")] == ["a"]


def test_xcom_precise_errors(store_url, monkeypatch):
    with session_scope() as session:
        with pytest.raises(TypeError, match=r"XCom value of task extract is not JSON-serializable: "
                                            r"bytes at value\['rows'\]\[1\]; decode bytes"):
            set_xcom(session, dag_id="d", run_id="r", task_id="extract", key="return_value",
                     value={"rows": [1, b"raw"]})
        with pytest.raises(TypeError, match=r"task load \(key 'obj'\) is not JSON-serializable: "
                                            r"object; return something JSON can store"):
            set_xcom(session, dag_id="d", run_id="r", task_id="load", key="obj", value=object())
        monkeypatch.setenv("UPDRAFT__CORE__XCOM_MAX_SIZE", "100")
        conf.reload()
        with pytest.raises(XComSizeError, match=r"is 2\d\d bytes as JSON, more than \[core\] "
                                                r"xcom_max_size = 100 bytes"):
            set_xcom(session, dag_id="d", run_id="r", task_id="big", key="return_value",
                     value="x" * 200)
        assert get_xcom_rows(session, dag_id="d", run_id="r") == []


# CLI ------------------------------------------------------------------------------------


def test_cli_variables(store_url, tmp_path):
    cli("variables", "set", "greeting", "hi", "--description", "hello")
    cli("variables", "set", "cfg", '{"a": 1}', "-j")
    cli("variables", "set", "my_secret", "do-not-print")
    assert cli("variables", "get", "greeting").output == "hi\n"
    assert json.loads(cli("variables", "get", "cfg", "-j").output) == {"a": 1}
    missing = cli("variables", "get", "nope", ok=False)
    assert missing.exit_code == 1 and "Variable nope does not exist" in missing.output
    assert cli("variables", "get", "nope", "--default", "fallback").output == "fallback\n"
    listed = json.loads(cli("variables", "list", "-o", "json", "--show-values").output)
    assert {r["key"]: r["val"] for r in listed} == {"cfg": '{\n  "a": 1\n}', "greeting": "hi",
                                                    "my_secret": "***"}
    export = tmp_path / "vars.json"
    cli("variables", "export", str(export))
    assert json.loads(export.read_text())["greeting"] == {"value": "hi", "description": "hello"}
    cli("variables", "delete", "greeting")
    assert cli("variables", "delete", "greeting", ok=False).exit_code == 1
    cli("variables", "import", str(export))
    assert Variable.get("greeting") == "hi"
    assert Variable.get("cfg", deserialize_json=True) == {"a": 1}
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    result = cli("variables", "import", str(bad), ok=False)
    assert result.exit_code == 1 and "invalid JSON" in result.output


def test_cli_connections(store_url, tmp_path):
    cli("connections", "add", "pg", "--conn-uri", "postgres://u:cli-secret-pw@h:5432/db")
    cli("connections", "add", "api", "--conn-type", "http", "--conn-host", "api.example.com",
        "--conn-password", "another-secret", "--conn-extra", '{"timeout": 3}')
    listing = cli("connections", "list").output
    assert "cli-secret-pw" not in listing and "another-secret" not in listing
    assert "***" in listing and "api.example.com" in listing
    rows = json.loads(cli("connections", "get", "api", "-o", "json").output)
    assert rows[0]["password"] == "***" and json.loads(rows[0]["extra"]) == {"timeout": 3}
    dup = cli("connections", "add", "pg", "--conn-uri", "postgres://h", ok=False)
    assert dup.exit_code == 1 and "connection pg already exists" in dup.output
    mixed = cli("connections", "add", "x", "--conn-uri", "http://h", "--conn-host", "y", ok=False)
    assert mixed.exit_code != 0 and "cannot be combined" in mixed.output
    bad_extra = cli("connections", "add", "x", "--conn-type", "http", "--conn-extra", "[", ok=False)
    assert bad_extra.exit_code != 0 and "invalid JSON" in bad_extra.output
    export = tmp_path / "conns.json"
    cli("connections", "export", str(export))
    assert json.loads(export.read_text())["pg"]["password"] == "cli-secret-pw"
    cli("connections", "delete", "pg")
    assert cli("connections", "get", "pg", ok=False).exit_code == 1
    assert "1 connection(s) imported from" in cli("connections", "import", str(export)).output
    assert get_connection("pg").password == "cli-secret-pw"


def test_cli_pools(store_url):
    cli("pools", "set", "etl", "4", "ETL jobs")
    rows = json.loads(cli("pools", "list", "-o", "json").output)
    assert rows == [{"pool": "default_pool", "slots": 128, "description": "Default pool",
                     "include_deferred": False},
                    {"pool": "etl", "slots": 4, "description": "ETL jobs",
                     "include_deferred": False}]
    cli("pools", "set", "etl", "4", "ETL jobs", "--include-deferred")
    assert json.loads(cli("pools", "get", "etl", "-o", "json").output)[0][
        "include_deferred"] is True
    cli("pools", "set", "etl", "6", "ETL jobs")
    assert json.loads(cli("pools", "get", "etl", "-o", "json").output)[0]["slots"] == 6
    refused = cli("pools", "delete", "default_pool", ok=False)
    assert refused.exit_code == 1 and "default_pool cannot be deleted" in refused.output
    assert cli("pools", "set", "neg", "-1", "x", ok=False).exit_code != 0
    cli("pools", "delete", "etl")
    assert cli("pools", "get", "etl", ok=False).exit_code == 1


def test_cli_db_commands(store_url):
    assert f"already at revision {HEAD}" in cli("db", "migrate").output
    assert f"at revision {HEAD} (head)" in cli("db", "check").output
    refused = cli("db", "reset", ok=False)
    assert refused.exit_code == 1 and "--yes" in refused.output
    Variable.set("wiped", "x")
    cli("db", "reset", "--yes")
    assert Variable.get("wiped", default_var=None) is None
    assert store_migrate.current_revision(store_url) == HEAD


def test_cli_db_check_unreachable(monkeypatch):
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", "mysql://root:pw@127.0.0.1:1/none")
    conf.reload()
    result = cli("db", "check", ok=False)
    assert result.exit_code == 1
    assert "cannot reach the store at mysql+pymysql://root:***@127.0.0.1:1/none" in result.output


def test_cli_config_masks_secrets(monkeypatch):
    monkeypatch.setenv("UPDRAFT__SMTP__PASSWORD", "smtp-secret")
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", "postgresql://u:dbpw@h/db")
    conf.reload()
    listing = cli("config", "list").output
    assert "smtp-secret" not in listing and "dbpw" not in listing
    assert "postgresql://u:***@h/db" in listing
    assert cli("config", "get-value", "core", "parallelism").output == "32\n"
    unknown = cli("config", "get-value", "core", "nope", ok=False)
    assert unknown.exit_code == 1 and "unknown configuration option [core] nope" in unknown.output


def test_every_command_has_help():
    for group in ("db", "variables", "connections", "pools", "config"):
        result = cli(group, "--help")
        assert "Usage:" in result.output
        for line in result.output.split("Commands:")[1].splitlines():
            if line.strip():
                assert "Usage:" in cli(group, line.split()[0], "--help").output


def test_cli_rotate_fernet_key(store_url, monkeypatch):
    from updraft.secrets import generate_fernet_key

    old, new = generate_fernet_key(), generate_fernet_key()
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", old)
    conf.reload()
    Variable.set("v", "value-1")
    add_connection(Connection(conn_id="c", conn_type="http", password="pw-1", extra={"a": 1}))
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", f"{new},{old}")
    conf.reload()
    assert "Re-encrypted 1 variable(s) and 1 connection(s)" in cli("db", "rotate-fernet-key").output
    monkeypatch.setenv("UPDRAFT__CORE__FERNET_KEY", new)
    conf.reload()
    assert Variable.get("v") == "value-1"
    conn = get_connection("c")
    assert (conn.password, conn.extra_dejson) == ("pw-1", {"a": 1})
