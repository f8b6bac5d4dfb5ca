"""Issue 16, item 9, in a real headless Chromium against a real stack (see conftest.py): a
backfill from the UI with its preview and live progress, notes on runs and task instances,
and DAG delete (the file stays, so the DAG comes back without its history). A Viewer sees
none of these actions and is refused if it posts them; a post without the CSRF token is
refused. Every page is watched for JavaScript errors and 4xx/5xx answers; screenshots go to
tests/e2e/screenshots/ (git-ignored)."""

from __future__ import annotations

import re

import pytest
from e2e_dags import wait_for_dag
from test_ui import login
from ui_seed import Watch

pytestmark = [pytest.mark.nats, pytest.mark.slow]

DAILY = '''
"""A paused daily DAG for the backfill walkthrough."""
import time
from datetime import datetime

from updraft import DAG, task

with DAG("e2e_daily", schedule="@daily", start_date=datetime(2025, 1, 1), catchup=False,
         tags=["e2e"], is_paused_upon_creation=True) as dag:

    @task
    def extract():
        time.sleep(0.5)
        return 1

    @task
    def load(value):
        time.sleep(0.5)
        print(f"loaded {value}")

    load(extract())
'''

RUN_IDS = [f"backfill__2025-01-0{d}T00:00:00+00:00" for d in (1, 2, 3)]


def _runs(dag_id: str) -> dict[str, str]:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel

    with session_scope() as session:
        return dict(session.execute(select(DagRunModel.run_id, DagRunModel.state).where(
            DagRunModel.dag_id == dag_id)).all())


@pytest.fixture
def stack(live_stack):
    (live_stack.dags_folder / "e2e_daily.py").write_text(DAILY)
    wait_for_dag("e2e_daily", timeout=60)
    return live_stack


