"""The web node's server side against a real store, a real NATS server and a real scheduler:
login and sessions, CSRF, roles (every API endpoint tried with every role), bearer tokens and
Basic auth, pagination, problem+json errors, the OpenAPI document (complete: the fuzzing is
``test_api_schemathesis.py``), metrics, health and ``updraft users``.

Changes the web asks for go to a Scheduler running in a thread with its SchedulerBus, so a
200 means the scheduler did it. Checks read the store (the truth) or the API's answers.
"""

from __future__ import annotations

import html
import json
import re
import time
import urllib.request
from datetime import UTC

import pytest
import scheduler_helpers as h
import web_helpers
from web_helpers import (
    PASSWORD,
    ROLES,
    audit_events,
    basic,
    bearer,
    csrf_of,
    login,
    running_scheduler,
)

pytestmark = pytest.mark.timeout(300)

# The shared fixtures (web_helpers): the web_env, the app and a token per role.
web_env, app, tokens = web_helpers.web_env, web_helpers.app, web_helpers.tokens

DAG_ID = "web_dag"
WEB_DAG = '''
from datetime import datetime
from updraft import DAG, Asset, Param, task
from updraft.operators.empty import EmptyOperator

with DAG("web_dag", schedule=None, start_date=datetime(2024, 1, 1), tags=["web", "test"],
         params={"size": Param(3, type="integer", minimum=1)}) as dag:
    @task
    def produce():
        print("hello from produce")
        return {"n": 1}

    produce() >> EmptyOperator(task_id="end", outlets=[Asset("web_asset")])
'''


def trigger_and_wait(client, token: str, run_id: str, conf: dict | None = None) -> dict:
    return web_helpers.trigger_and_wait(client, token, DAG_ID, run_id, conf)


# -- auth: sessions, CSRF, tokens, Basic -----------------------------------------------------

def test_login_logout_and_failed_login_is_audited(app, tokens):
    client = app.test_client()
    assert client.get("/api/v1/version").status_code == 401
    wrong = login(client, "viewer", "not the password")
    assert wrong.status_code == 401
    assert "Wrong username or password" in wrong.get_data(as_text=True)
    assert [e.owner for e in audit_events("login_failed")] == ["viewer"]

    response = login(client, "viewer")
    assert response.status_code == 302 and response.headers["Location"] == "/api/v1/version"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Expires=" in cookie
    assert client.get("/api/v1/version").status_code == 200
    assert audit_events("login")[-1].owner == "viewer"

    assert client.post("/logout", data={"csrf_token": csrf_of(client)}).status_code == 302
    assert client.get("/api/v1/version").status_code == 401


def test_login_redirect_stays_on_this_site(app, tokens):
    client = app.test_client()
    response = login(client, "viewer", next_url="https://evil.example/")
    assert response.headers["Location"] == "/"


def test_session_expires(web_env, tokens):
    from datetime import timedelta

    from web.app import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "s",
                      "PERMANENT_SESSION_LIFETIME": timedelta(seconds=1)})
    client = app.test_client()
    login(client, "viewer")
    assert client.get("/api/v1/version").status_code == 200
    time.sleep(2.2)
    assert client.get("/api/v1/version").status_code == 401


def test_session_ends_when_the_password_changes(app, tokens):
    from updraft.store.engine import session_scope
    from web.auth.users import set_password

    client = app.test_client()
    login(client, "op")
    assert client.get("/api/v1/variables").status_code == 200
    with session_scope() as session:
        set_password(session, "op", "another password")
    assert client.get("/api/v1/variables").status_code == 401


