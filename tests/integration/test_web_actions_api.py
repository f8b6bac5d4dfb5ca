"""The REST API of issue 16's item 9 against a real store, NATS and scheduler: notes on runs
and task instances (``note`` in PATCH), DAG delete, backfill and its progress. Each change
goes over the bus to the scheduler, so a 2xx means the scheduler did it."""

from __future__ import annotations

import pytest
import scheduler_helpers as h
import web_helpers
from web_helpers import bearer, running_scheduler

pytestmark = pytest.mark.timeout(300)

web_env, app, tokens = web_helpers.web_env, web_helpers.app, web_helpers.tokens

DAILY = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("api_daily", schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False,
         is_paused_upon_creation=True) as dag:
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
'''


def test_backfill_notes_and_dag_delete_over_the_api(app, tokens, web_env):
    h.write_dag(web_env, "api_daily", DAILY)
    client = app.test_client()
    admin, viewer = bearer(tokens["Admin"]), bearer(tokens["Viewer"])
    base = "/api/v1/dags/api_daily"
    with running_scheduler(web_env):
        h.wait_parsed("api_daily")
        bad = client.post(f"{base}/backfill", headers=admin,
                          json={"start_date": "2025-01-03T00:00:00Z",
                                "end_date": "2025-01-01T00:00:00Z"})
        assert bad.status_code == 409 and "before the start" in bad.get_json()["detail"]
        assert client.post(f"{base}/backfill", headers=admin,
                           json={"start_date": "2025-01-01", "end_date": "2025-01-01Z"}
                           ).status_code == 400
        plan = client.post(f"{base}/backfill", headers=admin, json={
            "start_date": "2025-01-01T00:00:00Z", "end_date": "2025-01-02T00:00:00Z",
            "dry_run": True}).get_json()
        assert len(plan["run_ids"]) == 2 and plan["dry_run"]
        assert client.post(f"{base}/backfill", headers=viewer, json={
            "start_date": "2025-01-01T00:00:00Z",
            "end_date": "2025-01-02T00:00:00Z"}).status_code == 403
        made = client.post(f"{base}/backfill", headers=admin, json={
            "start_date": "2025-01-01T00:00:00Z", "end_date": "2025-01-02T00:00:00Z"})
        huge = client.post(f"{base}/backfill", headers=admin, json={
            "start_date": "1990-01-01T00:00:00Z", "end_date": "2025-01-02T00:00:00Z"})
        assert huge.status_code == 409 and "more than 1,000 runs" in huge.get_json()["detail"]
        assert made.status_code == 200 and made.get_json()["created"] == plan["run_ids"]

        def finished():
            body = client.get(f"{base}/backfill", headers=viewer).get_json()
            return body if body["finished"] else None

        progress = h.wait_for(finished, 60, what="the backfill runs to end")
        assert progress["done"] == progress["total"] == 4 and progress["failed"] == 0
        assert [r["state"] for r in progress["runs"]] == ["success", "success"]
        narrowed = client.get(f"{base}/backfill?start_date=2025-01-02T00:00:00Z",
                              headers=viewer).get_json()
        assert [r["run_id"] for r in narrowed["runs"]] == plan["run_ids"][1:]

        run_id = plan["run_ids"][0]
        run_url = f"{base}/dagRuns/{run_id}"
        assert client.patch(run_url, headers=admin, json={}).status_code == 200  # no change
        assert client.patch(run_url, headers=viewer, json={"note": "x"}).status_code == 403
        assert client.patch(run_url, headers=admin, json={"note": "x" * 1001}).status_code == 400
        noted = client.patch(run_url, headers=admin, json={"note": "checked by ops"})
        assert noted.status_code == 200 and noted.get_json()["note"] == "checked by ops"
        ti_url = f"{run_url}/taskInstances/b"
        assert client.patch(ti_url, headers=admin, json={"note": "b is fine"}).status_code == 200
        assert client.get(ti_url, headers=viewer).get_json()["note"] == "b is fine"
        assert client.patch(ti_url, headers=admin, json={"note": None}).status_code == 200
        assert client.get(ti_url, headers=viewer).get_json()["note"] is None
        both = client.patch(run_url, headers=admin, json={"state": "failed", "note": "why"})
        assert both.get_json()["state"] == "failed" and both.get_json()["note"] == "why"

        assert client.delete(base, headers=viewer).status_code == 403
        assert client.delete("/api/v1/dags/nope", headers=admin).status_code == 404
        assert client.delete(base, headers=admin).status_code == 204
        assert client.get(f"{base}/dagRuns", headers=admin).status_code in (200, 404)
        # The file stays: the DAG processor parses it again and the DAG is back, with no runs.
        h.wait_for(lambda: client.get(base, headers=admin).status_code == 200, 60,
                   what="the DAG to come back from its file")
        runs = client.get(f"{base}/dagRuns", headers=admin).get_json()
        assert runs["total_entries"] == 0
    events = [e.extra for e in web_helpers.audit_events("delete_dag")]
    assert events and "2 run(s)" in events[0]


def test_a_viewer_follows_a_backfill_page_and_may_not_start_one(app, tokens):
    """The backfill progress page is for anyone who may read the DAG (no form for a Viewer);
    starting a backfill (POST) needs run.trigger, and the CSRF token is still checked."""
    from datetime import datetime

    from updraft import DAG
    from updraft.operators.empty import EmptyOperator
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow
    from web_helpers import csrf_of, login

    with session_scope() as session:
        with DAG("ui_daily", schedule="@daily", start_date=datetime(2025, 1, 1),
                 catchup=False) as dag:
            EmptyOperator(task_id="a")
        write_dag(session, dag, file_hash=None, now=utcnow())
    client = app.test_client()
    login(client, "viewer")
    page = client.get("/dags/ui_daily/backfill?start_date=2025-01-01&end_date=2025-01-02")
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert 'id="backfill-progress"' in html and 'id="backfill-read-only"' in html
    assert 'id="backfill-form"' not in html
    grid = client.get("/dags/ui_daily/grid").get_data(as_text=True)
    assert 'id="backfill-progress-link"' in grid and 'id="backfill-button"' not in grid
    form = {"start_date": "2025-01-01", "end_date": "2025-01-02", "action": "preview"}
    assert client.post("/dags/ui_daily/backfill", data=form).status_code == 400  # no CSRF
    refused = client.post("/dags/ui_daily/backfill", data={**form,
                                                          "csrf_token": csrf_of(client)})
    assert refused.status_code == 403
    assert "may not" in refused.get_data(as_text=True)

    user = app.test_client()
    login(user, "user")
    html = user.get("/dags/ui_daily/backfill").get_data(as_text=True)
    assert 'id="backfill-form"' in html and 'id="backfill-read-only"' not in html
