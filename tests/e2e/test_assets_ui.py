"""The Assets pages in a real headless Chromium against a real stack (see conftest.py): the
list with the producer -> asset -> consumer graph, an asset's page, recording an event with
its form (CSRF and the User role), and the consumer run's page listing the event that
triggered it, with its extra. Pages are kept under test-output/screenshots/."""

from __future__ import annotations

import re
import time

import pytest
from e2e_dags import wait_for_dag
from test_ui import login

pytestmark = [pytest.mark.nats, pytest.mark.slow]

DAGS = '''
from datetime import datetime
from updraft import DAG, Asset, task

orders = Asset(name="orders", uri="s3://lake/orders")

with DAG("e2e_orders_producer", schedule=None, start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    @task(outlets=[orders])
    def write():
        pass

    write()

with DAG("e2e_orders_consumer", schedule=[orders], start_date=datetime(2024, 1, 1),
         is_paused_upon_creation=False):
    @task
    def read():
        pass

    read()
'''


def consumer_runs() -> list[str]:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel

    with session_scope() as session:
        return list(session.scalars(select(DagRunModel.run_id).where(
            DagRunModel.dag_id == "e2e_orders_consumer").order_by(DagRunModel.id)))


def test_assets_pages(live_stack, browser, screenshot):
    from playwright.sync_api import expect

    (live_stack.dags_folder / "e2e_assets.py").write_text(DAGS)
    wait_for_dag("e2e_orders_consumer", 90)
    base = live_stack.base_url
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, base, "admin", live_stack.passwords["admin"])

    page.click("nav >> text=Assets")
    expect(page.locator("#asset-table")).to_contain_text("s3://lake/orders")
    graph = page.locator("svg#asset-graph")
    expect(graph.locator('a[data-kind="asset"]')).to_contain_text("orders")
    expect(graph.locator('a[data-col="2"]')).to_contain_text("e2e_orders_consumer")
    screenshot(page, "assets")

    page.click("#asset-table >> text=orders")
    expect(page.locator("#consumers")).to_contain_text("e2e_orders_consumer")
    page.fill("#record-event textarea[name=extra]", '{"file": "o-7.csv"}')
    page.click("#record-event button[type=submit]")
    expect(page.locator("body")).to_contain_text(re.compile(r"Recorded event \d+ of orders"))
    deadline = time.monotonic() + 60
    while not consumer_runs() and time.monotonic() < deadline:
        time.sleep(0.2)
    [run_id] = consumer_runs()
    page.reload()
    expect(page.locator("#event-table")).to_contain_text('"file": "o-7.csv"')
    screenshot(page, "asset")

    page.goto(f"{base}/dags/e2e_orders_consumer/runs/{run_id}")
    expect(page.locator("#triggering-events")).to_contain_text("o-7.csv")
    expect(page.locator("#triggering-events")).to_contain_text("orders")
    screenshot(page, "run-triggering-events")
    assert errors == []