def test_csrf_refused_on_forms_and_session_api_calls(app, tokens):
    client = app.test_client()
    client.get("/login")
    refused = client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert refused.status_code == 400
    assert "CSRF token is missing or invalid" in refused.get_data(as_text=True)
    assert audit_events("access_denied")[-1].extra.count("CSRF") == 1

    login(client, "admin")
    no_token = client.post("/api/v1/variables", json={"key": "k", "value": "v"})
    assert no_token.status_code == 400
    assert no_token.mimetype == "application/problem+json"
    bad = client.post("/api/v1/variables", json={"key": "k", "value": "v"},
                      headers={"X-CSRF-Token": "forged"})
    assert bad.status_code == 400
    good = client.post("/api/v1/variables", json={"key": "k", "value": "v"},
                       headers={"X-CSRF-Token": csrf_of(client)})
    assert good.status_code == 201, good.get_data(as_text=True)
    # a form field works too, and bearer calls need no token (browsers never add one)
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert app.test_client().post("/api/v1/variables", json={"key": "k2", "value": "v"},
                                  headers=bearer(tokens["Op"])).status_code == 201


def test_unauthenticated_bad_and_expired_credentials(app, tokens):
    from datetime import timedelta

    from sqlalchemy import update

    from updraft.store.engine import session_scope
    from updraft.store.models import ApiToken, UserModel, utcnow

    client = app.test_client()
    anonymous = client.get("/api/v1/dags")
    assert anonymous.status_code == 401
    assert anonymous.mimetype == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/dags", headers=bearer("updraft_nope")).status_code == 401
    assert client.get("/api/v1/dags", headers=bearer(tokens["Viewer"])).status_code == 200
    assert client.get("/api/v1/dags", headers=basic("viewer", PASSWORD)).status_code == 200
    assert client.get("/api/v1/dags", headers=basic("viewer", "wrong")).status_code == 401
    assert client.get("/api/v1/dags", headers={"Authorization": "Basic !!!"}).status_code == 401
    assert any(e.owner == "viewer" and "basic" in (e.extra or "")
               for e in audit_events("login_failed"))
    with session_scope() as session:
        session.execute(update(ApiToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/api/v1/dags", headers=bearer(tokens["Viewer"])).status_code == 401
    with session_scope() as session:
        session.execute(update(ApiToken).values(expires_at=None))
        session.execute(update(UserModel).where(UserModel.username == "viewer")
                        .values(active=False))
    assert client.get("/api/v1/dags", headers=bearer(tokens["Viewer"])).status_code == 401


def test_tokens_are_stored_as_hashes_and_passwords_with_scrypt(app, tokens):
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import ApiToken, UserModel

    with session_scope() as session:
        hashes = set(session.scalars(select(ApiToken.token_hash)))
        users = list(session.scalars(select(UserModel)))
    assert not hashes & set(tokens.values())
    assert all(u.password_hash.startswith("scrypt:") for u in users)


def test_login_rate_limit_per_address(app, tokens):
    from web.auth.users import login_limiter

    client = app.test_client()
    for _ in range(login_limiter.max_failures):
        assert login(client, "admin", "wrong").status_code == 401
    limited = login(client, "admin")  # even the right password: the address is blocked
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert audit_events("login_refused")


def test_secret_key_is_generated_once_with_mode_0600(web_env, updraft_home):
    from web.app import create_app

    first = create_app().config["SECRET_KEY"]
    path = updraft_home / "web_secret.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert create_app().config["SECRET_KEY"] == first


# -- the permission matrix -------------------------------------------------------------------

READ, DAG_PAUSE, RUN_TRIGGER, RUN_CLEAR, RUN_MARK, RUN_DELETE, DAG_DELETE = (
    "read", "dag.pause", "run.trigger", "run.clear", "run.mark", "run.delete", "dag.delete")
TI = f"/api/v1/dags/{DAG_ID}/dagRuns/base/taskInstances"


def matrix(role: str, bundle: str = "0" * 64) -> list[tuple[str, str, str, dict | None, int]]:
    """(permission, method, path, json body, status when allowed) for ``role``'s turn;
    ``bundle``: the version the base run was pinned to."""
    r = role.lower()
    dag = f"/api/v1/dags/{DAG_ID}"
    return [
        (READ, "GET", "/api/v1/dags", None, 200),
        (READ, "GET", dag, None, 200),
        (READ, "GET", f"{dag}/details", None, 200),
        (READ, "GET", f"{dag}/tasks", None, 200),
        (READ, "GET", f"{dag}/tasks/produce", None, 200),
        (READ, "GET", f"{dag}/source", None, 200),
        # the DAGs' code: whoever reads DAGs reads it (Airflow's Viewer reads DAG code), with
        # the secrets the store knows masked
        (READ, "GET", f"/api/v1/dagBundles/{bundle}", None, 200),
        (READ, "GET", f"/api/v1/dagBundles/{bundle}/files/{DAG_ID}.py", None, 200),
        (READ, "GET", "/api/v1/dagTags", None, 200),
        (READ, "GET", f"{dag}/dagRuns", None, 200),
        (READ, "GET", "/api/v1/dags/~/dagRuns", None, 200),
        (READ, "GET", f"{dag}/dagRuns/base", None, 200),
        (READ, "GET", TI, None, 200),
        (READ, "GET", f"{TI}/produce", None, 200),
        (READ, "GET", f"{TI}/produce/tries", None, 200),
        (READ, "GET", f"{TI}/produce/events", None, 200),
        (READ, "GET", f"{TI}/produce/dependencies", None, 200),
        (READ, "GET", f"{TI}/produce/logs", None, 200),
        (READ, "GET", f"{TI}/produce/xcomEntries", None, 200),
        (READ, "GET", f"{TI}/produce/xcomEntries/return_value", None, 200),
        (READ, "GET", "/api/v1/pools", None, 200),
        (READ, "GET", "/api/v1/pools/default_pool", None, 200),
        (READ, "GET", "/api/v1/importErrors", None, 200),
        (READ, "GET", "/api/v1/eventLogs", None, 200),
        (READ, "GET", "/api/v1/version", None, 200),
        (READ, "GET", "/api/v1/assets", None, 200),
        (READ, "GET", "/api/v1/assets/web_asset", None, 200),
        (READ, "GET", "/api/v1/assets/events", None, 200),
        (READ, "GET", f"{dag}/dagRuns/base/upstreamAssetEvents", None, 200),
        (RUN_TRIGGER, "POST", "/api/v1/assets/events",
         {"asset_name": "web_asset", "extra": {"role": r}}, 201),
        (DAG_PAUSE, "PATCH", dag, {"is_paused": False}, 200),
        (READ, "GET", f"{dag}/backfill", None, 200),
        (RUN_TRIGGER, "POST", f"{dag}/backfill",
         {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-03T00:00:00Z",
          "dry_run": True}, 200),
        # a DAG that does not exist: the permission is checked first, then 404
        (DAG_DELETE, "DELETE", f"/api/v1/dags/del_dag_{r}", None, 404),
        (RUN_TRIGGER, "POST", f"{dag}/dagRuns", {"conf": {"size": 2}}, 200),
        (RUN_CLEAR, "POST", f"{dag}/dagRuns/base/clear", {"dry_run": True}, 200),
        (RUN_CLEAR, "POST", f"{dag}/clearTaskInstances",
         {"dry_run": True, "dag_run_id": "base", "task_ids": ["end"]}, 200),
        (RUN_MARK, "PATCH", f"{TI}/end", {"new_state": "success"}, 200),
        (RUN_MARK, "POST", f"{TI}/end", {"new_state": "success"}, 200),
        (RUN_MARK, "PATCH", f"{dag}/dagRuns/base", {"state": "success"}, 200),
        (RUN_MARK, "PATCH", f"{dag}/dagRuns/base", {"note": f"run note by {r}"}, 200),
        (RUN_MARK, "PATCH", f"{TI}/end", {"note": f"task note by {r}"}, 200),
        (RUN_DELETE, "DELETE", f"{dag}/dagRuns/del_{r}", None, 204),
        ("variable.read", "GET", "/api/v1/variables", None, 200),
        ("variable.read", "GET", "/api/v1/variables/shared", None, 200),
        ("variable.edit", "POST", "/api/v1/variables", {"key": f"v_{r}", "value": "1"}, 201),
        ("variable.edit", "PATCH", "/api/v1/variables/shared", {"value": r}, 200),
        ("variable.edit", "DELETE", f"/api/v1/variables/del_{r}", None, 204),
        ("connection.read", "GET", "/api/v1/connections", None, 200),
        ("connection.read", "GET", "/api/v1/connections/shared", None, 200),
        ("connection.edit", "POST", "/api/v1/connections",
         {"conn_id": f"c_{r}", "conn_type": "http", "password": "pw"}, 201),
        ("connection.edit", "PATCH", "/api/v1/connections/shared", {"host": r}, 200),
        ("connection.edit", "DELETE", f"/api/v1/connections/del_{r}", None, 204),
        ("pool.edit", "POST", "/api/v1/pools", {"name": f"p_{r}", "slots": 2}, 201),
        ("pool.edit", "PATCH", "/api/v1/pools/shared", {"slots": 4}, 200),
        ("pool.edit", "DELETE", f"/api/v1/pools/del_{r}", None, 204),
        ("user.read", "GET", "/api/v1/users", None, 200),
        ("user.read", "GET", "/api/v1/users/viewer", None, 200),
        ("user.edit", "POST", "/api/v1/users",
         {"username": f"u_{r}", "password": "password123", "role": "Viewer"}, 201),
        ("user.edit", "PATCH", "/api/v1/users/target", {"email": f"{r}@example.com"}, 200),
        ("user.edit", "DELETE", f"/api/v1/users/del_{r}", None, 204),
    ]


def _seed_matrix_targets(client, admin: str) -> None:
    from updraft.store.engine import session_scope
    from web.auth.users import create_user

    for path, body in [("/api/v1/variables", {"key": "shared", "value": "x"}),
                       ("/api/v1/connections", {"conn_id": "shared", "conn_type": "http"}),
                       ("/api/v1/pools", {"name": "shared", "slots": 1})]:
        assert client.post(path, json=body, headers=bearer(admin)).status_code == 201
    with session_scope() as session:
        create_user(session, "target", PASSWORD, "Viewer")
    for role in ROLES:
        r = role.lower()
        for path, body in [("/api/v1/variables", {"key": f"del_{r}", "value": "x"}),
                           ("/api/v1/connections", {"conn_id": f"del_{r}", "conn_type": "http"}),
                           ("/api/v1/pools", {"name": f"del_{r}", "slots": 1})]:
            assert client.post(path, json=body, headers=bearer(admin)).status_code == 201
        with session_scope() as session:
            create_user(session, f"del_{r}", PASSWORD, "Viewer")


def test_every_endpoint_with_every_role(app, tokens, web_env):
    from web.auth.permissions import ROLE_PERMISSIONS

    h.write_dag(web_env, DAG_ID, WEB_DAG)
    client = app.test_client()
    admin = tokens["Admin"]
    with running_scheduler(web_env):
        h.wait_parsed(DAG_ID)
        trigger_and_wait(client, admin, "base")
        bundle = client.get(f"/api/v1/dags/{DAG_ID}/dagRuns/base",
                            headers=bearer(admin)).get_json()["bundle_version"]
        assert bundle, "the base run is pinned to no DAG bundle version"
        for role in ROLES:
            trigger_and_wait(client, admin, f"del_{role.lower()}")
        _seed_matrix_targets(client, admin)
        denials_before = len(audit_events("access_denied"))
        denied = 0
        # every route of the API must appear in the matrix
        covered = {(m, re.sub(r"/(base|del_\w+|viewer|target|shared|default_pool|produce|end|"
                               r"return_value|web_dag|web_dag\.py|web_asset|[0-9a-f]{64}|~)"
                               r"(?=/|$)", "/{}", p))
                   for _, m, p, _, _ in matrix("x", bundle)}
        for role in ROLES:
            for permission, method, path, body, ok_status in matrix(role, bundle):
                response = client.open(path, method=method, json=body,
                                       headers=bearer(tokens[role]))
                allowed = permission in ROLE_PERMISSIONS[role]
                text = response.get_data(as_text=True)
                if allowed:
                    assert response.status_code == ok_status, (role, method, path, text)
                else:
                    assert response.status_code == 403, (role, method, path, text)
                    assert response.mimetype == "application/problem+json"
                    problem = response.get_json()
                    assert problem["status"] == 403 and role in problem["detail"]
                    denied += 1
                anonymous = client.open(path, method=method, json=body)
                assert anonymous.status_code == 401, (method, path)
        assert len(audit_events("access_denied")) - denials_before == denied
    assert denied > 0
    api_routes = web_helpers.api_routes(app)
    public = {("GET", "/api/v1/health"), ("GET", "/api/v1/openapi.json")}
    normalised = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in api_routes}
    missing = normalised - public - covered - {("GET", "/api/v1/importErrors/{}")}
    assert not missing, f"API routes not in the permission matrix: {sorted(missing)}"


# -- behaviour of the API --------------------------------------------------------------------

def test_trigger_run_logs_xcoms_and_state_changes_over_the_bus(app, tokens, web_env):
    h.write_dag(web_env, DAG_ID, WEB_DAG)
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    with running_scheduler(web_env):
        h.wait_parsed(DAG_ID)
        bad = client.post(f"/api/v1/dags/{DAG_ID}/dagRuns", headers=admin,
                          json={"conf": {"size": 0}})
        assert bad.status_code == 400 and "size" in bad.get_json()["detail"]
        unknown = client.post(f"/api/v1/dags/{DAG_ID}/dagRuns", headers=admin,
                              json={"conf": {}, "colour": "red"})
        assert unknown.status_code == 400 and "colour" in unknown.get_json()["detail"]
        run = trigger_and_wait(client, tokens["User"], "r1", {"size": 5})
        assert run["dag_run_id"] == "r1" and run["conf"] == {"size": 5}
        again = client.post(f"/api/v1/dags/{DAG_ID}/dagRuns", headers=admin,
                            json={"dag_run_id": "r1"})
        assert again.status_code == 409, again.get_data(as_text=True)

        base = f"/api/v1/dags/{DAG_ID}/dagRuns/r1/taskInstances"
        tis = client.get(base, headers=admin).get_json()
        assert {t["task_id"]: t["state"] for t in tis["task_instances"]} == {
            "produce": "success", "end": "success"}
        log = client.get(f"{base}/produce/logs?try_number=1", headers=admin).get_json()
        assert "hello from produce" in log["content"]
        text = client.get(f"{base}/produce/logs?format=text", headers=admin)
        assert text.mimetype == "text/plain" and "hello from produce" in text.get_data(True)
        assert client.get(f"{base}/produce/logs?try_number=7", headers=admin).status_code == 404
        tries = client.get(f"{base}/produce/tries", headers=admin).get_json()["tries"]
        assert tries[0]["state"] == "success" and tries[0]["duration"] is not None
        xcom = client.get(f"{base}/produce/xcomEntries/return_value", headers=admin).get_json()
        assert json.loads(xcom["value"]) == {"n": 1}

        marked = client.patch(f"{base}/end", headers=admin, json={"new_state": "failed"})
        assert marked.status_code == 200, marked.get_data(as_text=True)
        assert h.states(DAG_ID, "r1")["end"][0] == "failed"
        cleared = client.post(f"/api/v1/dags/{DAG_ID}/dagRuns/r1/clear", headers=admin,
                              json={"only_failed": True})
        assert cleared.status_code == 200, cleared.get_data(as_text=True)
        assert h.wait_run(DAG_ID, "r1") == "success"
        assert h.states(DAG_ID, "r1")["end"][0] == "success"

        paused = client.patch(f"/api/v1/dags/{DAG_ID}", headers=admin, json={"is_paused": True})
        assert paused.status_code == 200 and paused.get_json()["is_paused"] is True
        assert client.delete(f"/api/v1/dags/{DAG_ID}/dagRuns/r1",
                             headers=admin).status_code == 204
        assert client.get(f"/api/v1/dags/{DAG_ID}/dagRuns/r1",
                          headers=admin).status_code == 404


def test_bus_down_is_a_503_with_the_reason(app, tokens, web_env, monkeypatch):
    from bus.connection import close_shared_bus
    from updraft.config import conf

    h.write_dag(web_env, DAG_ID, WEB_DAG)
    web_helpers.store_dag_without_scheduler(web_env)
    client = app.test_client()
    # NATS is up but no scheduler listens
    response = client.patch(f"/api/v1/dags/{DAG_ID}", headers=bearer(tokens["Admin"]),
                            json={"is_paused": True})
    assert response.status_code == 503
    assert response.get_json()["detail"].startswith("the bus is down: ")
    # NATS itself is unreachable
    close_shared_bus()
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", "nats://127.0.0.1:1")
    conf.reload()
    response = client.post(f"/api/v1/dags/{DAG_ID}/dagRuns", headers=bearer(tokens["Admin"]),
                           json={})
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["detail"].startswith("the bus is down: ")


def test_pagination_filters_and_totals(app, tokens):
    from datetime import datetime

    from updraft import DAG
    from updraft.operators.empty import EmptyOperator
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow

    with session_scope() as session:
        for i in range(25):
            with DAG(f"page_{i:02d}", schedule=None, start_date=datetime(2024, 1, 1,
                                                                          tzinfo=UTC),
                     tags=["even" if i % 2 == 0 else "odd"]) as dag:
                EmptyOperator(task_id="t")
            dag.fileloc = f"/dags/page_{i}.py"
            write_dag(session, dag, file_hash=None, now=utcnow())
    client = app.test_client()
    viewer = bearer(tokens["Viewer"])
    body = client.get("/api/v1/dags?limit=10&offset=20", headers=viewer).get_json()
    assert body["total_entries"] == 25
    assert [d["dag_id"] for d in body["dags"]] == [f"page_{i:02d}" for i in range(20, 25)]
    tagged = client.get("/api/v1/dags?tags=odd&limit=5", headers=viewer).get_json()
    assert tagged["total_entries"] == 12 and len(tagged["dags"]) == 5
    assert all("odd" in d["tags"] for d in tagged["dags"])
    pattern = client.get("/api/v1/dags?dag_id_pattern=page_1", headers=viewer).get_json()
    assert pattern["total_entries"] == 10
    # the test settings unpause new DAGs
    assert client.get("/api/v1/dags?paused=false", headers=viewer).get_json()[
        "total_entries"] == 25
    assert client.get("/api/v1/dags?paused=true", headers=viewer).get_json()[
        "total_entries"] == 0
    assert client.get("/api/v1/dags?limit=0", headers=viewer).status_code == 400
    assert client.get("/api/v1/dags?limit=abc", headers=viewer).status_code == 400
    assert client.get("/api/v1/dags?order_by=nope", headers=viewer).status_code == 400


def test_errors_are_problem_json(app, tokens):
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    for path in ("/api/v1/dags/nope", "/api/v1/dags/nope/dagRuns/r", "/api/v1/variables/x",
                 "/api/v1/no/such/route"):
        response = client.get(path, headers=admin)
        assert response.status_code == 404, path
        assert response.mimetype == "application/problem+json"
        assert set(response.get_json()) >= {"type", "title", "status", "detail"}
    for body, fragment in [({"key": "k"}, "'value' is required"),
                           ({"key": "k", "value": 3}, "must be a string"),
                           ({"key": "k", "value": "v", "extra": 1}, "unknown field")]:
        response = client.post("/api/v1/variables", headers=admin, json=body)
        assert response.status_code == 400
        assert fragment in response.get_json()["detail"]
    not_json = client.post("/api/v1/pools", headers=admin, data="x", content_type="text/plain")
    assert not_json.status_code == 415
    wrong_method = client.put("/api/v1/dags", headers=admin)
    assert wrong_method.status_code == 405
    assert wrong_method.mimetype == "application/problem+json"


def test_connection_passwords_are_never_returned(app, tokens):
    from updraft.models.connection import get_connection

    client = app.test_client()
    admin = bearer(tokens["Admin"])
    created = client.post("/api/v1/connections", headers=admin, json={
        "conn_id": "db", "conn_type": "postgres", "host": "h", "login": "u",
        "password": "s3cr3t-pa55", "extra": {"api_key": "k3y-v4lue", "timeout": 3}})
    assert created.status_code == 201
    changed = client.patch("/api/v1/connections/db", headers=admin, json={"port": 5432})
    for response in (created, changed, client.get("/api/v1/connections/db", headers=admin),
                     client.get("/api/v1/connections", headers=admin)):
        text = response.get_data(as_text=True)
        assert "s3cr3t-pa55" not in text and "k3y-v4lue" not in text
    assert changed.get_json()["has_password"] is True
    assert get_connection("db").password == "s3cr3t-pa55"  # kept (encrypted) by the PATCH
    assert [e.event for e in audit_events() if e.event.startswith("connection.")] == [
        "connection.create", "connection.update"]


def test_openapi_document_covers_every_api_route(app):
    from web.api.openapi import openapi_document

    document = openapi_document()
    documented = {(method.upper(), re.sub(r"\{[^}]+\}", "{}", "/api/v1" + path))
                  for path, item in document["paths"].items() for method in item}
    routes = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in web_helpers.api_routes(app)}
    assert routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - routes == set(), "documented operations without a route"
    served = app.test_client().get("/api/v1/openapi.json")
    assert served.status_code == 200 and served.get_json()["openapi"].startswith("3.0")


