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
def session_page(seeded, browser, request):
    """A logged-in Admin page, watched for errors."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})
    watch = Watch(prefix=request.node.name.removeprefix("test_"))
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
    page.keyboard.press("ArrowRight")  # the keys move through the grid
    expect(page.locator("#side-panel .meta")).to_contain_text("seed_35")
    page.keyboard.press("ArrowDown")
    expect(page.locator("#side-panel h3")).to_contain_text("end")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#side-panel .meta")).to_contain_text("seed_34")
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


def test_gantt_and_calendar(session_page):
    from playwright.sync_api import expect

    base, page, watch = session_page
    # A failed run: its check task's two tries side by side, queued time before each bar.
    page.goto(f"{base}/dags/e2e_demo/gantt?run_id=seed_34")
    expect(page.locator("#gantt-svg")).to_be_visible()
    expect(page.locator(".gantt-bar")).to_have_count(4)
    expect(page.locator('.gantt-bar[data-task-id="work.check"]')).to_have_count(2)
    expect(page.locator('.gantt-bar[data-task-id="work.check"] rect.bar.state-failed')).to_have_count(2)
    assert page.locator("rect.gantt-queued").count() >= 3
    watch.shot(page, "gantt-failed-run")
    page.click('.gantt-bar[data-task-id="work.check"][data-try="1"]')
    page.wait_for_url(re.compile(r".*/tasks/work.check.*try=1"))
    expect(page.locator("#log")).to_contain_text("try one failed")

    # The calendar: a year of days, each the colour of its worst run.
    page.goto(f"{base}/dags/e2e_demo/calendar")
    expect(page.locator("#calendar-year")).to_have_text("2025")
    expect(page.locator("svg.calendar rect.day")).to_have_count(365)
    expect(page.locator('rect.day[data-date="2025-01-07"]')).to_have_class(
        re.compile("state-failed"))
    expect(page.locator("rect.day.state-success")).to_have_count(35)
    expect(page.locator("rect.day.state-failed")).to_have_count(5)
    watch.shot(page, "calendar")
    page.click("#calendar-prev")
    expect(page.locator("#calendar-year")).to_have_text("2024")
    expect(page.locator("rect.day.empty")).to_have_count(366)
    page.click("#calendar-next")
    # A day opens the grid on its run, with the run in the side panel.
    page.click('rect.day[data-date="2025-01-14"]')
    expect(page.locator("#side-panel h3")).to_contain_text("run seed_13")
    watch.shot(page, "calendar-day-to-grid")

    # The Gantt of a run under way redraws itself as its tries start and end.
    page.goto(f"{base}/dags/e2e_demo/trigger")
    page.click("#trigger-submit")
    page.wait_for_url(re.compile(r".*run_id=.*"))
    page.click("nav.tabs a:has-text('Gantt')")
    expect(page.locator("#live-status")).to_have_text("live", timeout=15000)
    expect(page.locator('.gantt-bar[data-task-id="work.slow"]')).to_have_count(1, timeout=30000)
    watch.shot(page, "gantt-live-running")
    expect(page.locator('.gantt-bar[data-task-id="end"] rect.state-success')).to_have_count(
        1, timeout=60000)
    watch.shot(page, "gantt-live-finished")
    watch.check()


MARKER_DAGS = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator
from updraft.sensors.external_task import ExternalTaskMarker

with DAG("e2e_parent", schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False,
         is_paused_upon_creation=True):
    EmptyOperator(task_id="prepare") >> ExternalTaskMarker(
        task_id="mark_child", external_dag_id="e2e_child", external_task_id="consume")

with DAG("e2e_child", schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False,
         is_paused_upon_creation=True):
    EmptyOperator(task_id="consume") >> EmptyOperator(task_id="report")
'''


def _finished_run(dag_id: str, tasks: list[str]) -> None:
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, TaskInstanceModel
    from ui_seed import FIRST_DAY

    with session_scope() as session:
        session.add(DagRunModel(dag_id=dag_id, run_id="seed_marker", state="success",
                                run_type="scheduled", logical_date=FIRST_DAY,
                                queued_at=FIRST_DAY, start_date=FIRST_DAY, end_date=FIRST_DAY))
        for t in tasks:
            session.add(TaskInstanceModel(dag_id=dag_id, run_id="seed_marker", task_id=t,
                                          map_index=-1, state="success", try_number=1,
                                          start_date=FIRST_DAY, end_date=FIRST_DAY,
                                          duration=0.1))


def test_clear_and_mark_preview(session_page, seeded):
    from playwright.sync_api import expect

    from e2e_dags import wait_for_dag

    base, page, watch = session_page
    # Clear from the grid's panel: the dialog lists what changes and follows the options.
    page.goto(f"{base}/dags/e2e_demo/grid")
    page.click('.cell[data-run-id="seed_34"][data-task-id="work.check"]')
    page.click("#side-panel #action-clear")
    dialog = page.locator("dialog#action-dialog")

    def preview(rows: int) -> None:
        """The preview of the options as they stand: each change fetches one, and two in a
        row can answer in any order, so wait until the newest is shown (data-loading gone),
        then count its rows (two option sets can have the same count)."""
        expect(dialog).not_to_have_attribute("data-loading", "1", timeout=15_000)
        expect(dialog.locator("#action-rows tbody tr")).to_have_count(rows)

    expect(dialog).to_be_visible()
    preview(1)
    page.check("#opt-downstream")
    preview(2)
    page.check("#opt-future")
    preview(12)
    expect(dialog.locator("#action-count")).to_contain_text("12 task instance(s)")
    watch.shot(page, "clear-dialog-future-downstream")
    page.uncheck("#opt-future")
    page.check("#opt-upstream")
    preview(4)
    page.uncheck("#opt-upstream")
    page.check("#opt-only_failed")
    preview(2)  # failed + upstream_failed
    expect(page.locator("#opt-only_failed")).to_be_checked()
    page.click("#action-cancel")
    expect(dialog).to_be_hidden()

    # Mark failed with downstream, from a task instance's page: preview, then confirm.
    page.goto(f"{base}/dags/e2e_demo/runs/seed_22/tasks/work.slow")
    page.click("#ti-mark-failed")
    preview(1)
    page.check("#opt-downstream")
    preview(3)
    page.check("#opt-past")
    preview(3 * 23 - 3)  # 3 checks failed
    page.uncheck("#opt-past")
    preview(3)
    watch.shot(page, "mark-failed-dialog")
    page.click("#action-confirm-button")
    expect(page.locator(".flash-success")).to_contain_text("Marked failed: 3 task instance(s)")
    page.goto(f"{base}/dags/e2e_demo/grid")
    for task_id in ("work.slow", "work.check", "end"):
        expect(page.locator(f'.cell[data-run-id="seed_22"][data-task-id="{task_id}"]')
               ).to_have_class(re.compile("state-failed"))
    expect(page.locator('.cell[data-run-id="seed_22"][data-task-id="start"]')).to_have_class(
        re.compile("state-success"))

    # A whole run: the run page's Clear lists its task instances; confirming sends it.
    page.goto(f"{base}/dags/e2e_demo/runs/seed_10")
    page.click("#run-clear")
    expect(dialog.locator("#action-rows tbody tr")).to_have_count(4)
    watch.shot(page, "clear-run-dialog")
    page.click("#action-confirm-button")
    expect(page.locator(".flash-success")).to_contain_text("Cleared 4 task instance(s)")

    # Recursive: a clear follows ExternalTaskMarker into the other DAG's run of that date.
    (seeded.dags_folder / "e2e_marker.py").write_text(MARKER_DAGS)
    wait_for_dag("e2e_parent", timeout=60)
    wait_for_dag("e2e_child", timeout=60)
    _finished_run("e2e_parent", ["prepare", "mark_child"])
    _finished_run("e2e_child", ["consume", "report"])
    page.goto(f"{base}/dags/e2e_parent/runs/seed_marker/confirm?action=clear&task_id=prepare"
              "&downstream=true")
    expect(page.locator("#action-rows tbody tr")).to_have_count(2)
    page.check("#opt-recursive")
    page.click("#preview-refresh")
    expect(page.locator("#action-rows tbody tr")).to_have_count(4)
    expect(page.locator("#action-count")).to_contain_text("in 2 DAGs")
    watch.shot(page, "clear-recursive-page")
    watch.check()


def test_log_viewer(session_page):
    from playwright.sync_api import expect

    from ui_seed import LOG_LINES

    base, page, watch = session_page
    page.goto(f"{base}/dags/e2e_demo/runs/seed_34/tasks/work.check")
    lines = page.locator("#log .log-line")
    expect(lines).to_have_count(len(LOG_LINES))
    expect(page.locator("#L1 .ln")).to_have_attribute("href", "#L1")
    expect(page.locator(f"#L{len(LOG_LINES)}")).to_contain_text('<img src=x onerror=')
    assert page.evaluate("window.__xss === undefined"), "markup in a log ran"
    watch.shot(page, "log")

    # Each try's log is one click away.
    expect(page.locator(".try-tabs .try-tab")).to_have_count(2)
    page.click('.try-tab[data-try="1"]')
    expect(page.locator("#log")).to_contain_text("try one failed")
    expect(lines).to_have_count(2)
    expect(page.locator("#L2")).to_have_class(re.compile("lvl-error"))
    page.click('.try-tab[data-try="2"]')
    expect(lines).to_have_count(len(LOG_LINES))

    # Search, with next / previous through the matches.
    page.fill("#log-search", "needle")
    expect(page.locator("#log-matches")).to_have_text("1 of 1")
    expect(page.locator(".log-line.current-match")).to_contain_text("third partition")
    page.fill("#log-search", "working line 1")
    expect(page.locator("#log-matches")).to_have_text(re.compile(r"^1 of \d+$"))
    page.click("#log-next")
    expect(page.locator("#log-matches")).to_have_text(re.compile(r"^2 of \d+$"))
    watch.shot(page, "log-search")
    page.fill("#log-search", "")

    # The level filter keeps the chosen level and worse.
    page.select_option("#log-level", "warning")
    expect(page.locator("#log .log-line:visible")).to_have_count(2)
    page.select_option("#log-level", "error")
    expect(page.locator("#log .log-line:visible")).to_have_count(1)
    watch.shot(page, "log-errors-only")
    page.select_option("#log-level", "debug")
    expect(page.locator("#log .log-line:visible")).to_have_count(len(LOG_LINES))

    # Wrap toggles; the end is one click away; a link to a line opens on that line.
    page.uncheck("#log-wrap")
    expect(page.locator("#log")).not_to_have_class(re.compile(r"\bwrap\b"))
    page.check("#log-wrap")
    page.click("#log-end")
    expect(page.locator(f"#L{len(LOG_LINES)}")).to_be_in_viewport()
    page.goto(f"{base}/dags/e2e_demo/runs/seed_34/tasks/work.check?try=2#L60")
    expect(page.locator("#L60")).to_be_in_viewport()
    assert page.evaluate("document.querySelector(':target').id") == "L60"
    watch.shot(page, "log-line-link")

    # A running try's log streams in as numbered lines.
    page.goto(f"{base}/dags/e2e_demo/trigger")
    page.click("#trigger-submit")
    page.wait_for_url(re.compile(r".*run_id=.*"))
    from urllib.parse import unquote

    run_id = unquote(page.url.split("run_id=")[1])
    page.goto(f"{base}/dags/e2e_demo/grid")
    expect(page.locator(f'.cell[data-run-id="{run_id}"][data-task-id="work.slow"]')
           ).to_have_class(re.compile("state-running"), timeout=30000)
    page.goto(f"{base}/dags/e2e_demo/runs/{run_id}/tasks/work.slow")
    expect(page.locator("#log")).to_contain_text("working line 3 of 8", timeout=20000)
    page.fill("#log-search", "working line")
    expect(page.locator("#log")).to_have_attribute("data-ended", re.compile(".+"), timeout=30000)
    expect(page.locator("#log .log-line.match")).to_have_count(8)
    assert page.evaluate("window.__xss === undefined")
    numbers = page.eval_on_selector_all("#log .log-line", "els => els.map(e => e.id)")
    assert numbers == [f"L{i}" for i in range(1, len(numbers) + 1)], numbers
    watch.shot(page, "log-live-ended")
    watch.check()


def test_runs_list_events_and_dag_list(session_page):
    from playwright.sync_api import expect

    base, page, watch = session_page
    # The DAG list: last run with its time, failed runs one click away, filters and sorting.
    page.goto(f"{base}/dags")
    row = page.locator('.dag-table tr[data-dag-id="e2e_demo"]')
    expect(row.locator(".last-run .badge")).to_have_text("success")
    expect(row.locator(".last-run a").first).to_have_text("2025-02-09 06:00:02")
    expect(row.locator(".failed-runs")).to_have_text("5 failed")
    watch.shot(page, "dag-list")
    page.select_option("#last-state-filter", "failed")
    page.click("#dag-filter")
    expect(page.locator(".dag-table tr[data-dag-id]")).to_have_count(0)
    page.select_option("#last-state-filter", "success")
    page.select_option("#dag-sort", "last_run")
    page.click("#dag-filter")
    expect(page.locator(".dag-table tr[data-dag-id]")).to_have_count(1)
    page.goto(f"{base}/dags")
    row.locator(".failed-runs").click()
    page.wait_for_url(re.compile(r".*/dags/e2e_demo/runs\?state=failed"))
    expect(page.locator("#runs-table tbody tr")).to_have_count(5)
    watch.shot(page, "runs-failed")

    # The Runs tab: state, type, date and run id filters.
    page.goto(f"{base}/dags/e2e_demo/runs")
    expect(page.locator("#runs-table tbody tr")).to_have_count(40)
    page.select_option("#filter-type", "manual")
    page.click("#filter-apply")
    expect(page.locator("#runs-table .empty")).to_have_count(1)
    page.goto(f"{base}/dags/e2e_demo/runs")
    page.fill("#filter-start", "2025-01-01")
    page.fill("#filter-end", "2025-01-10")
    page.click("#filter-apply")
    expect(page.locator("#runs-table tbody tr")).to_have_count(10)
    expect(page.locator("#runs-count")).to_have_text("10 run(s)")
    watch.shot(page, "runs-date-filter")
    page.goto(f"{base}/dags/e2e_demo/runs?search=seed_3")
    expect(page.locator("#runs-table tbody tr")).to_have_count(10)
    page.goto(f"{base}/runs?dag_id=e2e_d&state=failed")
    expect(page.locator("#runs-table tbody tr")).to_have_count(5)
    watch.shot(page, "all-runs")

    # The DAG list follows a run started elsewhere without a reload.
    page.goto(f"{base}/dags")
    expect(page.locator("#dag-list-live")).to_have_text("live", timeout=15000)
    page.evaluate("window.__not_reloaded = true")
    other = page.context.new_page()
    other.goto(f"{base}/dags/e2e_demo/trigger")
    other.click("#trigger-submit")
    other.wait_for_url(re.compile(r".*run_id=.*"))
    other.close()
    expect(row.locator(".last-run .badge")).to_have_text(re.compile("queued|running"),
                                                           timeout=30000)
    watch.shot(page, "dag-list-live-running")
    expect(row.locator(".last-run .badge")).to_have_text("success", timeout=60000)
    assert page.evaluate("window.__not_reloaded === true"), "the DAG list was reloaded"

    # The Events tab: this DAG's part of the audit log (the trigger, by whom).
    page.goto(f"{base}/dags/e2e_demo/events")
    expect(page.locator("#events-table tbody tr").first).to_contain_text("admin")
    expect(page.locator("#event-filter option")).not_to_have_count(1)
    watch.shot(page, "dag-events")
    watch.check()


def test_dark_mode_and_time_zone(session_page, seeded):
    from playwright.sync_api import expect

    base, page, watch = session_page
    page.goto(f"{base}/dags/e2e_demo/runs/seed_39")
    expect(page.locator(".kv").first).to_contain_text("2025-02-09 06:00:00")  # UTC at first
    expect(page.locator("#tz-picker")).to_have_value("UTC")

    # A named zone: every time on every page follows it, and the picker says which.
    page.select_option("#tz-picker", "Asia/Tokyo")
    page.wait_for_load_state("load")
    expect(page.locator("#tz-picker")).to_have_value("Asia/Tokyo")
    expect(page.locator(".kv").first).to_contain_text("2025-02-09 15:00:00")
    page.goto(f"{base}/dags/e2e_demo/grid")
    expect(page.locator(".run-date").last).to_have_text("02-09 15:00")
    watch.shot(page, "grid-tokyo-time")

    # Dark mode: the toggle cycles auto -> light -> dark, at once and for the next pages.
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.click("#theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(14, 19, 28)"
    page.click('.cell[data-run-id="seed_34"][data-task-id="work.check"]')
    expect(page.locator("#side-panel")).to_be_visible()
    watch.shot(page, "grid-dark")
    for path, name in (("/dags/e2e_demo/graph?run_id=seed_34", "graph-dark"),
                       ("/dags/e2e_demo/gantt?run_id=seed_34", "gantt-dark"),
                       ("/dags/e2e_demo/calendar", "calendar-dark"),
                       ("/dags", "dag-list-dark"),
                       ("/dags/e2e_demo/runs/seed_34/tasks/work.check", "task-dark")):
        page.goto(base + path)
        watch.shot(page, name)

    # "My browser's zone" takes the browser's own.
    from test_ui import login

    other = page.context.browser.new_context(timezone_id="America/New_York",
                                             viewport={"width": 1400, "height": 900})
    watch.attach(other)
    tab = other.new_page()
    login(tab, base, "admin", seeded.passwords["admin"])
    tab.goto(f"{base}/dags/e2e_demo/runs/seed_39")
    tab.select_option("#tz-picker", "local")
    tab.wait_for_load_state("load")
    expect(tab.locator("#tz-picker")).to_have_value("America/New_York")
    expect(tab.locator(".kv").first).to_contain_text("2025-02-09 01:00:00")
    other.close()
    watch.check()


def test_admin_pages(session_page, monkeypatch, tmp_path):
    import json

    from playwright.sync_api import expect

    base, page, watch = session_page
    # Variables: add, search, edit in place, export, import (a masked value is kept).
    page.goto(f"{base}/variables")
    for key, value in (("lake_path", "s3://lake"), ("lake_token", "t0ps3cret"),
                       ("other", "x")):
        page.fill("form.stack input[name=key]", key)
        page.fill("form.stack textarea[name=val]", value)
        page.click("form.stack button[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text(f"Variable {key} saved")
    expect(page.locator('tr[data-key="lake_token"] .variable-value')).to_have_text("***")
    page.fill("#variable-search", "lake")
    page.press("#variable-search", "Enter")
    expect(page.locator("#variables-table tbody tr")).to_have_count(2)
    page.click('tr[data-key="lake_path"] a:has-text("edit")')
    expect(page.locator("#variable-edit textarea[name=val]")).to_have_value("s3://lake")
    page.fill("#variable-edit textarea[name=val]", "s3://lake/v2")
    page.fill("#variable-edit input[name=description]", "where the lake is")
    watch.shot(page, "variable-edit-in-place")
    page.click("#variable-edit-save")
    expect(page.locator('tr[data-key="lake_path"] .variable-value')).to_have_text("s3://lake/v2")
    expect(page.locator("#variables-table tbody tr")).to_have_count(2)  # still searching
    page.click('tr[data-key="lake_token"] a:has-text("edit")')
    page.fill("#variable-edit input[name=description]", "kept secret")
    page.click("#variable-edit-save")  # the value left empty: the stored secret stays
    with page.expect_download() as download:
        page.click("#variables-export")
    exported = json.loads(open(download.value.path()).read())
    assert exported["lake_path"] == {"value": "s3://lake/v2", "description": "where the lake is"}
    assert exported["lake_token"] == {"value": "***", "description": "kept secret"}
    exported["imported_one"] = "hello"
    exported["other"] = {"value": "y", "description": "changed by import"}
    upload = tmp_path / "vars.json"
    upload.write_text(json.dumps(exported))
    page.goto(f"{base}/variables")
    page.set_input_files("#import-file", str(upload))
    page.click("#import-submit")
    expect(page.locator(".flash-success")).to_contain_text("Imported 3 variable(s)")
    expect(page.locator(".flash-success")).to_contain_text("masked one(s): lake_token")
    expect(page.locator('tr[data-key="imported_one"] .variable-value')).to_have_text("hello")
    expect(page.locator('tr[data-key="other"] .variable-value')).to_have_text("y")
    watch.shot(page, "variables")
    from updraft.models.variable import Variable

    assert Variable.get("lake_token") == "t0ps3cret"

    # Connections: testing is off unless the web node allows it; then it says what happened.
    page.goto(f"{base}/connections")
    for conn_id, conn_type, host, port, extra in (
            ("lake_db", "sqlite", str(tmp_path / "lake.db"), "", ""),
            ("nothing_there", "http", "127.0.0.1", "1", '{"verify": false}')):
        page.fill("form.stack input[name=conn_id]", conn_id)
        page.fill("form.stack input[name=conn_type]", conn_type)
        page.fill("form.stack input[name=host]", host)
        page.fill("form.stack input[name=port]", port)
        page.fill("form.stack textarea[name=extra]", extra)
        page.click("form.stack button[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text(f"Connection {conn_id} saved")
    page.click('tr:has-text("lake_db") button.connection-test')
    expect(page.locator(".flash-error")).to_contain_text("Testing connections is off")
    monkeypatch.setenv("UPDRAFT_UI_TEST_CONNECTION", "true")
    page.click('tr:has-text("lake_db") button.connection-test')
    expect(page.locator(".flash-success")).to_contain_text("Connection lake_db: works")
    watch.shot(page, "connection-test-ok")
    page.click('tr:has-text("nothing_there") button.connection-test')
    expect(page.locator(".flash-error")).to_contain_text("Connection nothing_there: failed")
    watch.shot(page, "connection-test-failed")
    # The extra survives an edit that leaves it empty.
    page.click('tr:has-text("nothing_there") a:has-text("edit")')
    page.fill("form.stack input[name=host]", "localhost")
    page.click("form.stack button[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Connection nothing_there saved")
    from updraft.store.engine import session_scope
    from web import crud

    with session_scope() as session:
        shown_conn = crud.get_connection(session, "nothing_there")
    assert shown_conn["host"] == "localhost" and "verify" in str(shown_conn["extra"])

    # Pools: usage (running, queued, deferred, open) and a warning for a pool with no slots.
    page.goto(f"{base}/pools")
    page.fill("form.stack input[name=pool]", "tiny")
    page.fill("form.stack input[name=slots]", "0")
    page.click("form.stack button[type=submit]")
    expect(page.locator('tr[data-pool="tiny"] .badge')).to_have_text("no slots")
    expect(page.locator('tr[data-pool="default_pool"] meter')).to_have_count(1)
    watch.shot(page, "pools")
    # The two failed tests above answer 302 with a flash, never a 4xx/5xx.
    watch.check()


def test_graph_zoom_and_run_overlay(session_page):
    from playwright.sync_api import expect

    base, page, watch = session_page
    page.goto(f"{base}/dags/e2e_demo/graph")
    graph = page.locator("#graph")
    expect(page.locator("#run-strip .run-chip")).to_have_count(25)
    expect(page.locator("#run-strip .run-chip.current")).to_have_attribute("data-run-id",
                                                                            "seed_39")
    check = page.locator('svg.dag-graph .task-node[data-task-id="work.check"]')
    expect(check).to_have_class(re.compile("state-success"))
    page.evaluate("window.__not_reloaded = true")

    # Stepping through runs recolours the graph in place (here to a failed run).
    for _ in range(5):  # quicker than the SVGs come back: each step counts from the last asked
        page.click("#run-prev")
    expect(graph).to_have_attribute("data-run-id", "seed_34", timeout=15_000)
    expect(graph).not_to_have_attribute("data-loading", re.compile("."))
    expect(check).to_have_class(re.compile("state-failed"))
    expect(page.locator('svg.dag-graph .task-node[data-task-id="end"]')).to_have_class(
        re.compile("state-upstream_failed"))
    assert "run_id=seed_34" in page.url
    expect(page.locator("#run-select")).to_have_value("seed_34")
    watch.shot(page, "graph-run-overlay-failed")
    page.keyboard.press("ArrowRight")
    expect(graph).to_have_attribute("data-run-id", "seed_35")
    expect(check).to_have_class(re.compile("state-success"))
    page.click('#run-strip .run-chip[data-run-id="seed_20"]')
    expect(check).to_have_class(re.compile("state-failed"))
    # The node links follow the chosen run.
    assert "/runs/seed_20/" in check.evaluate("e => e.closest('a').getAttribute('href')")
    assert page.evaluate("window.__not_reloaded === true")

    # Zoom in, out, fit, actual size; the zoom survives a group collapse.
    svg = page.locator("svg.dag-graph")
    width = float(svg.get_attribute("width"))
    page.click("#zoom-in")
    expect(page.locator("#zoom-level")).to_have_text("125%")
    assert float(svg.get_attribute("width")) > width
    page.click("#zoom-out")
    page.click("#zoom-out")
    expect(page.locator("#zoom-level")).to_have_text("80%")
    page.click('a.group-toggle[data-group-id="work"] >> nth=0')
    expect(page.locator('svg.dag-graph .group-node[data-group-id="work"]')).to_have_class(
        re.compile("state-failed"))
    expect(page.locator("#zoom-level")).to_have_text("80%")
    page.click("#zoom-fit")
    fitted = float(page.locator("svg.dag-graph").get_attribute("width"))
    holder = page.locator("#svg-holder").evaluate("e => e.clientWidth")
    assert fitted <= holder
    watch.shot(page, "graph-fit")
    page.click("#zoom-reset")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    watch.check()


def test_home_dashboard(session_page, seeded):
    from datetime import UTC, datetime, timedelta

    from playwright.sync_api import expect

    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, TaskInstanceModel

    base, page, watch = session_page
    now = datetime.now(UTC)
    with session_scope() as session:  # a run that failed an hour ago
        session.add(DagRunModel(dag_id="e2e_demo", run_id="failed_recently", state="failed",
                                run_type="manual", logical_date=now - timedelta(hours=1),
                                queued_at=now - timedelta(hours=1),
                                start_date=now - timedelta(hours=1),
                                end_date=now - timedelta(minutes=55)))
        session.add(TaskInstanceModel(dag_id="e2e_demo", run_id="failed_recently",
                                      task_id="work.check", map_index=-1, state="failed",
                                      try_number=1, start_date=now - timedelta(minutes=56),
                                      end_date=now - timedelta(minutes=55), duration=60.0))
    (seeded.dags_folder / "broken.py").write_text("from updraft import DAG\nimport nowhere_to_be_found\n")
    page.goto(f"{base}/home")
    expect(page.locator("#dash-failed tbody tr")).to_have_count(1)
    expect(page.locator("#dash-failed")).to_contain_text("e2e_demo.work.check")
    expect(page.locator("#run-totals")).to_contain_text("failed")
    expect(page.locator("#dash-health tr[data-node]").first).to_contain_text("alive")
    expect(page.locator('#dash-pools tr:has-text("default_pool") meter')).to_have_count(1)
    expect(page.locator("#runs-chart rect.state-failed")).to_have_count(1)
    for _ in range(30):  # the scheduler parses the broken file within a few seconds
        if "broken.py" in page.locator("#dash-errors").inner_text():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(page.locator("#dash-errors")).to_contain_text("broken.py")
    expect(page.locator("#home-live")).to_have_text("live", timeout=15000)
    watch.shot(page, "home")

    # A run started elsewhere shows up without a reload.
    page.evaluate("window.__not_reloaded = true")
    other = page.context.new_page()
    other.goto(f"{base}/dags/e2e_demo/trigger")
    other.click("#trigger-submit")
    other.wait_for_url(re.compile(r".*run_id=.*"))
    other.close()
    expect(page.locator("#run-totals")).to_contain_text(re.compile("queued|running|success"),
                                                        timeout=30000)
    expect(page.locator("#runs-chart rect.state-success")).to_have_count(1, timeout=60000)
    assert page.evaluate("window.__not_reloaded === true")
    watch.shot(page, "home-after-run")
    watch.check()


def test_why_not_running(session_page):
    from urllib.parse import unquote

    from playwright.sync_api import expect

    base, page, watch = session_page
    # The example: default_pool at 0 slots, and nothing ran without saying why.
    page.goto(f"{base}/pools")
    page.fill("form.stack input[name=pool]", "default_pool")
    page.fill("form.stack input[name=slots]", "0")
    page.click("form.stack button[type=submit]")
    expect(page.locator('tr[data-pool="default_pool"] .badge')).to_have_text("no slots")
    page.goto(f"{base}/dags/e2e_demo/trigger")
    page.click("#trigger-submit")
    page.wait_for_url(re.compile(r".*run_id=.*"))
    run_id = unquote(page.url.split("run_id=")[1])
    start = f"{base}/dags/e2e_demo/runs/{run_id}/tasks/start"
    page.goto(start)
    reason = page.locator('#why-not li[data-check="pool"]')
    for _ in range(20):  # the run starts and its first task is scheduled within seconds
        if reason.count():
            break
        page.wait_for_timeout(500)
        page.reload()
    expect(reason).to_contain_text("pool 'default_pool' has 0 slots")
    # Recorded by the scheduler as it held the task back, not worked out by the page.
    expect(reason).to_have_attribute("data-recorded", "true")
    expect(reason).to_contain_text("recorded by the scheduler since")
    watch.shot(page, "why-not-pool-empty")
    page.goto(f"{base}/dags/e2e_demo/runs/{run_id}/tasks/end")
    expect(page.locator('#why-not li[data-check="dependencies"]')).to_contain_text(
        "waits for its upstream tasks")

    # The same reasons in the grid's panel and in the API.
    page.goto(f"{base}/dags/e2e_demo/grid")
    page.click(f'.cell[data-run-id="{run_id}"][data-task-id="start"]')
    expect(page.locator('#side-panel #why-not li[data-check="pool"]')).to_be_visible()
    watch.shot(page, "why-not-panel")
    answer = page.request.get(f"{base}/api/v1/dags/e2e_demo/dagRuns/{run_id}/taskInstances/"
                              "start/dependencies")
    assert answer.ok, answer.status
    body = answer.json()
    assert body["state"] == "scheduled"
    assert any(d["name"] == "pool" and "0 slots" in d["reason"] and d["recorded_by_scheduler"]
               and d["since"] for d in body["dependencies"])

    # Give the pool slots back: the run goes on and the reasons go away.
    page.goto(f"{base}/pools")
    page.fill("form.stack input[name=pool]", "default_pool")
    page.fill("form.stack input[name=slots]", "128")
    page.click("form.stack button[type=submit]")
    page.goto(f"{base}/dags/e2e_demo/runs/{run_id}")
    expect(page.locator(f'.run-state[data-run-id="{run_id}"]')).to_have_class(
        re.compile("state-success"), timeout=60000)
    page.goto(start)
    expect(page.locator("#why-not")).to_have_count(0)
    watch.check()
