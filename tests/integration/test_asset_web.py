"""Assets in the web node against a real store, NATS and scheduler: the REST endpoints
(list, details with producers and consumers, events, a run's triggering events, recording
an event over the bus with its errors and idempotency) and the UI pages (list with the
producer -> asset -> consumer graph, an asset's events with extras, recording an event with
CSRF and RBAC, a run's triggering events)."""

from __future__ import annotations

import re

import pytest
import scheduler_helpers as h
import web_helpers
from web_helpers import bearer, csrf_of, login, running_scheduler

pytestmark = pytest.mark.timeout(180)

web_env, app, tokens = web_helpers.web_env, web_helpers.app, web_helpers.tokens

DAGS = '''
from datetime import datetime
from updraft import DAG, Asset, task

orders = Asset(name="orders", uri="s3://lake/orders")

with DAG("make_orders", schedule=None, start_date=datetime(2024, 1, 1)):

    @task(outlets=[orders])
    def write(**context):
        context["outlet_events"][orders].extra = {"rows": 3}

    write()

with DAG("use_orders", schedule=[orders], start_date=datetime(2024, 1, 1)):

    @task
    def read():
        pass

    read()
'''


def consumer_runs() -> list:
    return [r for r in h.runs("use_orders") if r.run_type == "asset_triggered"]


def test_asset_api_and_pages(app, tokens, web_env):
    h.write_dag(web_env, "assets_dags", DAGS)
    client = app.test_client()
    user, viewer = bearer(tokens["User"]), bearer(tokens["Viewer"])
    with running_scheduler(web_env):
        h.wait_parsed("make_orders")
        h.wait_parsed("use_orders")
        web_helpers.trigger_and_wait(client, tokens["User"], "make_orders", "m1")
        run = h.wait_for(consumer_runs, what="the consumer run")[0]
        h.wait_run("use_orders", run.run_id)

        listed = client.get("/api/v1/assets", headers=viewer).get_json()
        assert [(a["name"], a["uri"], a["events"]) for a in listed["assets"]] == [
            ("orders", "s3://lake/orders", 1)]
        details = client.get("/api/v1/assets/orders", headers=viewer).get_json()
        assert details["producing_tasks"] == [{"dag_id": "make_orders", "task_id": "write"}]
        assert details["consuming_dags"] == [{"dag_id": "use_orders", "waiting_events": 0}]
        assert client.get("/api/v1/assets/nope", headers=viewer).status_code == 404
        upstream = client.get(f"/api/v1/dags/use_orders/dagRuns/{run.run_id}/"
                              "upstreamAssetEvents", headers=viewer).get_json()
        assert [(e["extra"], e["source_dag_id"], e["source_run_id"])
                for e in upstream["asset_events"]] == [({"rows": 3}, "make_orders", "m1")]

        # Recording an event: User and above; the scheduler records it and runs the consumer.
        body = {"asset_name": "orders", "extra": {"from": "api"}, "id": "api-1"}
        assert client.post("/api/v1/assets/events", headers=viewer,
                           json=body).status_code == 403
        created = client.post("/api/v1/assets/events", headers=user, json=body)
        assert created.status_code == 201, created.get_data(as_text=True)
        assert created.get_json()["extra"] == {"from": "api"}
        again = client.post("/api/v1/assets/events", headers=user, json=body)
        assert again.status_code == 200 and again.get_json()["duplicate"] is True
        assert again.get_json()["id"] == created.get_json()["id"]
        missing = client.post("/api/v1/assets/events", headers=user,
                              json={"asset_name": "nope"})
        assert missing.status_code == 404 and "no asset named 'nope'" in \
            missing.get_json()["detail"]
        wrong = client.post("/api/v1/assets/events", headers=user,
                            json={"asset_name": "orders", "extra": [1]})
        assert wrong.status_code == 400 and "extra" in wrong.get_json()["detail"]
        h.wait_for(lambda: len(consumer_runs()) == 2, what="the API event's run")
        events = client.get("/api/v1/assets/events?asset_name=orders",
                            headers=viewer).get_json()
        assert [(e["extra"], e["source"]) for e in events["asset_events"]] == [
            ({"from": "api"}, "api"), ({"rows": 3}, "task")]
        assert events["total_entries"] == 2

        # The pages
        login(client, "viewer")
        page = client.get("/assets").get_data(as_text=True)
        assert 'id="asset-graph"' in page and ">make_orders<" in page and \
            ">use_orders<" in page
        detail = client.get("/assets/orders").get_data(as_text=True)
        assert "&#34;rows&#34;: 3" in detail or '"rows": 3' in detail
        assert 'id="record-event"' not in detail  # a Viewer cannot record events
        run_page = client.get(f"/dags/use_orders/runs/{run.run_id}").get_data(as_text=True)
        assert 'id="triggering-events"' in run_page and "make_orders.write" in run_page

        client = app.test_client()
        login(client, "user")
        detail = client.get("/assets/orders").get_data(as_text=True)
        assert 'id="record-event"' in detail
        no_csrf = client.post("/assets/orders/event", data={"extra": "{}"})
        assert no_csrf.status_code in (400, 403)
        bad = client.post("/assets/orders/event", data={"extra": "[1]",
                                                         "csrf_token": csrf_of(client)},
                          follow_redirects=True)
        assert "the extra must be a JSON object, got list" in bad.get_data(as_text=True)
        done = client.post("/assets/orders/event", data={"extra": '{"from": "page"}',
                                                          "csrf_token": csrf_of(client)},
                           follow_redirects=True)
        assert re.search(r"Recorded event \d+ of orders", done.get_data(as_text=True))
        h.wait_for(lambda: len(consumer_runs()) == 3, what="the page event's run")