# -- metrics, health, version ----------------------------------------------------------------

def test_a_web_node_heartbeats_and_shows_in_health(app, tokens):
    from web.heartbeat import WebHeartbeat

    client = app.test_client()
    beat = WebHeartbeat("http://127.0.0.1:8080/", interval=0.1).start()
    try:
        def web_nodes():
            return client.get("/api/v1/health").get_json()["web"]

        [node] = h.wait_for(web_nodes, what="the web node on the health page")
        assert node["node_id"] == beat.node_id and node["healthy"] and \
            node["info"]["address"] == "http://127.0.0.1:8080/"
        first = node["latest_heartbeat"]
        h.wait_for(lambda: web_nodes()[0]["latest_heartbeat"] != first,
                   what="a second heartbeat")
    finally:
        beat.stop()
    [node] = client.get("/api/v1/health").get_json()["web"]
    assert node["state"] == "stopped" and not node["healthy"]
    assert all(n["kind"] != "web" for n in client.get("/api/v1/health").get_json()["workers"])


def test_metrics_health_and_version(app, tokens, web_env):
    from updraft.metrics import scheduler_metrics_text, serve_metrics

    h.write_dag(web_env, DAG_ID, WEB_DAG)
    client = app.test_client()
    with running_scheduler(web_env) as scheduler:
        h.wait_parsed(DAG_ID)
        trigger_and_wait(client, tokens["Admin"], "m1")
        h.wait_for(lambda: client.get("/api/v1/health").get_json()["scheduler"]["status"]
                   == "healthy", what="a healthy scheduler")
        health = client.get("/api/v1/health").get_json()
        assert health["metadatabase"]["status"] == "healthy"
        assert health["nats"]["status"] == "healthy"
        text = scheduler_metrics_text(scheduler)
        assert "updraft_scheduler_loops_total" in text
        assert "updraft_scheduler_loop_seconds{" in text
        server, _ = serve_metrics(lambda: scheduler_metrics_text(scheduler), "127.0.0.1", 0)
        try:
            port = server.server_address[1]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                served = r.read().decode()
                assert r.headers["Content-Type"].startswith("text/plain")
        finally:
            server.shutdown()
        assert "updraft_executor_queue_depth" in served
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and metrics.mimetype == "text/plain"
    body = metrics.get_data(as_text=True)
    assert 'updraft_dag_runs{state="success"} 1' in body
    assert 'updraft_task_instances{state="success"} 2' in body
    assert 'updraft_task_duration_seconds_count{state="success"} 2' in body
    assert 'updraft_dags{paused="false"} 1' in body
    assert "updraft_import_errors 0" in body
    version = client.get("/api/v1/version", headers=bearer(tokens["Viewer"])).get_json()
    assert version["version"]


