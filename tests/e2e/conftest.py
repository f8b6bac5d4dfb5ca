"""Fixtures of the browser tests: Chromium (Debian's, driven by Playwright) and a real stack.

``live_stack`` starts what ``updraft standalone`` starts, in this process: a SQLite store, a
real Scheduler (sequential executor) with its bus node, and the web app served by waitress
on a free 127.0.0.1 port, against the session's NATS server (``nats_url``) under a subject
prefix of its own so no other scheduler on that server answers its commands.

Chromium is never installed by the tests: without ``/usr/bin/chromium`` they skip with the
reason on a laptop and FAIL under ``CI=true`` (``.ci/install-browser`` installs it).
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import services

CHROMIUM = os.environ.get("UPDRAFT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


def _no_browser(reason: str):
    message = f"browser tests need Chromium: {reason}. Install it with `bash .ci/install-browser` " \
              "(apt-get install -y chromium)"
    if services.in_ci():
        pytest.fail(message + " (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium launched by Playwright."""
    if not Path(CHROMIUM).exists():
        _no_browser(f"{CHROMIUM} does not exist")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _no_browser(f"the playwright package is missing ({exc})")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshot():
    """``screenshot(page, name)`` keeps a full-page PNG under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    counter = iter(range(1, 1000))

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{next(counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@dataclass
class Stack:
    base_url: str
    dags_folder: Path
    passwords: dict[str, str]


@pytest.fixture
def live_stack(updraft_home, nats_url, monkeypatch):
    """Store + scheduler + bus + web on 127.0.0.1, with the e2e DAG folder."""
    import e2e_dags

    dags = updraft_home / "dags"
    dags.mkdir()
    (dags / "e2e_demo.py").write_text(e2e_dags.SOURCE)
    env = {
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__EXECUTOR": "sequential",
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__NATS__SERVERS": nats_url,
        "UPDRAFT__NATS__SUBJECT_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "UPDRAFT__SCHEDULER__RECONCILE_INTERVAL": "1",
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "2",
        "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "2",
        "UPDRAFT__SCHEDULER__METRICS_PORT": "0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from updraft.config import conf

    conf.reload()
    from bus.connection import close_shared_bus
    from bus.node import start_scheduler_bus
    from executors import get_executor
    from scheduler.core import Scheduler
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from web.auth.users import create_user

    close_shared_bus()
    migrate(conf.sql_alchemy_conn())
    passwords = {"admin": "admin-e2e-pass", "viewer": "viewer-e2e-pass"}
    with session_scope() as session:
        create_user(session, "admin", passwords["admin"], "Admin")
        create_user(session, "viewer", passwords["viewer"], "Viewer")

    scheduler = Scheduler(get_executor("sequential"), dags_folder=str(dags))
    node = start_scheduler_bus(scheduler, wait=5.0)
    thread = threading.Thread(target=scheduler.run, name="e2e-scheduler", daemon=True)
    thread.start()

    from waitress.server import create_server

    from web.app import create_app

    app = create_app({"UPDRAFT_SSE_MAX": 24})
    server = create_server(app, host="127.0.0.1", port=0, threads=32, ident="updraft-e2e")
    web_thread = threading.Thread(target=server.run, name="e2e-web", daemon=True)
    web_thread.start()
    base_url = f"http://127.0.0.1:{server.effective_port}"
    e2e_dags.wait_for_dag("e2e_demo", timeout=60)
    try:
        yield Stack(base_url, dags, passwords)
    finally:
        server.close()
        scheduler.stop()
        thread.join(30)
        if node is not None:
            node.stop()
        close_shared_bus()


