"""Every node more than once, on one machine (issue 18): a three-server NATS cluster,
PostgreSQL, two ``updraft scheduler``s, two ``updraft web`` nodes, a ``dask scheduler`` and
three ``dask worker``s, each worker in a mount namespace where the DAGs folder is an empty
tmpfs (no shared disk for code: they fetch DAG bundle versions from the store).

A 1 -> 500 -> 1 DAG runs; half way one scheduler, one web node, one NATS server and one
Dask worker are killed (SIGKILL), a fourth Dask worker joins, and the DAG file is edited;
during the next run another worker leaves gracefully (SIGTERM). The run still ends in success
with the code it started with, each try recorded once; the next run, triggered through the
surviving web node's form with the CSRF token and session the killed node issued, runs the
new code.
"""

from __future__ import annotations

import json
import re
import secrets
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
import scheduler_helpers as h
import services
from dask_processes import DaskProcesses, can_hide_folders
from nats_cluster import NatsCluster

pytestmark = [pytest.mark.postgres, pytest.mark.nats, pytest.mark.slow,
              pytest.mark.timeout(900)]

BIN = Path(sys.executable).parent
WIDTH = 500

DAG = '''
import time
from datetime import datetime

from updraft import DAG, task

VERSION = {version!r}

with DAG("topology", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64):
    @task
    def start():
        return VERSION

    @task
    def work(i):
        time.sleep(0.05)
        return i

    @task
    def end(results):
        return f"{{VERSION}}:{{len(list(results))}}"

    start() >> (done := work.expand(i=list(range({width}))))
    end(done)
'''


@pytest.fixture
def topology(postgres_url, updraft_home, tmp_path, monkeypatch):
    from updraft.config import conf
    from updraft.store.migrate import migrate

    if not can_hide_folders():
        reason = "unshare --mount does not work here (it needs root)"
        if services.in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    migrate(postgres_url)
    services.empty_store(postgres_url)
    nats = NatsCluster(tmp_path / "nats").start()
    dags = tmp_path / "dags"
    dags.mkdir()
    env = {name: value for name, value in h.FAST_SETTINGS.items()
           if not name.startswith("UPDRAFT__DASK__")}
    from cryptography.fernet import Fernet

    env.update({
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__PARALLELISM": "24",
        "UPDRAFT__CORE__EXECUTOR": "dask",
        "UPDRAFT__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "UPDRAFT__NATS__SERVERS": nats.servers,
        "UPDRAFT__NATS__SUBJECT_PREFIX": f"topo{secrets.token_hex(4)}",
        "UPDRAFT__WEB__SECRET_KEY": secrets.token_hex(32),
        "UPDRAFT__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "5",
        "UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD": "30",
    })
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    cluster = DaskProcesses(tmp_path / "dask", h.cli_env(), threads=4, hide_dags=dags)
    (tmp_path / "dask").mkdir()
    processes: dict[str, subprocess.Popen] = {}
    try:
        address = cluster.start_scheduler()
        monkeypatch.setenv("UPDRAFT__DASK__SCHEDULER_ADDRESS", address)
        for _ in range(3):
            cluster.add_worker()
        cluster.wait_workers(3)
        yield {"dags": dags, "nats": nats, "cluster": cluster, "processes": processes,
               "tmp": tmp_path}
    finally:
        for name, process in processes.items():
            if process.poll() is None:
                h.kill_group(process, signal.SIGTERM)
        cluster.stop()
        nats.stop()


def start_node(topology: dict, name: str, *args: str) -> subprocess.Popen:
    log = topology["tmp"] / f"{name}.log"
    with open(log, "ab") as handle:
        process = subprocess.Popen([str(BIN / "updraft"), *args], env=h.cli_env(),
                                   stdout=handle, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    topology["processes"][name] = process
    return process


def wait_http(url: str, timeout: float = 60.0) -> None:
    h.wait_for(lambda: _answers(url), timeout, what=f"{url} to answer")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def progress(run_id: str) -> Counter:
    """How many task instances of the run are in each state (mapped copies counted)."""
    from sqlalchemy import func, select

    from updraft.store.models import TaskInstanceModel

    with h.session() as s:
        return Counter(dict(s.execute(select(TaskInstanceModel.state, func.count()).where(
            TaskInstanceModel.dag_id == "topology", TaskInstanceModel.run_id == run_id)
            .group_by(TaskInstanceModel.state)).all()))


def workers_used(run_id: str) -> set[str]:
    """The Dask workers that ran the run's work tasks (their last tries)."""
    from sqlalchemy import select

    from updraft.store.models import TaskInstanceModel

    with h.session() as s:
        return set(s.scalars(select(TaskInstanceModel.worker).where(
            TaskInstanceModel.dag_id == "topology", TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == "work")))


def said(run_id: str) -> str:
    from sqlalchemy import select

    from updraft.store.models import XComModel

    with h.session() as s:
        value = s.scalar(select(XComModel.value).where(
            XComModel.dag_id == "topology", XComModel.run_id == run_id,
            XComModel.task_id == "end", XComModel.key == "return_value"))
    return json.loads(value)


def tries_recorded_once(run_id: str) -> Counter:
    """Every task instance succeeded and each (task, map index, try) has one try row;
    returns how the earlier tries ended."""
    from sqlalchemy import select

    from updraft.store.models import TaskInstanceModel, TaskInstanceTry

    with h.session() as s:
        tis = s.execute(select(TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                               TaskInstanceModel.state, TaskInstanceModel.try_number).where(
            TaskInstanceModel.dag_id == "topology",
            TaskInstanceModel.run_id == run_id)).all()
        rows = s.execute(select(TaskInstanceTry.task_id, TaskInstanceTry.map_index,
                                TaskInstanceTry.try_number, TaskInstanceTry.state).where(
            TaskInstanceTry.dag_id == "topology", TaskInstanceTry.run_id == run_id)).all()
    assert len(tis) == WIDTH + 2
    assert {t.state for t in tis} == {"success"}, Counter(t.state for t in tis)
    keys = Counter((r.task_id, r.map_index, r.try_number) for r in rows)
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]
    for t in tis:
        numbers = sorted(n for (task, index, n) in keys if (task, index) == (
            t.task_id, t.map_index))
        assert numbers == list(range(1, t.try_number + 1)), (t.task_id, t.map_index, numbers)
    return Counter(r.state for r in rows if r.state != "success")