# -- updraft users ---------------------------------------------------------------------------

def test_users_cli(web_env):
    from click.testing import CliRunner

    from updraft.cli import main

    runner = CliRunner()
    bad = runner.invoke(main, ["users", "create", "--username", "ann", "--role", "Boss",
                               "--random-password"])
    assert bad.exit_code != 0 and "choose one of Viewer, User, Op, Admin" in bad.output
    made = runner.invoke(main, ["users", "create", "--username", "ann", "--role", "Op",
                                "--email", "ann@example.com", "--random-password"])
    assert made.exit_code == 0, made.output
    password = re.search(r"Password \(shown once\): (\S+)", made.output).group(1)
    dup = runner.invoke(main, ["users", "create", "--username", "ann", "--role", "Op",
                               "--password", "whatever123"])
    assert dup.exit_code != 0 and "already exists" in dup.output
    listed = runner.invoke(main, ["users", "list", "-o", "json"])
    assert json.loads(listed.output)[0]["role"] == "Op"
    token = runner.invoke(main, ["users", "token", "--username", "ann", "--name", "ci",
                                 "--expires-days", "1"]).output.strip()
    assert token.startswith("updraft_")

    from web.app import create_app

    client = create_app({"TESTING": True, "SECRET_KEY": "s"}).test_client()
    assert client.get("/api/v1/variables", headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/variables", headers=basic("ann", password)).status_code == 200
    reset = runner.invoke(main, ["users", "reset-password", "--username", "ann",
                                 "--password", "brand new password"])
    assert reset.exit_code == 0
    assert client.get("/api/v1/variables", headers=basic("ann", password)).status_code == 401
    assert runner.invoke(main, ["users", "delete", "--username", "ann"]).exit_code == 0
    assert client.get("/api/v1/variables", headers=bearer(token)).status_code == 401
    missing = runner.invoke(main, ["users", "delete", "--username", "ann"])
    assert missing.exit_code != 0 and "no user called 'ann'" in missing.output


def test_ui_views_use_the_same_table_pages_and_audit(app, tokens):
    """``require`` on a page: login redirect, a 403 page with the reason, an audit entry."""
    from web.auth.permissions import RUN_TRIGGER, csrf_token, require

    @require(RUN_TRIGGER)
    def trigger_page():
        return f"<form><input name=csrf_token value={csrf_token()}></form>"

    app.add_url_rule("/test-trigger", "test_trigger", trigger_page, methods=["GET", "POST"])
    client = app.test_client()
    redirect = client.get("/test-trigger")
    assert redirect.status_code == 302 and "/login?next=/test-trigger" in redirect.location
    login(client, "viewer")
    page = client.get("/test-trigger")
    assert page.status_code == 403 and page.mimetype == "text/html"
    assert "role Viewer of user 'viewer' may not trigger DAG runs" in html.unescape(
        page.get_data(as_text=True))
    denial = audit_events("access_denied")[-1]
    assert denial.owner == "viewer" and "/test-trigger" in denial.extra
    client = app.test_client()
    login(client, "user")
    assert client.get("/test-trigger").status_code == 200
    assert client.post("/test-trigger").status_code == 400  # a form without the CSRF token
    assert client.post("/test-trigger", data={"csrf_token": csrf_of(client)}).status_code == 200
