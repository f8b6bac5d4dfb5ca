"""HttpHook, HttpOperator and HttpSensor against a local HTTP server the test starts."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from updraft.config import conf
from updraft.dag import DAG
from updraft.exceptions import UpdraftException
from updraft.hooks.base import BaseHook
from updraft.hooks.http import HttpHook
from updraft.operators.http import HttpOperator, SimpleHttpOperator
from updraft.sensors.http import HttpSensor
from updraft.state import TaskInstanceState as TI
from updraft.tasklog import try_log_path

START = datetime(2024, 1, 1, tzinfo=UTC)
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=UTC)


class Api:
    """What the server saw, and how many GETs /ready needs before it answers 200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.ready_after = 3
        self.ready_calls = 0
        self.flaky_failures = 2


def _handler(api: Api):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: dict | str) -> None:
            payload = body if isinstance(body, str) else json.dumps(body)
            data = payload.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = {"method": self.command, "path": parts.path,
                    "query": {k: v[0] for k, v in parse_qs(parts.query).items()},
                    "body": self.rfile.read(length).decode() if length else "",
                    "headers": {k.lower(): v for k, v in self.headers.items()}}
            api.requests.append(seen)
            return seen

        def do_GET(self):
            seen = self._record()
            if seen["path"] == "/ready":
                api.ready_calls += 1
                if api.ready_calls >= api.ready_after:
                    return self._reply(200, {"ready": True})
                return self._reply(404, "not yet")
            if seen["path"] == "/missing":
                return self._reply(400, '{"error": "bad things"}')
            if seen["path"] == "/boom":
                return self._reply(500, "server exploded")
            if seen["path"] == "/flaky":
                if api.flaky_failures > 0:
                    api.flaky_failures -= 1
                    return self._reply(503, "try later")
                return self._reply(200, {"ok": True})
            return self._reply(200, {"path": seen["path"], "query": seen["query"],
                                     "auth": seen["headers"].get("authorization"),
                                     "x-team": seen["headers"].get("x-team"),
                                     "x-call": seen["headers"].get("x-call")})

        def do_POST(self):
            seen = self._record()
            return self._reply(201, {"got": seen["body"],
                                     "type": seen["headers"].get("content-type")})

    return Handler


@pytest.fixture
def api(monkeypatch):
    """A running server; connection ``api`` points at it (with basic auth and a header)."""
    state = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    monkeypatch.setenv("UPDRAFT_CONN_API",
                       f"http://bob:s3cret-pass@127.0.0.1:{port}/?X-Team=data")
    state.port = port
    yield state
    server.shutdown()
    server.server_close()


def _xcom(run, task_id: str):
    return run.get_task_instance(task_id).xcom_pull(task_ids=task_id)


def _states(run) -> dict[str, TI]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def _log(run, task_id: str) -> str:
    return try_log_path(conf.log_folder(), run.dag_id, run.run_id, task_id, -1, 1).read_text()


def test_hook_builds_url_auth_and_headers_from_the_connection(api):
    hook = HttpHook(method="GET", http_conn_id="api")
    response = hook.run("items", data={"page": "2"}, headers={"X-Call": "1"})
    body = response.json()
    assert hook.base_url == f"http://127.0.0.1:{api.port}"
    assert body["path"] == "/items" and body["query"] == {"page": "2"}
    assert body["auth"].startswith("Basic ") and body["x-team"] == "data"
    assert body["x-call"] == "1"
    assert type(BaseHook.get_hook("api")) is HttpHook
    assert hook.test_connection() == (True, "Connection successfully tested")


def test_check_response_raises_status_and_logs_the_body(api, caplog):
    hook = HttpHook(method="GET", http_conn_id="api")
    with pytest.raises(UpdraftException, match=r"^400:Bad Request$"):
        hook.run("missing")
    assert "bad things" in caplog.text
    response = hook.run("missing", extra_options={"check_response": False})
    assert response.status_code == 400


def test_run_with_advanced_retry(api):
    hook = HttpHook(method="GET", http_conn_id="api")
    response = hook.run_with_advanced_retry({"stop": 3, "wait": 0.01}, endpoint="flaky")
    assert response.json() == {"ok": True}
    assert len([r for r in api.requests if r["path"] == "/flaky"]) == 3


def test_http_operator_end_to_end(api):
    with DAG("http_ops", start_date=START, schedule=None) as dag:
        HttpOperator(task_id="get", http_conn_id="api", method="GET", endpoint="day/{{ ds }}",
                     data={"q": "{{ params.q }}"}, headers={"X-Call": "{{ task.task_id }}"},
                     params={"q": "fruit"}, log_response=True)
        SimpleHttpOperator(task_id="post", http_conn_id="api", endpoint="items",
                           data=json.dumps({"name": "apple"}),
                           headers={"Content-Type": "application/json"},
                           response_check=lambda response: response.status_code == 201,
                           response_filter=lambda response, ds: {**response.json(), "ds": ds})
        HttpOperator(task_id="check_fails", http_conn_id="api", method="GET", endpoint="x",
                     response_check=lambda response: False)
        HttpOperator(task_id="server_error", http_conn_id="api", method="GET", endpoint="boom")
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"get": TI.SUCCESS, "post": TI.SUCCESS, "check_fails": TI.FAILED,
                            "server_error": TI.FAILED}
    got = json.loads(_xcom(run, "get"))
    assert got["path"] == "/day/2024-03-01" and got["query"] == {"q": "fruit"}
    assert got["x-call"] == "get"
    assert '"path": "/day/2024-03-01"' in _log(run, "get")
    assert _xcom(run, "post") == {"got": '{"name": "apple"}', "type": "application/json",
                                  "ds": "2024-03-01"}
    assert "Response check returned False." in _log(run, "check_fails")
    error_log = _log(run, "server_error")
    assert "500:Internal Server Error" in error_log and "server exploded" in error_log
    assert "s3cret-pass" not in error_log


def test_http_sensor_waits_for_200(api):
    with DAG("http_sensor", start_date=START, schedule=None) as dag:
        HttpSensor(task_id="wait", http_conn_id="api", endpoint="ready", poke_interval=0.01,
                   timeout=10)
        HttpSensor(task_id="checked", http_conn_id="api", endpoint="anything",
                   response_check=lambda response: "anything" in response.text,
                   poke_interval=0.01, timeout=10)
        HttpSensor(task_id="bad_request", http_conn_id="api", endpoint="missing",
                   poke_interval=0.01, timeout=10)
    run = dag.test(logical_date=LOGICAL)
    assert _states(run) == {"wait": TI.SUCCESS, "checked": TI.SUCCESS, "bad_request": TI.FAILED}
    assert api.ready_calls == 3
    assert "400:Bad Request" in _log(run, "bad_request")


def test_https_connection_uses_https(monkeypatch):
    monkeypatch.setenv("UPDRAFT_CONN_SECURE", "https://api.example.com")
    hook = HttpHook(method="GET", http_conn_id="secure")
    hook.get_conn()
    assert hook.url_from_endpoint("v1/x") == "https://api.example.com/v1/x"
