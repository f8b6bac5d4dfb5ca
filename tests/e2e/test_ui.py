"""The web UI in a real headless Chromium against a real stack (see conftest.py).

The scenario a person follows: log in, find a DAG, trigger it with conf from the generated
form (a refused value first), watch the graph turn green without reloading (SSE from NATS),
follow a task's live log, clear a task and watch it rerun as try 2, and, as a Viewer, see
no Trigger button and be refused with a 403 page. Each page visited is kept under test-output/screenshots/.
"""

from __future__ import annotations

import re

import pytest

pytestmark = [pytest.mark.nats, pytest.mark.slow]

TASKS = ("start", "work.slow", "work.check", "end")


def login(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dags.*"))


def node(page, task_id: str):
    return page.locator(f'svg.dag-graph .task-node[data-task-id="{task_id}"]')


def test_ui_scenario(live_stack, browser, screenshot):
    from playwright.sync_api import expect

    base = live_stack.base_url
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Log in and find the DAG with the search box.
    page.goto(f"{base}/dags")
    expect(page.locator("input[name=username]")).to_be_visible()
    screenshot(page, "login")
    login(page, base, "admin", live_stack.passwords["admin"])
    screenshot(page, "dag-list")
    page.fill("#dag-search", "e2e_d")
    page.press("#dag-search", "Enter")
    page.wait_for_url(re.compile(r".*search=e2e_d.*"))
    expect(page.locator("a.dag-link")).to_have_count(1)
    screenshot(page, "dag-list-search")
    page.click("a.dag-link:has-text('e2e_demo')")
    expect(page.locator("svg.dag-graph")).to_be_visible()
    expect(page.locator('g.group-box[data-group-id="work"]')).to_have_count(1)
    expect(page.locator("text.edge-label")).to_have_text("then")
    screenshot(page, "dag-graph-no-run")

    # Details render doc_md safely (the <script> in it is text, not markup).
    page.click("nav.tabs a:has-text('Details')")
    expect(page.locator("article.doc strong")).to_have_text("small")
    assert page.locator("article.doc script").count() == 0
    screenshot(page, "dag-details")
    page.click("nav.tabs a:has-text('Code')")
    expect(page.locator("pre.code")).to_contain_text("e2e_demo")
    screenshot(page, "dag-code")

    # The trigger form comes from the params; a value out of range is refused with the reason.
    page.click("#trigger-button")
    expect(page.locator("#param-rows")).to_have_attribute("max", "10")
    expect(page.locator("#param-mode option")).to_have_count(2)
    page.fill("#param-rows", "50")
    page.click("#trigger-submit")
    expect(page.locator(".field-error")).to_contain_text("50 is greater than the maximum of 10")
    screenshot(page, "trigger-form-refused")
    page.fill("#param-rows", "3")
    page.select_option("#param-mode", "full")
    page.click("details summary")
    page.fill("#conf", '{"source": "e2e"}')
    screenshot(page, "trigger-form")
    page.click("#trigger-submit")
    page.wait_for_url(re.compile(r".*/dags/e2e_demo/graph\?run_id=.*"))
    expect(page.locator(".flash-success")).to_contain_text("Triggered e2e_demo")
    run_id = page.locator("#graph").get_attribute("data-run-id")
    assert run_id

    # From here on the page is never reloaded: a marker on window would vanish if it were.
    page.evaluate("window.__not_reloaded = true")
    expect(page.locator("#live-status")).to_have_text("live", timeout=15000)
    expect(node(page, "work.slow")).to_have_class(re.compile(r"state-running"), timeout=30000)
    screenshot(page, "dag-graph-running")

    # A second tab follows the running task's log as it is written.
    log_page = context.new_page()
    log_page.goto(f"{base}/dags/e2e_demo/runs/{run_id}/tasks/work.slow")
    expect(log_page.locator("#live-badge")).to_be_visible()
    expect(log_page.locator("#log")).to_contain_text("working line 2 of 8", timeout=15000)
    screenshot(log_page, "task-live-log-running")
    expect(log_page.locator("#log")).to_contain_text("working line 8 of 8", timeout=30000)
    expect(log_page.locator("#log")).to_have_attribute("data-ended", re.compile(".+"),
                                                       timeout=30000)
    screenshot(log_page, "task-live-log-ended")

    # Back on the first tab: every task turned green through server-sent events.
    for task_id in TASKS:
        expect(node(page, task_id)).to_have_class(re.compile(r"state-success"), timeout=60000)
    expect(page.locator(f'.run-state[data-run-id="{run_id}"]')).to_have_class(
        re.compile("state-success"), timeout=30000)
    assert page.evaluate("window.__not_reloaded === true"), "the graph page was reloaded"
    screenshot(page, "dag-graph-success")

    # Collapsing the task group redraws the graph in place.
    page.click('a.group-toggle[data-group-id="work"] >> nth=0')
    expect(page.locator('svg.dag-graph .group-node[data-group-id="work"]')).to_have_class(
        re.compile("state-success"))
    screenshot(page, "dag-graph-group-collapsed")

    page.click("nav.tabs a:has-text('Grid')")
    expect(page.locator(f'.cell[data-run-id="{run_id}"].state-success')).to_have_count(4)
    screenshot(page, "dag-grid")
    page.click("nav.tabs a:has-text('Durations')")
    expect(page.locator("svg.chart")).to_be_visible()
    screenshot(page, "dag-durations")

    # Clear one task: the scheduler runs it again as try 2, and the page shows it live.
    page.goto(f"{base}/dags/e2e_demo/runs/{run_id}/tasks/end")
    expect(page.locator("#ti-try")).to_have_text("try 1")
    expect(page.locator("#log")).to_contain_text("conf=")
    expect(page.locator("#log")).to_contain_text("'source': 'e2e'")
    page.click("#ti-clear")  # the dialog previews what the clear changes, then confirms
    page.click("#action-confirm-button")
    expect(page.locator(".flash-success")).to_contain_text("Cleared")
    page.evaluate("window.__not_reloaded = true")
    expect(page.locator("#ti-try")).to_have_text("try 2", timeout=30000)
    expect(page.locator("#ti-state")).to_have_class(re.compile("state-success"), timeout=30000)
    assert page.evaluate("window.__not_reloaded === true")
    screenshot(page, "task-instance-cleared-live")
    page.reload()
    expect(page.locator("#tries tbody tr")).to_have_count(2)
    screenshot(page, "task-instance-try-2")

    page.goto(f"{base}/dags/e2e_demo/runs/{run_id}")
    expect(page.locator("#ti-table tbody tr")).to_have_count(4)
    screenshot(page, "run")
    for path, name in (("/health", "health"), ("/audit", "audit-log"), ("/pools", "pools"),
                       ("/variables", "variables"), ("/connections", "connections"),
                       ("/xcoms", "xcoms"), ("/users", "users")):
        page.goto(base + path)
        assert page.locator("h1").first.is_visible()
        screenshot(page, name)
    context.close()
    assert not errors, f"JavaScript errors: {errors}"

    # A Viewer may look, sees no Trigger button, and the trigger page itself is refused
    # with a 403 page that says why.
    viewer = browser.new_context(viewport={"width": 1400, "height": 900})
    vpage = viewer.new_page()
    login(vpage, base, "viewer", live_stack.passwords["viewer"])
    vpage.goto(f"{base}/dags/e2e_demo/graph")
    expect(vpage.locator("svg.dag-graph")).to_be_visible()
    expect(vpage.locator("#trigger-button")).to_have_count(0)
    screenshot(vpage, "viewer-graph")
    vpage.goto(f"{base}/dags/e2e_demo/trigger")
    expect(vpage.locator("h1.error-status")).to_contain_text("403")
    expect(vpage.locator("p.reason")).to_contain_text("may not trigger DAG runs")
    screenshot(vpage, "viewer-trigger-403")
    viewer.close()
