"""Versioned DAG bundles (issue 18, ADR 12): a run keeps the code it was created with.

The DAG processor records the DAGs folder (the DAG file and the module it imports from the
folder) as a content-addressed version; each run records its version; its tries execute
that version, fetched by hash from the store. The DAG file and its helper module are edited
while a run waits at a gate: that run's last task still returns the old code's value, the
next run the new one. With ``[core] run_version_policy = latest`` the waiting run takes the
new code (ADR 5's behaviour). A NATS queue worker in a mount namespace where the DAGs folder
is an empty tmpfs runs the tries of a pinned run: it has no DAGs folder at all.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import scheduler_helpers as h
from web_helpers import app, tokens, web_env  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

DAG = '''
import os
import time
from datetime import datetime

from updraft import DAG, task
from greeting import WORD

GATE = {gate!r}

with DAG("pinned", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def wait():
        while not os.path.exists(GATE):
            time.sleep(0.05)

    @task
    def say():
        return WORD + "-{mark}"

    wait() >> say()
'''


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    return dags


def write_version(dags: Path, gate: Path, word: str, mark: str) -> None:
    h.write_dag(dags, "greeting", f"WORD = {word!r}\n")
    h.write_dag(dags, "pinned", DAG.format(gate=str(gate), mark=mark))


def latest_version() -> str | None:
    from updraft.store.bundles import latest_bundle_version

    with h.session() as s:
        return latest_bundle_version(s)


def run_version(run_id: str) -> str | None:
    return next(r.bundle_version for r in h.runs("pinned") if r.run_id == run_id)


def said(run_id: str) -> str:
    from sqlalchemy import select

    from updraft.store.models import XComModel

    with h.session() as s:
        value = s.scalar(select(XComModel.value).where(
            XComModel.dag_id == "pinned", XComModel.run_id == run_id,
            XComModel.task_id == "say", XComModel.key == "return_value"))
    return json.loads(value)


def edit_mid_run(dags: Path, gate: Path) -> tuple[str, str, str, str]:
    """Run 1 waits at the gate; the code changes; run 2 starts; the gate opens. Returns
    (run 1, its version, run 2, its version)."""
    h.wait_parsed("pinned")
    first_version = h.wait_for(latest_version, what="the first bundle version")
    first = h.trigger("pinned")
    h.wait_for(lambda: h.states("pinned", first).get("wait", ("",))[0] == "running",
               what="run 1 to wait at the gate")
    write_version(dags, gate, "two", "B")
    second_version = h.wait_for(lambda: (v := latest_version()) != first_version and v,
                                what="the edited folder's bundle version")
    second = h.trigger("pinned")
    gate.touch()
    assert h.wait_run("pinned", first) == "success"
    assert h.wait_run("pinned", second) == "success"
    return first, first_version, second, second_version


def test_a_run_keeps_its_code_when_the_folder_changes(env, tmp_path):
    gate = tmp_path / "gate"
    write_version(env, gate, "one", "A")
    with h.running_scheduler(env, "local", parallelism=4):
        first, v1, second, v2 = edit_mid_run(env, gate)
    assert run_version(first) == v1 and run_version(second) == v2
    assert said(first) == "one-A"
    assert said(second) == "two-B"


def test_policy_latest_follows_the_newest_code(env, tmp_path, monkeypatch):
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__CORE__RUN_VERSION_POLICY", "latest")
    conf.reload()
    gate = tmp_path / "gate"
    write_version(env, gate, "one", "A")
    with h.running_scheduler(env, "local", parallelism=4):
        first, v1, second, _v2 = edit_mid_run(env, gate)
    assert run_version(first) == v1  # recorded, not followed
    assert said(first) == "two-B"
    assert said(second) == "two-B"


def can_unshare() -> str | None:
    """Why a mount namespace cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"unshare --mount: {probe.stderr.strip()}"


