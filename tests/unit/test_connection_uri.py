"""Connection URIs as Airflow writes them: parsing, get_uri round trips, env definitions."""

from __future__ import annotations

import json

import pytest

from updraft.models.connection import Connection, InvalidConnectionError
from updraft.secrets import redact


def fields(conn: Connection) -> dict:
    return {k: v for k, v in conn.to_dict().items() if k != "conn_id"}


def test_postgres_uri_with_query_params():
    conn = Connection(conn_id="pg", uri="postgres://user:pass@db.example:5432/mydb?sslmode=require&x=1")
    assert fields(conn) == {"conn_type": "postgres", "description": None, "host": "db.example",
                            "login": "user", "password": "pass", "schema": "mydb", "port": 5432,
                            "extra": json.dumps({"sslmode": "require", "x": "1"})}
    assert conn.extra_dejson == {"sslmode": "require", "x": "1"}


def test_postgresql_scheme_and_dashes_are_normalised():
    assert Connection(uri="postgresql://h").conn_type == "postgres"
    assert Connection(uri="google-cloud-platform://").conn_type == "google_cloud_platform"


def test_percent_decoding_of_every_part():
    conn = Connection(uri="mysql://us%40er:p%40ss%3Aw%2Ford@my%2Dhost:3306/sch%20ema")
    assert (conn.login, conn.password, conn.host, conn.schema, conn.port) == (
        "us@er", "p@ss:w/ord", "my-host", "sch ema", 3306)


def test_extra_json_query_param():
    extra = {"nested": {"a": [1, 2]}, "flag": True}
    uri = "http://h/?__extra__=" + __import__("urllib.parse").parse.quote(json.dumps(extra))
    conn = Connection(uri=uri)
    assert conn.extra_dejson == extra


def test_host_with_protocol():
    conn = Connection(uri="http://https%3A%2F%2Fapi.example.com%2Fv1:443")
    assert conn.conn_type == "http"
    assert conn.host == "https://api.example.com/v1"
    conn = Connection(uri="http://https://api.example.com")
    assert conn.host == "https://api.example.com"
    assert Connection(uri=conn.get_uri()).host == "https://api.example.com"


def test_sqlite_uri():
    conn = Connection(uri="sqlite:///tmp/file.db")
    assert conn.conn_type == "sqlite"
    assert conn.schema == "tmp/file.db"
    assert conn.host == ""


@pytest.mark.parametrize("conn", [
    Connection(conn_type="postgres", host="h", login="u@x", password="p:@/?#&=", schema="s/x",
               port=5432, extra={"sslmode": "require"}),
    Connection(conn_type="smtp", host="mail.example.com", login="me", password="pw", port=587),
    Connection(conn_type="https", host="api.example.com", extra={"nested": {"a": 1}}),
    Connection(conn_type="google_cloud", extra={"k": "v"}),
    Connection(conn_type="mysql", password="only-password"),
    Connection(conn_type="http", port=8080),
], ids=["postgres", "smtp", "nested-extra", "underscore-type", "password-only", "port-only"])
def test_get_uri_round_trips(conn):
    def normalised(conn):
        # Like Airflow, a part absent from the URI parses as "" (host, schema) or None.
        out = {k: (v if v != "" else None) for k, v in fields(conn).items()}
        out["extra"] = json.loads(out["extra"]) if out["extra"] else None
        return out

    assert normalised(Connection(uri=conn.get_uri())) == normalised(conn)


def test_uri_and_fields_together_are_refused():
    with pytest.raises(InvalidConnectionError, match="either a URI or individual fields"):
        Connection(uri="http://h", host="other")


@pytest.mark.parametrize("uri", ["just-text", "a://b://c://d", "http://h:notaport"])
def test_invalid_uris(uri):
    with pytest.raises(InvalidConnectionError, match="invalid connection URI"):
        Connection(uri=uri)


def test_invalid_extra_gives_empty_extra_dejson():
    assert Connection(conn_type="http", extra="{not json").extra_dejson == {}


def test_password_and_sensitive_extra_are_masked():
    Connection(conn_type="http", password="pw-123456", extra={"api_key": "k-987654", "region": "eu"})
    assert redact("pw-123456 k-987654 eu") == "*** *** eu"


def test_env_uri_then_airflow_prefix(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MY_DB", "postgres://a:b@airflow-host/db")
    assert Connection.get_connection_from_secrets("my_db").host == "airflow-host"
    monkeypatch.setenv("UPDRAFT_CONN_MY_DB", "postgres://a:b@updraft-host/db")
    conn = Connection.get_connection_from_secrets("my_db")
    assert (conn.conn_id, conn.host, conn.password) == ("my_db", "updraft-host", "b")


def test_env_json_definition(monkeypatch):
    monkeypatch.setenv("UPDRAFT_CONN_API", json.dumps({
        "conn_type": "http", "host": "api.example.com", "port": 443,
        "extra": {"timeout": 5}}))
    conn = Connection.get_connection_from_secrets("api")
    assert (conn.conn_type, conn.host, conn.port, conn.extra_dejson) == (
        "http", "api.example.com", 443, {"timeout": 5})


def test_env_json_with_unknown_field_is_refused(monkeypatch):
    monkeypatch.setenv("UPDRAFT_CONN_API", json.dumps({"conn_type": "http", "hots": "x"}))
    with pytest.raises(InvalidConnectionError, match="unknown field"):
        Connection.get_connection_from_secrets("api")


def test_missing_connection_raises_not_found():
    from updraft.exceptions import UpdraftNotFoundException

    with pytest.raises(UpdraftNotFoundException, match=r"The conn_id `nope` isn't defined"):
        Connection.get_connection_from_secrets("nope")


def test_base_hook_get_connection(monkeypatch):
    from updraft.hooks.base import BaseHook

    monkeypatch.setenv("UPDRAFT_CONN_SMTP_DEFAULT", "smtp://me:pw@mail.example.com:587")
    conn = BaseHook.get_connection("smtp_default")
    assert (conn.host, conn.port, conn.login) == ("mail.example.com", 587, "me")


def test_get_hook_finds_registered_hook_class(monkeypatch):
    from updraft.hooks.base import BaseHook

    class FakeHook(BaseHook):
        conn_name_attr = "fake_conn_id"
        conn_type = "fake_test_type"

        def __init__(self, fake_conn_id="fake_default", timeout=1):
            super().__init__()
            self.fake_conn_id, self.timeout = fake_conn_id, timeout

    monkeypatch.setenv("UPDRAFT_CONN_F", "fake-test-type://h")
    hook = BaseHook.get_hook("f", hook_params={"timeout": 7})
    assert isinstance(hook, FakeHook)
    assert (hook.fake_conn_id, hook.timeout, hook.get_conn_id()) == ("f", 7, "f")
    with pytest.raises(ValueError, match="no hook for connection type 'nothing_like_this'"):
        Connection(conn_id="x", conn_type="nothing_like_this").get_hook()
