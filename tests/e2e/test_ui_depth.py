"""The UI's depth in a real headless Chromium against a real stack (see conftest.py), item by
item of issue 16: the grid (dated run columns with bars scaled by duration, paging, folding
groups, the side panel, a new run appearing live), the Gantt and calendar views, clear and
mark with a preview, and the log viewer. Every page is watched for JavaScript errors and 4xx
or 5xx answers; screenshots go to tests/e2e/screenshots/ (git-ignored)."""

from __future__ import annotations

import re

import pytest
from test_ui import login
from ui_seed import Watch, seed_history

pytestmark = [pytest.mark.nats, pytest.mark.slow]


@pytest.fixture
def seeded(live_stack):
    """The stack with 40 finished runs of e2e_demo in its store."""
    seed_history(40)
    return live_stack


@pytest.fixture
def session_page(seeded, browser):
    """A logged-in Admin page, watched for errors."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    watch = Watch()
    watch.attach(context)
    page = context.new_page()
    login(page, seeded.base_url, "admin", seeded.passwords["admin"])
    yield seeded.base_url, page, watch
    context.close()


def test_grid(session_page):
    from playwright.sync_api import expect

    base, page, watch = session_page
    page.goto(f"{base}/dags/e2e_demo/grid")
    # 25 runs a page, newest right, with dates and bars scaled by duration.
    expect(page.locator("#grid-table .run-bar")).to_have_count(25)
    assert page.locator(".run-bar").last.get_attribute("data-run-id") == "seed_39"
    expect(page.locator(".run-date").last).to_have_text("02-09 06:00")
    heights = {page.locator(f'.run-bar[data-run-id="seed_{i}"]').evaluate(
        "e => e.getBoundingClientRect().height") for i in (30, 39)}
    assert len(heights) == 2, "runs of different durations have bars of different heights"
    expect(page.locator('.run-bar[data-run-id="seed_34"]')).to_have_class(
        re.compile("state-failed"))
    expect(page.locator("#grid-range")).to_have_text("runs 16–40 of 40")
    watch.shot(page, "grid")

    # Paging beyond 25 runs.
    page.click("#grid-older")
    expect(page.locator("#grid-range")).to_have_text("runs 1–15 of 40")
    expect(page.locator(".run-bar").first).to_have_attribute("data-run-id", "seed_00")
    watch.shot(page, "grid-older-page")
    page.click("#grid-newer")
    expect(page.locator("#grid-range")).to_have_text("runs 16–40 of 40")

    # The task group folds (and stays folded on the next visit).
    expect(page.locator('tr[data-row-id="work.slow"]')).to_be_visible()
    page.click('button.group-fold[data-group-id="work"]')
    expect(page.locator('tr[data-row-id="work.slow"]')).to_be_hidden()
    expect(page.locator('.group-cell[data-group-id="work"][data-run-id="seed_34"]')).to_have_class(
        re.compile("state-failed"))
    watch.shot(page, "grid-group-folded")
    page.reload()
    expect(page.locator('tr[data-row-id="work.slow"]')).to_be_hidden()
    page.click('button.group-fold[data-group-id="work"]')
    expect(page.locator('tr[data-row-id="work.check"]')).to_be_visible()

    # A click on a cell opens the side panel beside the grid, with each try's log a click away.
    page.click('.cell[data-run-id="seed_34"][data-task-id="work.check"]')
    expect(page.locator("#side-panel")).to_be_visible()
    expect(page.locator("#side-panel h3")).to_contain_text("work.check")
    expect(page.locator("#side-panel .try-log-link")).to_have_count(2)
    assert "/grid" in page.url, "the panel opens beside the grid, not instead of it"
    watch.shot(page, "grid-panel-task")
    page.click('.run-bar[data-run-id="seed_38"]')
    expect(page.locator("#side-panel h3")).to_contain_text("run seed_38")
    watch.shot(page, "grid-panel-run")
    page.click('.group-cell[data-group-id="work"][data-run-id="seed_38"]')
    expect(page.locator("#side-panel h3")).to_contain_text("group work")
    page.keyboard.press("Escape")
    expect(page.locator("#side-panel")).to_be_hidden()

    # 50 a page, then a run triggered elsewhere appears without a reload.
    page.goto(f"{base}/dags/e2e_demo/grid?limit=50")
    expect(page.locator("#grid-table .run-bar")).to_have_count(40)
    expect(page.locator("#live-status")).to_have_text("live", timeout=15000)
    page.evaluate("window.__not_reloaded = true")
    other = page.context.new_page()
    other.goto(f"{base}/dags/e2e_demo/trigger")
    other.click("#trigger-submit")
    other.wait_for_url(re.compile(r".*run_id=.*"))
    run_id = other.url.split("run_id=")[1]
    from urllib.parse import unquote

    run_id = unquote(run_id)
    other.close()
    expect(page.locator(f'.run-bar[data-run-id="{run_id}"]')).to_have_count(1, timeout=30000)
    expect(page.locator(f'.cell[data-run-id="{run_id}"][data-task-id="start"]')).to_have_class(
        re.compile("state-(running|success|queued)"), timeout=30000)
    watch.shot(page, "grid-new-run-live")
    expect(page.locator(f'.run-bar[data-run-id="{run_id}"]')).to_have_class(
        re.compile("state-success"), timeout=60000)
    assert page.evaluate("window.__not_reloaded === true"), "the grid page was reloaded"
    watch.shot(page, "grid-new-run-finished")
    watch.check()
