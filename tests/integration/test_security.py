"""Security and bad input on the web and the API, one regression test per finding of the
review (issue 12), against a real app on a real store, with a real scheduler on real NATS:

- a Viewer never receives a secret value from any endpoint or page (rendered fields, logs,
  XComs, conf, the audit log...), swept over every GET operation of the OpenAPI document and
  every UI page;
- the Variables page masks secret values;
- every path that names a file (log download, API logs, live logs, static files) refuses to
  leave its folder, raw or %2F-encoded, and no answer names a server path;
- HEAD /login neither logs in nor locks anyone out;
- bad input gets a precise 4xx, never a 5xx (non-integer parameters, a conf 1,000 deep, over
  the bus's limit, NaN, run ids "." and "..", empty dates);
- clear and mark racing the scheduler conflict (409) without corrupting a run;
- nobody locks everyone out, usernames are validated and unique whatever the case;
- the smaller items (a connection's extra, the Trigger button, `export -`, Alembic lines,
  favicon, Content-Security-Policy);
- the permission matrix, from the OpenAPI document: every operation x (anonymous, Viewer,
  User, Op, Admin) answers as its ``x-permission`` says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import scheduler_helpers as h
import web_helpers
from web_helpers import (
    PASSWORD,
    ROLES,
    bearer,
    csrf_of,
    login,
    running_scheduler,
    trigger_and_wait,
)

pytestmark = [pytest.mark.nats, pytest.mark.timeout(300)]

web_env, app, tokens = web_helpers.web_env, web_helpers.app, web_helpers.tokens

# -- the secrets a DAG reads, and the DAG ------------------------------------------------------

DB_PASSWORD = "Pg-S3cret-Value-11"
API_SECRET = "Api-S3cret-Value-22"
CONN_PASSWORD = "Conn/S3cret:Pass@33"  # percent-encoded in a URI: Conn%2FS3cret%3APass%4033
JSON_TOKEN = "Json-S3cret-Key-44"
SECRETS = (DB_PASSWORD, API_SECRET, CONN_PASSWORD, JSON_TOKEN, "Conn%2FS3cret%3APass%4033")

SECRET_DAG_ID = "secret_dag"
SECRET_DAG = '''
from datetime import datetime
from updraft import DAG, Asset
from updraft.operators.bash import BashOperator

with DAG("secret_dag", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    BashOperator(
        task_id="use_secrets", outlets=[Asset("secret_out")],
        bash_command=("echo {{ var.value.db_password }} {{ conn.c.password }} $S "
                      "{{ var.json.api_token.key }} {{ conn.c.get_uri() }}"),
        env={"S": "{{ var.value.api_secret }}"})
'''


def _store_secrets() -> None:
    from updraft.models.connection import Connection, add_connection
    from updraft.models.variable import Variable
    from updraft.store.engine import session_scope

    with session_scope() as session:
        Variable.set("db_password", DB_PASSWORD, session=session)
        Variable.set("api_secret", API_SECRET, session=session)
        Variable.set("api_token", {"key": JSON_TOKEN}, serialize_json=True, session=session)
        Variable.set("greeting", "hello-not-secret", session=session)
        add_connection(Connection(conn_id="c", conn_type="postgres", host="db.example",
                                  login="etl", password=CONN_PASSWORD,
                                  extra={"sslmode": "require", "api_key": "Extra-S3cret-55"}),
                       session=session)
    from updraft.secrets import clear_masks

    clear_masks()  # the web process knows no secret by itself: it must find them in the store


def _assert_no_secret(text: str, where: str) -> None:
    for secret in (*SECRETS, "Extra-S3cret-55"):
        assert secret not in text, f"{where} shows the secret {secret!r}"


def _fill(path: str, values: dict[str, str]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], path)


@pytest.fixture
def secret_run(app, tokens, web_env):
    """The secret DAG run to success by the scheduler (tries in a process of their own)."""
    _store_secrets()
    h.write_dag(web_env, SECRET_DAG_ID, SECRET_DAG)
    with running_scheduler(web_env, executor="local"):
        h.wait_parsed(SECRET_DAG_ID)
        trigger_and_wait(app.test_client(), tokens["Admin"], SECRET_DAG_ID, "leak",
                         conf={"password": "Conf-S3cret-66", "note": "hi"})
        yield "leak"


def test_viewer_never_receives_a_secret(app, tokens, secret_run):
    from web.api.openapi import openapi_document

    client = app.test_client()
    viewer = bearer(tokens["Viewer"])
    base = f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/{secret_run}/taskInstances/use_secrets"
    ti = client.get(base, headers=viewer).get_json()
    rendered = ti["rendered_fields"]
    # The templates did render (with the secrets), and the store kept them masked.
    assert rendered["bash_command"].startswith("echo *** *** $S *** postgres://etl:***@")
    assert rendered["env"] == {"S": "***"}
    log = client.get(f"{base}/logs?format=text", headers=viewer).get_data(as_text=True)
    assert "*** *** ***" in log
    xcom = client.get(f"{base}/xcomEntries/return_value", headers=viewer).get_json()
    assert xcom["value"].startswith('"*** *** *** *** postgres://etl:***@')

    # Every GET operation of the document, as a Viewer.
    values = {"dag_id": SECRET_DAG_ID, "dag_run_id": secret_run, "task_id": "use_secrets",
              "xcom_key": "return_value", "variable_key": "db_password", "connection_id": "c",
              "pool_name": "default_pool", "username": "viewer", "import_error_id": "1",
              "asset_name": "secret_out", "path": f"{SECRET_DAG_ID}.py",
              "version": client.get(f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/{secret_run}",
                                    headers=viewer).get_json()["bundle_version"] or "0" * 64}
    swept = 0
    for path, item in openapi_document()["paths"].items():
        if "get" not in item:
            continue
        for query in ("", "?format=text") if path.endswith("/logs") else ("",):
            response = client.get("/api/v1" + _fill(path, values) + query, headers=viewer)
            assert response.status_code < 500, (path, response.status_code)
            _assert_no_secret(response.get_data(as_text=True), f"GET {path}{query}")
            swept += 1
    assert swept >= 30
    assert "Conf-S3cret-66" not in client.get(
        f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/{secret_run}", headers=viewer).get_data(True)

    # Every UI page, as a Viewer (and the live log stream of the finished try).
    login(client, "viewer")
    pages = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui.") or "GET" not in rule.methods or \
                rule.endpoint in ("ui.static", "ui.dag_events") or \
                rule.rule.startswith("/events/"):  # streams: they never end
            continue
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: {
            "dag_id": SECRET_DAG_ID, "run_id": secret_run, "task_id": "use_secrets",
            "map_index": "-1", "try_number": "1", "name": "secret_out",
            "version": values["version"], "path": values["path"],
            "day": "2024-01-01"}[m.group(1)], rule.rule)
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        _assert_no_secret(response.get_data().decode("utf-8", "replace"), f"page {url}")
        pages += 1
    assert pages >= 20
    page = client.get(f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets")
    assert "echo *** *** $S" in page.get_data(as_text=True).replace("&#34;", '"')
    for url in (f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets/log?try=1",
                f"/xcoms?dag_id={SECRET_DAG_ID}", f"/dags/{SECRET_DAG_ID}/runs/{secret_run}",
                "/audit"):
        _assert_no_secret(client.get(url).get_data(as_text=True), url)


def test_variables_page_masks_secret_values(app, tokens):
    _store_secrets()
    client = app.test_client()
    login(client, "op")
    page = client.get("/variables").get_data(as_text=True)
    _assert_no_secret(page, "the Variables page")
    assert "hello-not-secret" in page and page.count("***") >= 3
    assert "shown masked" in page


def test_dag_code_and_bundle_files_mask_secrets(app, tokens, web_env):
    """Every file of the DAGs folder is in a bundle version, which every role that reads DAGs
    may read (as Airflow's Viewer reads DAG code): a settings file or a DAG file holding a
    stored secret shows *** instead, in the API and on the pages."""
    from updraft.store.bundles import bundle_manifest, latest_bundle_version
    from updraft.store.engine import session_scope

    _store_secrets()
    (web_env / "settings.cfg").write_text(f"[db]\npassword = {DB_PASSWORD}\nhost = db\n")
    h.write_dag(web_env, SECRET_DAG_ID, SECRET_DAG + f"\n# the key: {API_SECRET}\n")

    def recorded():
        with session_scope() as session:
            version = latest_bundle_version(session)
            files = bundle_manifest(session, version) if version else None
        return version if files and {"settings.cfg", f"{SECRET_DAG_ID}.py"} <= set(files) \
            else None

    with running_scheduler(web_env):
        h.wait_parsed(SECRET_DAG_ID)
        version = h.wait_for(recorded, what="a bundle version with settings.cfg")
    client = app.test_client()
    viewer = bearer(tokens["Viewer"])
    assert client.get(f"/api/v1/dagBundles/{version}", headers=viewer).status_code == 200
    for path in ("settings.cfg", f"{SECRET_DAG_ID}.py"):
        response = client.get(f"/api/v1/dagBundles/{version}/files/{path}", headers=viewer)
        assert response.status_code == 200, response.get_data(as_text=True)
        _assert_no_secret(response.get_data(as_text=True), f"bundle file {path}")
        assert "***" in response.get_json()["content"]
    source = client.get(f"/api/v1/dags/{SECRET_DAG_ID}/source", headers=viewer)
    assert source.status_code == 200 and "# the key: ***" in source.get_json()["content"]
    _assert_no_secret(source.get_data(as_text=True), "the DAG's source")
    login(client, "viewer")
    for url in (f"/bundles/{version}/files/settings.cfg",
                f"/bundles/{version}/files/{SECRET_DAG_ID}.py", f"/dags/{SECRET_DAG_ID}/code"):
        response = client.get(url)
        assert response.status_code == 200, url
        _assert_no_secret(response.get_data(as_text=True), f"page {url}")
        assert "***" in response.get_data(as_text=True), url


# -- paths that name a file --------------------------------------------------------------------

def test_no_path_names_a_file_outside_its_folder(app, tokens, secret_run, updraft_home):
    from updraft.config import conf

    outside = updraft_home / "outside.log"
    outside.write_text("TOP-SECRET-OUTSIDE\n")
    (updraft_home / "attempt=1.log").write_text("TOP-SECRET-OUTSIDE\n")
    folder = str(conf.log_folder())
    client = app.test_client()
    login(client, "viewer")
    viewer = bearer(tokens["Viewer"])
    climbs = ("../../../outside", "..%2F..%2F..%2Foutside", "%2E%2E%2F%2E%2E%2Foutside",
              "..", "../..", "x/../../../../outside")
    attempts = []
    for climb in climbs:
        attempts += [
            f"/dags/{SECRET_DAG_ID}/runs/{climb}/tasks/use_secrets/log?try=1",
            f"/dags/{climb}/runs/{secret_run}/tasks/use_secrets/log?try=1",
            f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/{climb}/log?try=1",
            f"/dags/{SECRET_DAG_ID}/runs/{climb}/tasks/use_secrets?try=1",
            f"/events/log/{SECRET_DAG_ID}/{climb}/use_secrets/-1/1",
            f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/{climb}/taskInstances/use_secrets/logs"
            "?format=text",
            f"/ui-static/{climb}/web/app.py"]
    for url in attempts:
        response = client.get(url, headers=viewer if url.startswith("/api/") else None)
        text = response.get_data(as_text=True)
        assert response.status_code in (400, 404), (url, response.status_code)
        assert "TOP-SECRET-OUTSIDE" not in text, url
        assert folder not in text and str(updraft_home) not in text, (url, text[:300])
    # A real try whose file is gone: a 404 that names no server path either.
    from updraft.tasklog import try_log_path

    path = try_log_path(conf.log_folder(), SECRET_DAG_ID, secret_run, "use_secrets", -1, 1)
    Path(path).unlink()
    for url in (f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets/log?try=1",
                f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets?try=1"):
        response = client.get(url)
        assert folder not in response.get_data(as_text=True), url
    assert client.get(f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets/log"
                      "?try=1").status_code == 404
    assert "No log of try 1 on this web node" in client.get(
        f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets?try=1").get_data(True)


# -- HEAD /login -------------------------------------------------------------------------------

def test_head_login_neither_logs_in_nor_locks_out(app, tokens):
    from web.auth.users import login_limiter

    client = app.test_client()
    for _ in range(3 * login_limiter.max_failures):
        response = client.open("/login", method="HEAD",
                               data={"username": "admin", "password": PASSWORD})
        assert response.status_code == 200
        assert "updraft_session" not in response.headers.get("Set-Cookie", "") or \
            "user_id" not in str(client.get_cookie("updraft_session"))
    assert client.get("/api/v1/version").status_code == 401  # the HEADs logged nobody in
    assert login(client, "admin").status_code == 302  # and locked nobody out
    assert client.get("/api/v1/version").status_code == 200


def test_login_failures_lock_out_one_name_not_everyone(app, tokens):
    from web.auth.users import login_limiter

    client = app.test_client()
    for _ in range(login_limiter.max_failures):
        assert login(client, "prober", "wrong").status_code == 401
    assert login(client, "prober", "wrong").status_code == 429
    assert login(client, "viewer").status_code == 302  # same address, another name
    assert login(app.test_client(), "VIEWER").status_code == 302  # names: any case


# -- bad input ---------------------------------------------------------------------------------

def test_bad_parameters_get_a_precise_400(app, tokens, secret_run):
    client = app.test_client()
    login(client, "admin")
    ti = f"/dags/{SECRET_DAG_ID}/runs/{secret_run}/tasks/use_secrets"
    for url, fragment in [
            ("/dags?page=abc", "page must be a whole number"),
            ("/dags?page=0", "page must be at least 1"),
            ("/dags?page=99999999999999", "page must be at most"),
            ("/audit?page=x1", "page must be a whole number"),
            ("/xcoms?page=1.5", "page must be a whole number"),
            (f"{ti}?try=abc", "try must be a whole number"),
            (f"{ti}?map_index=nope", "map_index must be a whole number"),
            (f"{ti}?map_index=99999999999", "map_index must be at most"),
            (f"{ti}/log?try=abc", "try must be a whole number"),
            (f"{ti}/log?map_index=-7", "map_index must be at least -1")]:
        response = client.get(url)
        text = response.get_data(as_text=True)
        assert response.status_code == 400, (url, response.status_code)
        assert fragment in text and "invalid literal" not in text, (url, text[:300])
    admin = bearer(tokens["Admin"])
    for url, fragment in [
            ("/api/v1/dags?limit=abc", "'limit' must be an integer"),
            ("/api/v1/dags?limit=", "'limit' must be an integer"),
            ("/api/v1/dags?paused=yes", "'paused' must be true or false"),
            ("/api/v1/dags/~/dagRuns?logical_date_lte=", "not an RFC 3339 date-time"),
            ("/api/v1/dags/~/dagRuns?logical_date_gte=2024-01-01", "not an RFC 3339"),
            ("/api/v1/dags/~/dagRuns?state=ok", "'state' must be one of"),
            (f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/{secret_run}/taskInstances/use_secrets"
             "?map_index=2147483648", "must be at most 2147483647")]:
        response = client.get(url, headers=admin)
        assert response.status_code == 400, (url, response.status_code)
        assert fragment in response.get_json()["detail"], (url, response.get_json())
    # Dates out of any run's range are fine as filters.
    assert client.get("/api/v1/dags/~/dagRuns?logical_date_gte=0001-01-01T00:00:00Z"
                      "&logical_date_lte=9999-12-31T23:59:59-14:00",
                      headers=admin).status_code == 200


def _deep(levels: int) -> dict:
    conf: dict = {}
    for _ in range(levels - 1):
        conf = {"a": conf}
    return conf


def _deep_text(levels: int) -> str:
    """A JSON object nested ``levels`` deep (Python's own encoder stops near 1,000)."""
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


def test_bad_confs_get_their_4xx_from_the_api_and_the_form(app, tokens, web_env):
    from bus.connection import shared_bus

    h.write_dag(web_env, SECRET_DAG_ID, SECRET_DAG)
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    trigger = f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns"
    with running_scheduler(web_env):
        h.wait_parsed(SECRET_DAG_ID)
        deep = client.post(trigger, headers=admin, data='{"conf": ' + _deep_text(1000) + "}",
                           content_type="application/json")
        assert deep.status_code == 400 and "nested deeper than 64 levels" in \
            deep.get_json()["detail"]
        nan = client.post(trigger, headers=admin, data='{"conf": {"a": NaN}}',
                          content_type="application/json")
        assert nan.status_code == 400 and "NaN is not valid JSON" in nan.get_json()["detail"]
        limit = shared_bus().nc.max_payload
        big = client.post(trigger, headers=admin, json={"conf": {"blob": "x" * (limit + 10)}})
        assert big.status_code == 413, big.get_data(as_text=True)
        assert f"{limit:,} bytes" in big.get_json()["detail"] and \
            "max_payload" in big.get_json()["detail"]
        for run_id in (".", "..", " lead", "a/b", "é"):
            refused = client.post(trigger, headers=admin, json={"dag_run_id": run_id})
            assert refused.status_code == 400, (run_id, refused.get_data(as_text=True))
            assert "dag_run_id" in refused.get_json()["detail"]
        for bad_date in ("2024-01-01", "1899-12-31T23:59:59Z", "2024-13-01T00:00:00Z"):
            refused = client.post(trigger, headers=admin, json={"logical_date": bad_date})
            assert refused.status_code == 400, (bad_date, refused.get_data(as_text=True))
        ok = client.post(trigger, headers=admin, json={
            "dag_run_id": "odd_date", "logical_date": "2024-06-30t23:59:60z"})
        assert ok.status_code == 200, ok.get_data(as_text=True)
        assert ok.get_json()["logical_date"].startswith("2024-06-30T23:59:59.999999")

        login(client, "admin")
        form = f"/dags/{SECRET_DAG_ID}/trigger"
        page = client.post(form, data={"csrf_token": csrf_of(client),
                                       "conf": _deep_text(1000)})
        assert page.status_code == 400 and "nested deeper than 64 levels" in \
            page.get_data(as_text=True)
        page = client.post(form, data={"csrf_token": csrf_of(client), "conf": '{"a": NaN}'})
        assert page.status_code == 400 and "NaN is not valid JSON" in page.get_data(True)
        page = client.post(form, data={"csrf_token": csrf_of(client),
                                       "conf": json.dumps({"blob": "x" * (limit + 10)})})
        assert page.status_code == 413 and f"{limit:,} bytes" in page.get_data(as_text=True)
    # Every door refuses what no JSON reader can take back (the CLI and the bus too).
    from updraft.exceptions import UpdraftBadRequest
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope

    for conf, run_id in (({"a": float("nan")}, None), ({}, ".."), (_deep(100), None)):
        with pytest.raises(UpdraftBadRequest), session_scope() as session:
            trigger_dag_run(session, SECRET_DAG_ID, conf=conf, run_id=run_id)


def test_form_errors_are_sentences_not_python(app, tokens, web_env):
    h.write_dag(web_env, "params_dag", '''
from datetime import datetime
from updraft import DAG, Param
from updraft.operators.empty import EmptyOperator

with DAG("params_dag", schedule=None, start_date=datetime(2024, 1, 1),
         params={"rows": Param(2, type="integer"), "ratio": Param(0.5, type="number"),
                 "items": Param([1], type="array")}) as dag:
    EmptyOperator(task_id="t")
''')
    client = app.test_client()
    login(client, "admin")
    with running_scheduler(web_env):
        h.wait_parsed("params_dag")
        page = client.post("/dags/params_dag/trigger", data={
            "csrf_token": csrf_of(client), "param.rows": "abc", "param.ratio": "1e999",
            "param.items": "[1,"})
        text = page.get_data(as_text=True)
        assert page.status_code == 400
        assert "&#39;abc&#39; is not a whole number" in text and "is not a number" in text
        assert "items is not valid JSON" in text
        for internal in ("invalid literal", "Traceback", "ValueError", "could not convert"):
            assert internal not in text
    for url, data, fragment in [
            ("/pools/save", {"pool": "p", "slots": "many"}, "slots must be a whole number"),
            ("/pools/save", {"pool": "p", "slots": "99999999999"}, "slots must be a whole"),
            ("/connections/save", {"conn_id": "x", "conn_type": "http", "port": "eighty"},
             "the port must be a whole number from 0 to 65535"),
            ("/connections/save", {"conn_id": "x", "conn_type": "http", "extra": "{"},
             "extra is not valid JSON"),
            ("/variables/save", {"key": "", "val": "v"}, "the key must not be empty")]:
        response = client.post(url, data={"csrf_token": csrf_of(client), **data},
                               follow_redirects=True)
        text = response.get_data(as_text=True)
        assert response.status_code == 200 and fragment in text, (url, text[-500:])
        assert "invalid literal" not in text


# -- the race ----------------------------------------------------------------------------------

MAPPED_DAG = '''
import time
from datetime import datetime
from updraft import DAG, task

with DAG("mapped_race", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def numbers():
        return list(range(6))

    @task
    def slow(n):
        time.sleep(0.2)
        return n

    @task
    def total(values):
        return sum(values)

    total(slow.expand(n=numbers()))
'''


def test_run_state_changes_racing_the_scheduler_conflict_and_corrupt_nothing(
        app, tokens, web_env):
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceTry, TiEvent

    h.write_dag(web_env, "mapped_race", MAPPED_DAG)
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    run = "/api/v1/dags/mapped_race/dagRuns/r1"
    with running_scheduler(web_env):
        h.wait_parsed("mapped_race")
        assert client.post("/api/v1/dags/mapped_race/dagRuns", headers=admin,
                           json={"dag_run_id": "r1"}).status_code == 200
        statuses = []
        deadline = time.monotonic() + 25
        while len(statuses) < 40 and time.monotonic() < deadline:
            response = client.patch(run, headers=admin, json={"state": "queued"})
            statuses.append(response.status_code)
            assert response.status_code in (200, 409), response.get_data(as_text=True)
            if response.status_code == 409:
                assert "nothing was changed" in response.get_json()["detail"]
            time.sleep(0.05)
        assert 200 in statuses
        assert h.wait_run("mapped_race", "r1", timeout=120) == "success", \
            h.states("mapped_race", "r1")
    states = h.states("mapped_race", "r1")
    assert all(state == "success" for state, _try in states.values()), states
    assert len([k for k in states if isinstance(k, tuple) and k[0] == "slow"]) == 6
    with session_scope() as session:
        causes = [e.cause or "" for e in session.scalars(
            select(TiEvent).where(TiEvent.run_id == "r1"))]
        tries = list(session.scalars(select(TaskInstanceTry).where(
            TaskInstanceTry.run_id == "r1")))
    assert not [c for c in causes if "zombie" in c], causes
    latest: dict = {}
    for row in tries:  # each task instance's last recorded try is its success
        latest[(row.task_id, row.map_index)] = max(latest.get((row.task_id, row.map_index), 0),
                                                   row.try_number)
    for (task_id, map_index), number in latest.items():
        key = task_id if map_index < 0 else (task_id, map_index)
        assert states[key][1] >= number, (key, states[key], number)


def test_clear_racing_a_try_outcome_is_a_conflict_and_changes_nothing(store_url):
    """A deterministic race: between clear's read and its write, another writer (a try's
    outcome, an expansion) changes the run; clear refuses and leaves the store as it was."""
    from datetime import datetime

    from sqlalchemy import event, insert, update

    from updraft import DAG
    from updraft.operators.empty import EmptyOperator
    from updraft.store.commands import (
        ConcurrentStateChange,
        clear_task_instances,
        set_dag_run_state,
        trigger_dag_run,
    )
    from updraft.store.dags import write_dag
    from updraft.store.engine import get_engine, session_scope
    from updraft.store.models import TaskInstanceModel, utcnow

    with DAG("race", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    with session_scope() as session:
        write_dag(session, dag, file_hash=None, now=utcnow())
        trigger_dag_run(session, "race", run_id="r")
    table = TaskInstanceModel.__table__
    with get_engine().begin() as conn:
        conn.execute(update(table).where(table.c.task_id == "a").values(
            state="running", try_number=1))

    def race_once(writer):
        threads = []

        def after(conn, cursor, statement, *args):
            if not threads and statement.lstrip().upper().startswith("SELECT") and \
                    "task_instance.try_number" in statement and "FROM task_instance" in statement:
                threads.append(threading.Thread(target=writer))
                threads[0].start()
                threads[0].join(0.5)  # the other writer commits (or waits for our row locks)
        return after, threads

    def outcome():  # the try of "a" records its success (a compare-and-set, as the runner's)
        from sqlalchemy.exc import OperationalError

        try:
            with get_engine().begin() as conn:
                conn.execute(update(table).where(table.c.task_id == "a",
                                                 table.c.state == "running")
                             .values(state="success"))
        except OperationalError:  # MariaDB picked this writer as a deadlock's victim
            pass

    def expansion():  # "b" gains a copy
        with get_engine().begin() as conn:
            conn.execute(insert(table).values(dag_id="race", run_id="r", task_id="b",
                                              map_index=7, state="none", try_number=0,
                                              max_tries=0, pool="default_pool", pool_slots=1,
                                              priority_weight=1, queue="default"))

    sqlite = get_engine().dialect.name == "sqlite"
    for writer, command in ((outcome, lambda s: clear_task_instances(s, "race", run_id="r")),
                            (expansion, lambda s: set_dag_run_state(s, "race", "r", "failed"))):
        before = h.states("race", "r")
        after, threads = race_once(writer)
        event.listen(get_engine(), "after_cursor_execute", after)
        conflict = None
        try:
            with session_scope() as session:
                command(session)
        except ConcurrentStateChange as exc:
            conflict = exc
        finally:
            event.remove(get_engine(), "after_cursor_execute", after)
            for thread in threads:
                thread.join(30)
        assert threads
        now = h.states("race", "r")
        if sqlite:
            # SQLite reads before it locks: the other writer gets in between, every time.
            assert conflict is not None and "nothing was changed" in str(conflict)
        if conflict is not None:
            # Only the other writer's change is there; the command changed nothing.
            changed = {k: v for k, v in now.items() if before.get(k) != v}
            assert set(changed) <= {"a", ("b", 7)}, changed
            assert now["b"] == ("none", 0) and h.run_state("race", "r") != "failed"
        else:
            # PostgreSQL and MariaDB lock what the command read (FOR UPDATE): the other
            # writer waited for its commit and its own compare-and-set then found nothing
            # to change, or it was the deadlock victim. Never both applied.
            if writer is outcome:
                assert now["a"] == ("none", 1), now
            else:
                assert h.run_state("race", "r") == "failed"
                assert now["b"][0] == "skipped", now
        if writer is outcome:  # the next round starts from a running "a" again
            with get_engine().begin() as conn:
                conn.execute(update(table).where(table.c.task_id == "a").values(
                    state="running", try_number=1))


# -- accounts ----------------------------------------------------------------------------------

def test_nobody_locks_everyone_out(app, tokens):
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    for method, body, fragment in [("PATCH", {"role": "Viewer"}, "your own role"),
                                   ("PATCH", {"active": False}, "deactivate your own"),
                                   ("DELETE", None, "delete your own")]:
        response = client.open("/api/v1/users/admin", method=method, json=body, headers=admin)
        assert response.status_code == 409 and fragment in response.get_json()["detail"]
    assert client.patch("/api/v1/users/admin", json={"role": "Admin", "email": "a@b.c"},
                        headers=admin).status_code == 200
    me = client.get("/api/v1/users/admin", headers=admin).get_json()
    assert me["role"] == "Admin" and me["active"] is True
    # Through the pages too.
    login(client, "admin")
    client.post("/users/action", data={"csrf_token": csrf_of(client), "action": "role",
                                       "username": "admin", "role": "Viewer"})
    client.post("/users/action", data={"csrf_token": csrf_of(client), "action": "active",
                                       "username": "admin", "active": "false"})
    client.post("/users/action", data={"csrf_token": csrf_of(client), "action": "delete",
                                       "username": "admin"})
    page = client.get("/users").get_data(as_text=True)
    assert "you cannot change your own role" in page or "your own" in page
    me = client.get("/api/v1/users/admin", headers=admin).get_json()
    assert me["role"] == "Admin" and me["active"] is True
    # Another Admin may be demoted; the last active Admin may not be lost.
    from updraft.store.engine import session_scope
    from web.auth.users import UserConflict, check_lockout, get_user

    assert client.post("/api/v1/users", headers=admin, json={
        "username": "admin2", "password": PASSWORD, "role": "Admin"}).status_code == 201
    assert client.patch("/api/v1/users/admin2", headers=admin,
                        json={"role": "Op"}).status_code == 200
    with session_scope() as session, pytest.raises(UserConflict, match="last active Admin"):
        check_lockout(session, get_user(session, "admin"), None, active=False)


def test_usernames_are_validated_and_unique_whatever_the_case(app, tokens):
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    for name, status in [("<script>alert(1)</script>", 400), ("x" * 5000, 400), ("", 400),
                         (" lead", 400), ("Admin", 409), ("VIEWER", 409), ("ok.name-1", 201)]:
        response = client.post("/api/v1/users", headers=admin, json={
            "username": name, "password": PASSWORD, "role": "Viewer"})
        assert response.status_code == status, (name[:20], response.get_data(as_text=True))
    listed = {u["username"] for u in client.get("/api/v1/users", headers=admin)
              .get_json()["users"]}
    assert listed == {"viewer", "user", "op", "admin", "ok.name-1"}
    assert client.get("/api/v1/users/ADMIN", headers=admin).get_json()["username"] == "admin"
    # The pages and the CLI follow the same rule.
    from click.testing import CliRunner

    from updraft.cli import main

    made = CliRunner().invoke(main, ["users", "create", "--username", "Op", "--role", "Op",
                                     "--password", PASSWORD])
    assert made.exit_code != 0 and "already exists" in made.output
    login(client, "admin")
    client.post("/users/action", data={"csrf_token": csrf_of(client), "action": "create",
                                       "username": "<b>x</b>", "role": "Viewer"})
    assert "invalid username" in client.get("/users").get_data(as_text=True)


# -- the smaller items -------------------------------------------------------------------------

def test_saving_a_connection_in_the_ui_keeps_its_extra_and_password(app, tokens):
    from updraft.models.connection import get_connection

    client = app.test_client()
    admin = bearer(tokens["Admin"])
    assert client.post("/api/v1/connections", headers=admin, json={
        "conn_id": "wh", "conn_type": "postgres", "password": "pw-kept-1",
        "extra": {"sslmode": "require"}}).status_code == 201
    login(client, "admin")
    saved = client.post("/connections/save", data={
        "csrf_token": csrf_of(client), "conn_id": "wh", "conn_type": "postgres",
        "host": "db.example", "port": "5432", "extra": "", "password": ""},
        follow_redirects=True)
    assert "Connection wh saved" in saved.get_data(as_text=True)
    conn = get_connection("wh")
    assert conn.host == "db.example" and conn.port == 5432
    assert conn.extra_dejson == {"sslmode": "require"} and conn.password == "pw-kept-1"
    client.post("/connections/save", data={"csrf_token": csrf_of(client), "conn_id": "wh",
                                           "conn_type": "postgres", "clear_extra": "1"})
    assert get_connection("wh").extra is None


def test_only_those_who_may_trigger_see_the_trigger_button(app, tokens, web_env):
    h.write_dag(web_env, SECRET_DAG_ID, SECRET_DAG)
    web_helpers.store_dag_without_scheduler(web_env)
    for user, shown in (("viewer", False), ("user", True)):
        client = app.test_client()
        login(client, user)
        for url in (f"/dags/{SECRET_DAG_ID}/graph", "/dags"):
            page = client.get(url).get_data(as_text=True)
            assert ("&#9654; Trigger" in page) is shown, (user, url)
    client = app.test_client()
    login(client, "viewer")
    assert client.get(f"/dags/{SECRET_DAG_ID}/trigger").status_code == 403


def test_export_dash_prints_to_stdout(web_env, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from updraft.cli import main

    _store_secrets()
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for kind, key in (("variables", "greeting"), ("connections", "c")):
        result = runner.invoke(main, [kind, "export", "-"])
        assert result.exit_code == 0, result.output
        assert key in json.loads(result.stdout)
        assert not (tmp_path / "-").exists()
    exported = tmp_path / "vars.json"
    assert runner.invoke(main, ["variables", "export", str(exported)]).exit_code == 0
    assert exported.stat().st_mode & 0o777 == 0o600
    imported = runner.invoke(main, ["variables", "import", "-"],
                             input='{"from_stdin": "yes"}')
    assert imported.exit_code == 0 and "1 variable(s) imported" in imported.output


def test_a_fresh_process_logs_no_alembic_lines(store_url):
    """The first store access of a worker (inside a try, whose log captures INFO) writes no
    Alembic lines."""
    code = ("import logging; logging.basicConfig(level=logging.INFO); "
            "from updraft.models.variable import Variable; "
            "print(Variable.get('missing', default_var='fine'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "fine", done.stderr
    assert "alembic" not in done.stderr.lower(), done.stderr


def test_favicon_and_content_security_policy(app, tokens):
    client = app.test_client()
    icon = client.get("/favicon.ico")  # no login needed: the login page has it too
    assert icon.status_code == 200 and icon.mimetype == "image/x-icon"
    assert icon.data[:4] == b"\x00\x00\x01\x00"
    login_page = client.get("/login")
    assert 'rel="icon"' in login_page.get_data(as_text=True)
    login(client, "admin")
    for url in ("/login", "/dags", "/variables", "/users", "/api/v1/version",
                "/api/v1/dags/nope"):
        response = client.get(url)
        policy = response.headers.get("Content-Security-Policy", "")
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, url
        assert "unsafe-inline" not in policy
        page = response.get_data(as_text=True)
        assert not re.search(r"\son[a-z]+=", page), (url, "an inline event handler")
        assert "<script>" not in page and "style=" not in page, url


# -- the permission matrix, from the OpenAPI document ------------------------------------------

BODIES = {
    "DAGPatch": {"is_paused": False}, "DAGRunTrigger": {"conf": {}},
    "DAGRunState": {"state": "success"}, "ClearRequest": {"dry_run": True},
    "ClearTaskInstances": {"dry_run": True}, "TaskInstanceState": {"new_state": "success"},
    "VariableCreate": {"key": "v_{who}", "value": "1"}, "VariableUpdate": {"value": "2"},
    "ConnectionCreate": {"conn_id": "c_{who}", "conn_type": "http"},
    "ConnectionUpdate": {"host": "h"}, "PoolCreate": {"name": "p_{who}", "slots": 1},
    "PoolUpdate": {"slots": 3},
    "UserCreate": {"username": "u_{who}", "password": PASSWORD, "role": "Viewer"},
    "UserUpdate": {"email": "x@example.com"},
    "AssetEventCreate": {"asset_name": "secret_out", "extra": {"by": "{who}"}},
    "DAGBackfill": {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-02T00:00:00Z",
                    "dry_run": True},
}
CALLERS = ("anonymous", *ROLES)


def test_every_operation_of_the_document_with_every_caller(app, tokens, web_env):
    """Each operation x (anonymous, Viewer, User, Op, Admin): public ones answer everyone;
    the others 401 without credentials, 403 (problem+json) for a role below their
    x-permission, and their documented success to the roles that hold it."""
    from web.api.openapi import openapi_document
    from web.auth.permissions import ROLE_PERMISSIONS

    _store_secrets()
    h.write_dag(web_env, SECRET_DAG_ID, SECRET_DAG)
    client = app.test_client()
    admin = bearer(tokens["Admin"])
    document = openapi_document()
    with running_scheduler(web_env):
        h.wait_parsed(SECRET_DAG_ID)
        for who in CALLERS:  # what each caller's DELETE removes, and its runs
            trigger_and_wait(client, tokens["Admin"], SECRET_DAG_ID, f"run_{who}")
            trigger_and_wait(client, tokens["Admin"], SECRET_DAG_ID, f"del_{who}")
            for path, body in [("/api/v1/variables", {"key": f"d_{who}", "value": "x"}),
                               ("/api/v1/connections", {"conn_id": f"d_{who}",
                                                        "conn_type": "http"}),
                               ("/api/v1/pools", {"name": f"d_{who}", "slots": 1}),
                               ("/api/v1/users", {"username": f"d_{who}", "password": PASSWORD,
                                                  "role": "Viewer"})]:
                assert client.post(path, json=body, headers=admin).status_code == 201
        from updraft.store.engine import session_scope
        from updraft.store.models import DagModel

        with session_scope() as session:  # what each caller's DELETE of a DAG removes
            session.add_all(DagModel(dag_id=f"gone_{who}", is_active=True) for who in CALLERS)
        version = client.get(f"/api/v1/dags/{SECRET_DAG_ID}/dagRuns/run_Admin",
                             headers=admin).get_json()["bundle_version"] or "0" * 64
        checked = 0
        for path, item in document["paths"].items():
            for method, op in item.items():
                body_ref = op.get("requestBody", {}).get("content", {}).get(
                    "application/json", {}).get("schema", {}).get("$ref")
                success = min(int(code) for code in op["responses"] if code.startswith("2"))
                permission = op.get("x-permission")
                for who in CALLERS:
                    values = {"dag_id": SECRET_DAG_ID, "dag_run_id": f"run_{who}",
                              "version": version, "path": f"{SECRET_DAG_ID}.py",
                              "task_id": "use_secrets", "xcom_key": "return_value",
                              "variable_key": f"d_{who}", "connection_id": f"d_{who}",
                              "pool_name": f"d_{who}", "username": f"d_{who}",
                              "import_error_id": "1", "asset_name": "secret_out"}
                    body = None
                    if body_ref:
                        template = json.dumps(BODIES[body_ref.rsplit("/", 1)[1]])
                        body = json.loads(template.replace("{who}", who))
                    if method == "delete" and path.endswith("{dag_run_id}"):
                        values["dag_run_id"] = f"del_{who}"
                    if method == "delete" and path == "/dags/{dag_id}":
                        values["dag_id"] = f"gone_{who}"
                    url = "/api/v1" + _fill(path, values)
                    headers = bearer(tokens[who]) if who != "anonymous" else {}
                    response = client.open(url, method=method.upper(), json=body,
                                           headers=headers)
                    text = response.get_data(as_text=True)
                    if op.get("security") == []:
                        expected = success
                    elif who == "anonymous":
                        expected = 401
                    elif permission not in ROLE_PERMISSIONS[who]:
                        expected = 403
                        assert response.mimetype == "application/problem+json"
                    else:
                        expected = success
                    if path == "/importErrors/{import_error_id}" and expected == success:
                        expected = 404  # there is none; the permission let it through
                    assert response.status_code == expected, (who, method, path, text[:300])
                    checked += 1
    assert checked == 5 * sum(len(item) for item in document["paths"].values())


# -- no 5xx from any input, on the pages ---------------------------------------------------------

JUNK = ["", "abc", "-1", "99999999999999999999", "1.5", "\x00", "../..", "<x>", "\U0001F600",
        "NaN"]
PAGE_PARAMS = ["page", "try", "map_index", "run_id", "collapsed", "search", "tag", "owner",
               "paused", "dag_id", "task_id", "key", "event", "all", "edit", "next",
               "_external"]
FORM_FIELDS = ["action", "task_id", "map_index", "upstream", "paused", "next", "conf",
               "run_id", "logical_date", "param.x", "key", "val", "description", "conn_id",
               "conn_type", "port", "extra", "password", "pool", "slots", "username", "role",
               "active", "email"]


def test_pages_and_forms_answer_any_input_without_a_server_error(app, tokens, web_env):
    """Every UI page with junk in every parameter it reads, and every form with junk in its
    fields: never a 5xx (the bus being away is a 503 of the trigger form, and says so)."""
    import random

    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope

    h.write_dag(web_env, "junk", '''
from datetime import datetime
from updraft import DAG, Param
from updraft.operators.empty import EmptyOperator
from updraft.taskgroup import TaskGroup

with DAG("junk", schedule=None, start_date=datetime(2024, 1, 1),
         params={"x": Param(1, type="integer")}) as dag:
    with TaskGroup("g"):
        EmptyOperator(task_id="t")
''')
    web_helpers.store_dag_without_scheduler(web_env)
    with session_scope() as session:
        trigger_dag_run(session, "junk", run_id="r")
    client = app.test_client()
    login(client, "admin")
    names = {"dag_id": "junk", "run_id": "r", "task_id": "g.t", "map_index": "-1",
             "try_number": "1", "name": "no_such_asset", "version": "0" * 64,
             "path": "junk.py", "day": "2024-01-01"}
    failures = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("ui.") or rule.endpoint in ("ui.static",
                                                                     "ui.dag_events"):
            continue
        url = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: names[m.group(1)], rule.rule)
        if "GET" in rule.methods and not url.startswith("/events/"):
            for name in PAGE_PARAMS:
                for junk in JUNK:
                    response = client.get(url, query_string={name: junk})
                    if response.status_code >= 500:
                        failures.append(("GET", url, name, junk, response.status_code))
        if "POST" in rule.methods and rule.endpoint != "ui.user_action":
            rng = random.Random(url)
            for _ in range(40):
                data = {f: rng.choice(JUNK + ["clear", "mark_success", "delete", "create",
                                              "Admin", "true"])
                        for f in rng.sample(FORM_FIELDS, 6)}
                response = client.post(url, data={**data, "csrf_token": csrf_of(client)})
                if response.status_code >= 500 and not (
                        response.status_code == 503
                        and url.endswith(("/trigger", "/backfill"))
                        and "the bus is down" in response.get_data(as_text=True)):
                    failures.append(("POST", url, data, response.status_code))
    assert not failures, failures[:10]