@pytest.mark.nats
def test_a_worker_with_no_dags_folder_fetches_the_runs_code(env, tmp_path, nats_url,
                                                             monkeypatch):
    from updraft.config import conf

    why = can_unshare()
    if why:
        import services

        message = f"cannot hide the DAGs folder from the worker: {why}"
        if services.in_ci():
            pytest.fail(message + " (CI=true: this check must run)", pytrace=False)
        pytest.skip(message)
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", nats_url)
    monkeypatch.setenv("UPDRAFT__NATS__SUBJECT_PREFIX", f"bundle{secrets.token_hex(4)}")
    conf.reload()
    gate = tmp_path / "gate"
    write_version(env, gate, "one", "A")
    worker_home = tmp_path / "worker_home"
    worker_home.mkdir()
    log_path = tmp_path / "worker.log"
    updraft = str(Path(sys.executable).with_name("updraft"))
    # The worker's own namespace: an empty tmpfs over the DAGs folder, its own cache.
    script = f'mount -t tmpfs none "{env}" && exec "{updraft}" worker'
    with open(log_path, "ab") as handle:
        worker = subprocess.Popen(
            ["unshare", "--mount", "sh", "-c", script], cwd=worker_home,
            env=h.cli_env(UPDRAFT__CORE__BUNDLE_CACHE_FOLDER=str(worker_home / "cache")),
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with h.running_scheduler(env, "nats_queue", parallelism=4):
            first, v1, second, v2 = edit_mid_run(env, gate)
    finally:
        h.kill_group(worker, signal.SIGTERM)
    assert said(first) == "one-A" and said(second) == "two-B", log_path.read_text()[-3000:]
    hosts = {r.hostname for r in h.try_rows("pinned")}
    assert len(hosts) == 1
    cached = sorted(p.name for p in (worker_home / "cache").iterdir()
                    if not p.name.startswith("."))
    assert cached == sorted([v1, v2])


@pytest.mark.nats
def test_the_api_and_the_ui_show_each_runs_code(web_env, app, tokens, tmp_path):  # noqa: F811
    from web_helpers import bearer, login

    gate = tmp_path / "gate"
    write_version(web_env, gate, "one", "A")
    with h.running_scheduler(web_env, "local", parallelism=4):
        first, v1, second, v2 = edit_mid_run(web_env, gate)
    client = app.test_client()
    token = tokens["Viewer"]
    run = client.get(f"/api/v1/dags/pinned/dagRuns/{first}", headers=bearer(token)).get_json()
    assert run["bundle_version"] == v1
    bundle = client.get(f"/api/v1/dagBundles/{v1}", headers=bearer(token)).get_json()
    assert [f["path"] for f in bundle["files"]] == ["greeting.py", "pinned.py"]
    helper = client.get(f"/api/v1/dagBundles/{v1}/files/greeting.py",
                        headers=bearer(token)).get_json()
    assert helper["content"] == "WORD = 'one'\n"
    newer = client.get(f"/api/v1/dagBundles/{v2}/files/greeting.py", headers=bearer(token))
    assert newer.get_json()["content"] == "WORD = 'two'\n"
    assert client.get(f"/api/v1/dagBundles/{v1}/files/nope.py",
                      headers=bearer(token)).status_code == 404
    login(client, "viewer")
    page = client.get(f"/dags/pinned/runs/{first}").get_data(as_text=True)
    assert f"/bundles/{v1}" in page
    code = client.get(f"/bundles/{v1}/files/pinned.py").get_data(as_text=True)
    assert "return WORD + &#34;-A&#34;" in code or 'return WORD + "-A"' in code


SHRINKING = '''
import os
import time
from datetime import datetime

from updraft import DAG, task
from updraft.operators.empty import EmptyOperator

with DAG("shrinking", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def first():
        while not os.path.exists({gate!r}):
            time.sleep(0.05)

    first() >> [EmptyOperator(task_id="kept"){gone}]
'''


def test_a_pinned_run_keeps_its_graph(env, tmp_path):
    """The graph is pinned with the code: a task removed from the file mid-run still runs in
    the run created before (ADR 12); the next run does not have it."""
    gate = tmp_path / "gate"
    body = SHRINKING.replace("{gate!r}", repr(str(gate)))
    h.write_dag(env, "shrinking", body.replace("{gone}", ', EmptyOperator(task_id="gone")'))
    with h.running_scheduler(env, "local", parallelism=2) as scheduler:
        old = h.wait_parsed("shrinking")
        first = h.trigger("shrinking")
        h.wait_for(lambda: h.states("shrinking", first)["first"][0] == "running",
                   what="first to run")
        h.write_dag(env, "shrinking", body.replace("{gone}", ""))
        new = h.wait_parsed("shrinking", hash_not=old.dag_hash)
        h.wait_scheduler_sees(scheduler, "shrinking", new.dag_hash)
        h.wait_for(lambda: latest_version() != run_version_of("shrinking", first),
                   what="the new bundle version")
        second = h.trigger("shrinking")
        gate.touch()
        assert h.wait_run("shrinking", first) == "success"
        assert h.wait_run("shrinking", second) == "success"
    assert h.states("shrinking", first) == {"first": ("success", 1), "kept": ("success", 1),
                                            "gone": ("success", 1)}
    assert h.states("shrinking", second) == {"first": ("success", 1), "kept": ("success", 1)}


def run_version_of(dag_id: str, run_id: str) -> str | None:
    return next(r.bundle_version for r in h.runs(dag_id) if r.run_id == run_id)
