"""What the web tests share: a real Flask app on a real store, one user and token per role, a
real scheduler serving the bus commands, a live waitress server, and small request helpers.

Import the fixtures into a test module (``from web_helpers import app, tokens, web_env``) to
use them there.
"""

from __future__ import annotations

import base64
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import scheduler_helpers as h

ROLES = ("Viewer", "User", "Op", "Admin")
PASSWORD = "correct horse battery"


@pytest.fixture
def web_env(updraft_home, tmp_path, monkeypatch, _sqlite_template, nats_url):
    """Fast scheduler settings, a DAGs folder, a SQLite store, NATS with a fresh prefix."""
    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template, nats_url,
                             "w")
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()


@pytest.fixture
def app(web_env):
    from web.app import create_app
    from web.auth.users import login_limiter

    login_limiter.reset()
    application = create_app({"TESTING": True, "SECRET_KEY": "test-secret",
                              "UPDRAFT_COMMAND_TIMEOUT": 30.0})
    yield application
    login_limiter.reset()


@pytest.fixture
def tokens(app) -> dict[str, str]:
    """One user per role (username = role in lower case) and an API token for each."""
    from updraft.store.engine import session_scope
    from web.auth.users import create_token, create_user

    result = {}
    with session_scope() as session:
        for role in ROLES:
            create_user(session, role.lower(), PASSWORD, role, email=f"{role}@example.com")
            result[role] = create_token(session, role.lower(), name="tests")
    return result


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(username: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@contextmanager
def running_scheduler(dags, executor: str = "sequential"):
    """A Scheduler serving commands over NATS, in a thread (``executor``: sequential runs
    tries in the scheduler's process, local in a process each)."""
    from bus.node import SchedulerBus
    from scheduler.core import Scheduler

    scheduler = Scheduler(h.make_executor(executor), dags_folder=str(dags))
    node = SchedulerBus(scheduler)
    assert node.start(wait=10), "the scheduler could not connect to NATS"
    failure: list[BaseException] = []

    def body():
        try:
            scheduler.run()
        except BaseException as exc:  # noqa: BLE001  (reported below)
            failure.append(exc)

    thread = threading.Thread(target=body, name="web-test-scheduler", daemon=True)
    thread.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(timeout=60)
        node.stop()
        assert not thread.is_alive(), "the scheduler did not stop within 60s"
    if failure:
        raise failure[0]


def trigger_and_wait(client, token: str, dag_id: str, run_id: str,
                     conf: dict | None = None) -> dict:
    response = client.post(f"/api/v1/dags/{dag_id}/dagRuns", headers=bearer(token),
                           json={"dag_run_id": run_id, "conf": conf or {}})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert h.wait_run(dag_id, run_id) == "success", h.states(dag_id, run_id)
    return response.get_json()


def store_dag_without_scheduler(dags) -> None:
    """Parse the DAG files and store them, as the DAG processor would."""
    from updraft.dagbag import DagBag
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow

    bag = DagBag(str(dags))
    with session_scope() as session:
        for dag in bag.dags.values():
            write_dag(session, dag, file_hash="f" * 64, source_code="# source", now=utcnow())


def audit_events(event: str | None = None) -> list:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import LogEvent

    with session_scope() as session:
        query = select(LogEvent).order_by(LogEvent.id)
        if event:
            query = query.where(LogEvent.event == event)
        return list(session.scalars(query))


def login(client, username: str, password: str = PASSWORD, next_url: str = "/api/v1/version"):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": token, "next": next_url})


def csrf_of(client) -> str:
    with client.session_transaction() as session:
        return session["csrf_token"]


def api_routes(app) -> set[tuple[str, str]]:
    """(method, path with {params}) of every /api/v1 route of ``app``."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method, path))
    return routes


@dataclass
class LiveServer:
    """``app`` served by waitress on 127.0.0.1 (a real HTTP server, as in production)."""

    url: str
    server: object

    def close(self) -> None:
        self.server.close()


@contextmanager
def live_server(app, threads: int = 8):
    """Serve ``app`` with waitress on a free 127.0.0.1 port for the block."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads, ident="updraft-test")
    thread = threading.Thread(target=server.run, name="test-web", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.effective_port}", server)
    finally:
        server.close()
        thread.join(10)