def test_backfill_notes_and_dag_delete(stack, browser):
    from playwright.sync_api import expect

    base = stack.base_url
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    watch = Watch(prefix="actions")
    watch.attach(context)
    page = context.new_page()
    login(page, base, "admin", stack.passwords["admin"])

    # Backfill: the form on the DAG's page, a preview of the runs, then the runs and their
    # progress, live, until all are over. The DAG is paused: backfill runs start anyway.
    page.goto(f"{base}/dags/e2e_daily/grid")
    page.click("#backfill-button")
    expect(page.locator("#backfill-form")).to_be_visible()
    expect(page.locator("#backfill-empty")).to_be_visible()
    page.fill("#backfill-start", "2025-01-01")
    page.fill("#backfill-end", "2025-01-03")
    page.click("#backfill-preview")
    plan = page.locator("#backfill-plan tbody tr")
    expect(plan).to_have_count(3)
    expect(plan.first).to_contain_text(RUN_IDS[0])
    expect(plan.first).to_contain_text("created")
    watch.shot(page, "backfill-preview")
    assert _runs("e2e_daily") == {}, "a preview creates nothing"

    page.click("#backfill-run")
    expect(page.locator(".flash-success")).to_contain_text("3 of 3 run(s) created")
    expect(page.locator("#backfill-runs tbody tr")).to_have_count(3)
    assert "start_date=2025-01-01" in page.url and "end_date=2025-01-03" in page.url
    watch.shot(page, "backfill-running")
    expect(page.locator("#backfill-status")).to_have_text("done", timeout=120_000)
    expect(page.locator("#backfill-counts")).to_contain_text("6 of 6 task instances done")
    expect(page.locator("#backfill-runs .badge.state-success")).to_have_count(3)
    watch.shot(page, "backfill-done")
    assert _runs("e2e_daily") == {r: "success" for r in RUN_IDS}

    # A second backfill of the same range keeps the runs unless asked to replace them.
    page.fill("#backfill-start", "2025-01-01")
    page.fill("#backfill-end", "2025-01-03")
    page.click("#backfill-preview")
    expect(page.locator("#backfill-plan tbody tr").first).to_contain_text("exists: kept")

    # The API shows the same progress.
    progress = context.request.get(f"{base}/api/v1/dags/e2e_daily/backfill").json()
    assert progress["finished"] and progress["done"] == progress["total"] == 6

    # A run's note: added, shown, kept in the API, edited away.
    run_id = RUN_IDS[1]
    page.goto(f"{base}/dags/e2e_daily/runs/{run_id}")
    expect(page.locator("#note-text")).to_have_count(0)
    page.click("#note-edit summary")
    page.fill("#note-input", "Re-run after the upstream fix.\n<b>not bold</b>")
    page.click("#note-save")
    expect(page.locator(".flash-success")).to_contain_text(f"Note of run {run_id} saved")
    expect(page.locator("#note-text")).to_contain_text("<b>not bold</b>")
    watch.shot(page, "run-note")
    run = context.request.get(f"{base}/api/v1/dags/e2e_daily/dagRuns/{run_id}").json()
    assert run["note"] == "Re-run after the upstream fix.\n<b>not bold</b>"
    # The grid's side panel shows the run's note too.
    page.goto(f"{base}/dags/e2e_daily/grid")
    page.click(f'.run-bar[data-run-id="{run_id}"]')
    expect(page.locator("#side-panel")).to_contain_text("Re-run after the upstream fix.")

    # A task instance's note.
    page.goto(f"{base}/dags/e2e_daily/runs/{run_id}/tasks/load")
    page.click("#note-edit summary")
    page.fill("#note-input", "Loaded twice: checked, harmless.")
    page.click("#note-save")
    expect(page.locator(".flash-success")).to_contain_text("Note of load saved")
    expect(page.locator("#note-text")).to_have_text("Loaded twice: checked, harmless.")
    watch.shot(page, "ti-note")
    ti = context.request.get(
        f"{base}/api/v1/dags/e2e_daily/dagRuns/{run_id}/taskInstances/load").json()
    assert ti["note"] == "Loaded twice: checked, harmless."
    page.goto(f"{base}/dags/e2e_daily/grid")
    page.click(f'.cell[data-run-id="{run_id}"][data-task-id="load"]')
    expect(page.locator("#side-panel .note-cell")).to_have_text("Loaded twice: checked, harmless.")
    page.goto(f"{base}/dags/e2e_daily/runs/{run_id}/tasks/load")
    page.click("#note-edit summary")
    page.click("#note-remove")
    expect(page.locator(".flash-success")).to_contain_text("Note of load removed")
    expect(page.locator("#note-text")).to_have_count(0)

    # A Viewer sees no action, and its posts are refused (403) even with the CSRF token.
    viewer_context = browser.new_context(viewport={"width": 1400, "height": 950})
    viewer_watch = Watch(prefix="actions-viewer")
    viewer_watch.attach(viewer_context)
    viewer = viewer_context.new_page()
    login(viewer, base, "viewer", stack.passwords["viewer"])
    viewer.goto(f"{base}/dags/e2e_daily/runs/{run_id}")
    expect(viewer.locator("#note-text")).to_contain_text("Re-run after the upstream fix.")
    expect(viewer.locator("#note-form")).to_have_count(0)
    expect(viewer.locator("#dag-delete")).to_have_count(0)
    viewer.goto(f"{base}/dags/e2e_daily/grid")
    expect(viewer.locator("#backfill-button")).to_have_count(0)
    expect(viewer.locator("#dag-delete")).to_have_count(0)
    viewer_watch.shot(viewer, "viewer-dag-page")
    viewer_watch.check()
    token = viewer.locator("input[name=csrf_token]").first.get_attribute("value")
    for path, form in [(f"/dags/e2e_daily/runs/{run_id}/note", {"note": "viewer was here"}),
                       ("/dags/e2e_daily/delete", {}),
                       ("/dags/e2e_daily/backfill", {"start_date": "2025-01-04",
                                                     "end_date": "2025-01-05",
                                                     "action": "run"})]:
        answer = viewer_context.request.post(f"{base}{path}",
                                             form=dict(form, csrf_token=token),
                                             max_redirects=0)
        assert answer.status == 403, (path, answer.status)
    viewer_context.close()
    assert _runs("e2e_daily")[run_id] == "success"
    # Without the CSRF token even an Admin's post is refused.
    answer = context.request.post(f"{base}/dags/e2e_daily/delete", form={}, max_redirects=0)
    assert answer.status == 400
    assert len(_runs("e2e_daily")) == 3

    # Delete the DAG: asked first, then its runs are gone and it is back from its file,
    # without its history.
    page.goto(f"{base}/dags/e2e_daily/grid")
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.click("#dag-delete")
    page.wait_for_url(re.compile(r".*/dags(\?.*)?$"))
    assert questions and "Its file stays" in questions[0]
    expect(page.locator(".flash-success")).to_contain_text("Deleted DAG e2e_daily: 3 run(s)")
    watch.shot(page, "dag-deleted")
    assert _runs("e2e_daily") == {}
    wait_for_dag("e2e_daily", timeout=60)
    page.goto(f"{base}/dags/e2e_daily/grid")
    expect(page.locator("h1")).to_contain_text("e2e_daily")
    watch.shot(page, "dag-back-from-its-file")
    assert _runs("e2e_daily") == {}
    context.close()
    watch.check()
