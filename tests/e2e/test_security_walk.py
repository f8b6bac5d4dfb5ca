"""A hostile walk through the UI in a real Chromium: markup planted wherever someone can put
text (a DAG file's tags, docs and params, a task's log and XCom, a run's conf, an import
error, variables, connections, pools, a user's email) never runs on any page, no page breaks
its own Content-Security-Policy, every resource loads (the favicon too), and a Viewer sees no
Trigger button and is refused the form.
"""

from __future__ import annotations

import re
import time

import pytest

pytestmark = [pytest.mark.nats, pytest.mark.slow]

XSS = '<img src=x onerror="window.__xss=1;alert(1)">'

HOSTILE_DAG = '''
from datetime import datetime
from updraft import DAG, Param, task

XSS = %r

with DAG("xss_dag", schedule=None, start_date=datetime(2024, 1, 1), tags=[XSS, "<script>"],
         is_paused_upon_creation=False, doc_md="# Docs " + XSS,
         params={"p": Param("x", type="string", description=XSS)}) as dag:

    @task(doc_md=XSS)
    def shout(dag_run=None):
        print("log line " + XSS)
        return {"xcom": XSS, "conf": dag_run.conf}

    shout()
''' % XSS

BROKEN_DAG = '''
from updraft import DAG  # a DAG file (the processor skips files that name no DAG)

raise ValueError(%r)
''' % XSS


def _plant(stack) -> str:
    """Write the hostile DAG files and rows; trigger a run and wait for it; its run id."""
    from updraft.models.connection import Connection, add_connection
    from updraft.models.variable import Variable
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, DagRunModel, ImportError_, PoolModel, UserModel

    (stack.dags_folder / "xss_dag.py").write_text(HOSTILE_DAG)
    (stack.dags_folder / "broken_xss.py").write_text(BROKEN_DAG)
    with session_scope() as session:
        Variable.set(XSS, XSS, description=XSS, session=session)
        add_connection(Connection(conn_id="xss", conn_type="http", host=XSS, description=XSS),
                       session=session)
        session.add(PoolModel(pool=XSS, slots=1, description=XSS))
        session.query(UserModel).filter_by(username="viewer").one().email = XSS + "@x.org"
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "the hostile DAG files were not parsed"
        with session_scope() as session:
            if session.get(DagModel, "xss_dag") is not None and \
                    session.query(ImportError_).count():
                break
        time.sleep(0.3)
    with session_scope() as session:
        run = trigger_dag_run(session, "xss_dag", conf={"c": XSS}, run_id="xss_run")
        run_id = run.run_id
    while time.monotonic() < deadline + 60:
        with session_scope() as session:
            state = session.query(DagRunModel.state).filter_by(run_id=run_id).scalar()
        if state in ("success", "failed"):
            assert state == "success"
            return run_id
        time.sleep(0.3)
    raise AssertionError("the hostile run did not finish")


def test_no_planted_markup_runs_and_no_page_breaks_its_policy(live_stack, browser, screenshot):
    from playwright.sync_api import expect

    run_id = _plant(live_stack)
    base = live_stack.base_url
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    dialogs, violations, missing, errors = [], [], [], []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{base}/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", live_stack.passwords["admin"])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/dags.*"))
    ti = f"/dags/xss_dag/runs/{run_id}/tasks/shout"
    for path in ("/dags", "/dags/xss_dag/graph", "/dags/xss_dag/grid",
                 "/dags/xss_dag/durations", "/dags/xss_dag/code", "/dags/xss_dag/details",
                 "/dags/xss_dag/trigger", f"/dags/xss_dag/runs/{run_id}", ti, f"{ti}?try=1",
                 "/xcoms", "/import-errors", "/audit", "/pools", "/variables",
                 "/connections", "/connections?edit=xss", "/users", "/health"):
        page.goto(base + path)
        expect(page.locator("h1").first).to_be_visible()
        page.wait_for_timeout(150)  # let an onerror fire, if one could
        assert page.evaluate("window.__xss === undefined"), f"markup ran on {path}"
    # The planted text is on the pages, as text.
    page.goto(base + ti)
    expect(page.locator("#log")).to_contain_text("log line <img src=x")
    screenshot(page, "hostile-task-instance")
    for path, where in (("/variables", "table.list"), ("/import-errors", "pre.error-text"),
                        ("/dags", "table.dag-table")):
        page.goto(base + path)
        expect(page.locator(where).first).to_contain_text("<img src=x onerror=")
    screenshot(page, "hostile-dag-list")
    assert not dialogs, f"a planted script opened a dialog: {dialogs}"
    assert not violations, f"pages broke their Content-Security-Policy: {violations[:3]}"
    assert not missing, f"resources missing (404): {missing}"
    assert not errors, f"JavaScript errors: {errors}"
    favicon = page.request.get(base + "/favicon.ico")
    assert favicon.status == 200 and favicon.headers["content-type"] == "image/x-icon"
    context.close()

    viewer = browser.new_context(viewport={"width": 1400, "height": 900})
    vpage = viewer.new_page()
    vpage.goto(f"{base}/login")
    vpage.fill("input[name=username]", "viewer")
    vpage.fill("input[name=password]", live_stack.passwords["viewer"])
    vpage.click("button[type=submit]")
    vpage.wait_for_url(re.compile(r".*/dags.*"))
    expect(vpage.locator("a.dag-link").first).to_be_visible()
    assert vpage.locator("text=Trigger").count() == 0
    vpage.goto(f"{base}/dags/xss_dag/graph")
    expect(vpage.locator("svg.dag-graph")).to_be_visible()
    expect(vpage.locator("#trigger-button")).to_have_count(0)
    response = vpage.goto(f"{base}/dags/xss_dag/trigger")
    assert response.status == 403
    viewer.close()