def test_every_node_more_than_once(topology):
    from updraft.store.bundles import latest_bundle_version

    dags, nats, cluster = topology["dags"], topology["nats"], topology["cluster"]
    h.write_dag(dags, "topology", DAG.format(version="A", width=WIDTH))
    scheduler_a = start_node(topology, "scheduler-a", "scheduler")
    start_node(topology, "scheduler-b", "scheduler")
    ports = [services.free_port(), services.free_port()]
    web_a = start_node(topology, "web-a", "web", "--port", str(ports[0]))
    start_node(topology, "web-b", "web", "--port", str(ports[1]))
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    for url in urls:
        wait_http(url + "/login")
    h.wait_parsed("topology", timeout=120)
    version_a = h.wait_for(lambda: _latest(latest_bundle_version), what="bundle A")

    # A session and a CSRF token issued by web A (an admin user made in the store).
    from updraft.store.engine import session_scope
    from web.auth.users import create_user

    with session_scope() as s:
        create_user(s, "admin", "correct horse battery", "Admin", email="a@example.com")
    browser = requests.Session()
    page = browser.get(urls[0] + "/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    browser.post(urls[0] + "/login", data={"username": "admin", "password":
                                           "correct horse battery", "csrf_token": token})
    form = browser.get(urls[0] + "/dags/topology/trigger").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)

    first = h.trigger("topology")
    h.wait_for(lambda: progress(first)["success"] >= WIDTH // 5, timeout=300,
               what="a fifth of the run to be done", describe=lambda: progress(first))
    # Half way: one of each node dies, and the code changes.
    h.kill_group(scheduler_a, signal.SIGKILL)
    h.kill_group(web_a, signal.SIGKILL)
    nats.kill(0)
    cluster.kill_worker("w1", signal.SIGKILL)
    cluster.add_worker()  # w4 joins mid-run, fetches the bundle and takes tries
    h.write_dag(dags, "topology", DAG.format(version="B", width=WIDTH))
    version_b = h.wait_for(lambda: (v := _latest(latest_bundle_version)) != version_a and v,
                           timeout=120, what="bundle B (recorded by the surviving scheduler)")
    assert h.wait_run("topology", first, timeout=600) == "success", progress(first)
    lost = tries_recorded_once(first)
    assert set(lost) <= {"up_for_retry"}, lost
    assert said(first) == f"A:{WIDTH}"

    # Web B accepts web A's session and CSRF token; its trigger goes over the NATS cluster
    # (one server down) to the surviving scheduler.
    response = browser.post(urls[1] + "/dags/topology/trigger",
                            data={"csrf_token": csrf, "run_id": "after_the_edit"},
                            allow_redirects=False)
    assert response.status_code == 302, response.text[-2000:]
    # A worker leaves gracefully (SIGTERM: as a scale-down) while this run is under way.
    h.wait_for(lambda: progress("after_the_edit")["success"] >= WIDTH // 5, timeout=300,
               what="a fifth of the second run", describe=lambda: progress("after_the_edit"))
    cluster.kill_worker("w2", signal.SIGTERM)
    assert h.wait_run("topology", "after_the_edit", timeout=600) == "success", \
        progress("after_the_edit")
    lost = tries_recorded_once("after_the_edit")
    assert set(lost) <= {"up_for_retry"}, lost
    assert said("after_the_edit") == f"B:{WIDTH}"
    assert {"w3", "w4"} <= workers_used("after_the_edit") <= {"w2", "w3", "w4"}
    runs = {r.run_id: r.bundle_version for r in h.runs("topology")}
    assert runs == {first: version_a, "after_the_edit": version_b}


def _latest(latest_bundle_version):
    with h.session() as s:
        return latest_bundle_version(s)
