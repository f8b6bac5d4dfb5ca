"""The NATS queue executor and ``updraft worker`` against a real NATS server.

Each test gets its own subject prefix (so its own streams and consumers). The executor
conformance suite of ``test_executors.py`` runs here against ``nats_queue`` with one
in-process worker (2 slots); the rest runs ``updraft worker`` subprocesses: two workers
sharing a queue, a worker killed mid-try (redelivery rule of ``bus.worker``), queue routing
and live logs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import services
import test_executors as suite
from sqlalchemy import select

# The conformance suite of test_executors.py, collected here with this module's ``executor``
# fixture (and that module's ``store_url`` and ``dag`` fixtures).
store_url = suite.store_url
dag = suite.dag
queue_tries = suite.queue_tries
wait_events = suite.wait_events
test_outcomes_land_in_the_store = suite.test_outcomes_land_in_the_store
test_slots_and_running_follow_tries_in_flight = suite.test_slots_and_running_follow_tries_in_flight
test_cancel_stops_a_try_that_has_not_started = suite.test_cancel_stops_a_try_that_has_not_started
test_the_same_request_twice_runs_once = suite.test_the_same_request_twice_runs_once

pytestmark = pytest.mark.nats

UPDRAFT = str(Path(sys.executable).with_name("updraft"))


@pytest.fixture
def nats_env(nats_url, monkeypatch):
    """Point the configuration at the test NATS server, under a prefix of this test's own."""
    from updraft.config import conf

    prefix = f"t{uuid.uuid4().hex[:10]}"
    values = {"UPDRAFT__NATS__SERVERS": nats_url, "UPDRAFT__NATS__SUBJECT_PREFIX": prefix,
              "UPDRAFT__WORKER__ACK_WAIT": "3", "UPDRAFT__WORKER__MAX_DELIVER": "3",
              "UPDRAFT__WORKER__HEARTBEAT_INTERVAL": "1"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    yield values
    services.delete_nats_streams(nats_url, prefix)


class WorkerThread:
    """A ``bus.worker.Worker`` serving in a thread of the test process."""

    def __init__(self, **options):
        from bus.worker import Worker

        self.worker = Worker(**options)
        self.thread = threading.Thread(target=self.worker.run, name="test-worker", daemon=True)

    def __enter__(self):
        self.thread.start()
        assert self.worker.wait_ready(20), "the worker did not bind its consumers"
        return self.worker

    def __exit__(self, *exc_info):
        self.worker.stop()
        self.thread.join(30)


@pytest.fixture
def executor(nats_env, store_url):
    """The conformance suite's executor: nats_queue, parallelism 2, one worker with 2 slots."""
    from executors import get_executor

    with WorkerThread(queues=["default"], concurrency=2):
        executor = get_executor("nats_queue", parallelism=2)
        executor.start()
        yield executor
        executor.stop(wait=False)


# -- executor-specific -------------------------------------------------------------------------

def test_start_fails_fast_without_nats(monkeypatch, store_url):
    from bus.connection import BusUnavailable
    from executors import get_executor

    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", "nats://127.0.0.1:1")
    from updraft.config import conf

    conf.reload()
    executor = get_executor("nats_queue", parallelism=2, connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match="cannot reach NATS"):
        executor.start()
    assert time.monotonic() - started < 10


def test_waiting_without_worker_then_health(nats_env, store_url, dag):
    from executors import get_executor
    from executors.base import try_key

    with get_executor("nats_queue", parallelism=4) as executor:
        [hello] = queue_tries(store_url, dag, ["hello"])
        executor.submit([hello])
        time.sleep(0.5)
        assert executor.running() == {try_key(hello)} and executor.queue_depth() == 1
        with WorkerThread(queues=["default"], concurrency=1) as worker:
            [event] = wait_events(executor, 1)
            assert event.error is None and event.outcome.state == "success"
            assert event.worker == worker.node_id
            deadline = time.monotonic() + 10
            while not executor.health()["workers"] and time.monotonic() < deadline:
                time.sleep(0.2)
            health = executor.health()
        assert health["kind"] == "nats_queue" and health["connected"]
        assert [w["node_id"] for w in health["workers"]] == [worker.node_id]
        queue = health["queues"]["default"]
        assert queue["messages"] == 0 and queue["ack_pending"] == 0
        assert queue["max_deliver"] == 3
    from updraft.store.engine import session_scope
    from updraft.store.models import NodeModel

    with session_scope() as session:
        node = session.get(NodeModel, worker.node_id)
        assert node.kind == "worker" and node.state == "stopped"


# -- updraft worker subprocesses under a scheduler -----------------------------------------------

SCHEDULED_DAGS = '''
import os
import time
from datetime import datetime, timedelta

from updraft import DAG, task

START = datetime(2024, 1, 1)

with DAG("nq_many", schedule=None, start_date=START, max_active_tasks=64):
    @task
    def many(i):
        return i

    many.expand(i=list(range(20)))

with DAG("nq_slow", schedule=None, start_date=START):
    @task(retries=1, retry_delay=timedelta(seconds=0))
    def slow_once():
        marker = os.environ["NQ_MARKER_DIR"]
        open(os.path.join(marker, f"started-{os.getpid()}"), "w").close()
        time.sleep(float(os.environ.get("NQ_SLOW_SECONDS", "6")))
        return "done"

    slow_once()

with DAG("nq_special", schedule=None, start_date=START):
    @task(queue="special")
    def special():
        return os.environ.get("NQ_WORKER_NAME")

    special()

with DAG("nq_chatty", schedule=None, start_date=START):
    @task
    def chatty():
        go = os.environ["NQ_CHATTY_GO"]  # the test's follower is attached
        for i in range(30):
            if i == 10:
                deadline = time.monotonic() + 120
                while not os.path.exists(go) and time.monotonic() < deadline:
                    time.sleep(0.05)
            print(f"line {i}", flush=True)
            time.sleep(0.2)

    chatty()
'''


def _start_worker(log_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    handle = open(log_path, "ab")  # noqa: SIM115  (the child keeps it)
    process = subprocess.Popen([UPDRAFT, "worker", *args], env=env, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    return process


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int | None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(10)


@pytest.fixture
def cluster(nats_env, store_url, tmp_path, monkeypatch):
    """A DAG folder, a scheduler (in a thread) with the nats_queue executor, worker starter."""
    import scheduler_helpers as sh

    for name, value in sh.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    # The scheduler's own zombie check is slow here, so the worker's redelivery rule acts.
    monkeypatch.setenv("UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD", "600")
    from updraft.config import conf

    conf.reload()
    folder = tmp_path / "dags"
    sh.write_dag(folder, "nq_suite", SCHEDULED_DAGS)
    markers = tmp_path / "markers"
    markers.mkdir()
    env = sh.cli_env(UPDRAFT__CORE__DAGS_FOLDER=str(folder), NQ_MARKER_DIR=str(markers),
                     NQ_CHATTY_GO=str(tmp_path / "chatty.go"),
                     UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL="0.3",
                     UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD="1.5")
    processes: list[subprocess.Popen] = []

    class Cluster:
        dags_folder = folder
        marker_dir = markers
        chatty_go = tmp_path / "chatty.go"
        helpers = sh

        @staticmethod
        def worker(name: str, *args: str, **extra: str) -> subprocess.Popen:
            process = _start_worker(tmp_path / f"{name}.log",
                                    {**env, "NQ_WORKER_NAME": name, **extra},
                                    "--node-id", name, *args)
            processes.append(process)
            return process

        @staticmethod
        def log(name: str) -> str:
            path = tmp_path / f"{name}.log"
            return path.read_text(errors="replace") if path.exists() else ""

    from executors import get_executor

    with sh.running_scheduler(folder, get_executor("nats_queue", parallelism=8),
                              url=store_url):
        for dag_id in ("nq_many", "nq_slow", "nq_special", "nq_chatty"):
            sh.wait_parsed(dag_id, store_url)
        try:
            yield Cluster
        finally:
            for process in processes:
                if process.poll() is None:
                    _stop(process, signal.SIGKILL)


def _wait_workers(cluster, *names: str, timeout: float = 30) -> None:
    from updraft.store.engine import session_scope
    from updraft.store.models import NodeModel

    def ready():
        with session_scope() as session:
            return {n.node_id for n in session.scalars(select(NodeModel).where(
                NodeModel.kind == "worker", NodeModel.state == "running"))} >= set(names)

    cluster.helpers.wait_for(ready, timeout, what=f"workers {names}",
                             describe=lambda: [cluster.log(n)[-2000:] for n in names])


def _try_rows(store_url: str, dag_id: str, run_id: str, task_id: str) -> list:
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceTry

    with session_scope(store_url) as session:
        return session.execute(select(TaskInstanceTry.try_number, TaskInstanceTry.state,
                                      TaskInstanceTry.error).where(
            TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
            TaskInstanceTry.task_id == task_id).order_by(TaskInstanceTry.try_number)).all()


@pytest.mark.slow
def test_two_workers_share_a_queue_and_each_task_runs_once(cluster, store_url):
    sh = cluster.helpers
    cluster.worker("w1", "--concurrency", "4")
    cluster.worker("w2", "--concurrency", "4")
    _wait_workers(cluster, "w1", "w2")
    run_id = sh.trigger("nq_many", store_url)
    assert sh.wait_run("nq_many", run_id, store_url, timeout=90) == "success"
    rows = _try_rows(store_url, "nq_many", run_id, "many")
    assert len(rows) == 20 and {r.state for r in rows} == {"success"}
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope(store_url) as session:
        tis = session.execute(select(TaskInstanceModel.try_number, TaskInstanceModel.executor)
                              .where(TaskInstanceModel.run_id == run_id,
                                     TaskInstanceModel.task_id == "many")).all()
    assert {(t.try_number, t.executor) for t in tis} == {(1, "nats_queue")}


@pytest.mark.slow
def test_worker_killed_mid_try_is_redelivered_and_the_task_succeeds_once(cluster, store_url):
    sh = cluster.helpers
    first = cluster.worker("w1", "--concurrency", "1")
    _wait_workers(cluster, "w1")
    run_id = sh.trigger("nq_slow", store_url)
    sh.wait_for(lambda: list(cluster.marker_dir.iterdir()), 60, what="slow_once to start")
    first.send_signal(signal.SIGKILL)  # the worker and the try it runs die together
    first.wait(10)
    cluster.worker("w2", "--concurrency", "1", NQ_SLOW_SECONDS="0.2")
    assert sh.wait_run("nq_slow", run_id, store_url, timeout=90) == "success"
    rows = _try_rows(store_url, "nq_slow", run_id, "slow_once")
    assert [(r.try_number, r.state) for r in rows] == [(1, "up_for_retry"), (2, "success")]
    # The executor noticed w1's heartbeats stop and the scheduler failed try 1 (or w2 got
    # the redelivered message first and failed it itself); never the zombie check, whose
    # threshold is 600 s in this test.
    if "the worker running it died" in rows[0].error:
        assert "failed (up_for_retry)" in cluster.log("w2")
    else:
        assert "the worker running it was lost: w1" in rows[0].error, rows[0].error


@pytest.mark.slow
def test_queue_routing(cluster, store_url):
    sh = cluster.helpers
    cluster.worker("plain", "--queues", "default")
    _wait_workers(cluster, "plain")
    run_id = sh.trigger("nq_special", store_url)
    time.sleep(3)
    assert sh.states("nq_special", run_id, store_url)["special"][0] == "queued"
    cluster.worker("gpu", "--queues", "special,other")
    assert sh.wait_run("nq_special", run_id, store_url, timeout=60) == "success"
    from updraft.store.engine import session_scope
    from updraft.store.models import XComModel

    with session_scope(store_url) as session:
        value = session.scalar(select(XComModel.value).where(
            XComModel.run_id == run_id, XComModel.task_id == "special"))
    assert "gpu" in str(value)


@pytest.mark.slow
def test_live_logs_are_followed_before_the_task_ends(cluster, store_url):
    sh = cluster.helpers
    cluster.worker("w1")
    _wait_workers(cluster, "w1")
    run_id = sh.trigger("nq_chatty", store_url)
    sh.wait_for(lambda: sh.states("nq_chatty", run_id, store_url)["chatty"][0] == "running",
                60, what="chatty to run", describe=lambda: cluster.log("w1")[-3000:])
    follower = subprocess.Popen(
        [UPDRAFT, "tasks", "logs", "nq_chatty", run_id, "chatty", "--follow"],
        env=sh.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen: list[tuple[float, str]] = []
    for line in follower.stdout:
        seen.append((time.monotonic(), line.rstrip("\n")))
        if "line " in line:
            # The follower is attached (however long its start took on a loaded machine):
            # the task prints lines 10 to 29 (about 4 s) from now on.
            cluster.chatty_go.touch()
    assert follower.wait(30) == 0
    ended_at = time.monotonic()
    lines = [text for _, text in seen]
    numbered = [text for text in lines if "line " in text]
    assert [text.rsplit("line ", 1)[1] for text in numbered] == [str(i) for i in range(30)]
    assert sh.states("nq_chatty", run_id, store_url)["chatty"][0] == "success"
    # The lines printed after the follower attached came while the task ran (about 4 s),
    # not all at the end.
    arrivals = [at for at, text in seen if "line " in text][10:]
    assert arrivals[-1] - arrivals[0] > 1.5 and ended_at - arrivals[0] > 1.5, seen


def test_log_lines_are_published_on_the_live_subject(nats_env, nats_url, store_url, dag):
    """A worker publishes each line on P.log.<dag>.<run>.<task>.<map>.<try>, then eof."""
    from bus import subjects
    from bus.schemas import LogLine, decode

    [hello] = queue_tries(store_url, dag, ["hello"])
    received: list = []

    async def listen(ready: threading.Event, done: threading.Event):
        import nats

        async def on_line(msg):
            received.append(decode(LogLine, msg.data))

        nc = await nats.connect(nats_url)
        await nc.subscribe(subjects.log(hello.dag_id, hello.run_id, hello.task_id,
                                        hello.try_number, hello.map_index), cb=on_line)
        await nc.flush()
        ready.set()
        while not done.is_set() and not any(line.eof for line in received):
            await asyncio.sleep(0.05)
        await nc.close()

    ready, done = threading.Event(), threading.Event()
    listener = threading.Thread(target=lambda: asyncio.run(listen(ready, done)), daemon=True)
    listener.start()
    assert ready.wait(10)
    from executors import get_executor

    with WorkerThread(queues=["default"], concurrency=1), \
            get_executor("nats_queue", parallelism=2) as executor:
        executor.submit([hello])
        [event] = wait_events(executor, 1)
    listener.join(10)
    done.set()
    assert event.outcome.state == "success"
    texts = [line.line for line in received]
    assert any("hello from updraft" in text for text in texts), texts
    assert received[-1].eof and [line.seq for line in received[:-1]] == \
        list(range(1, len(received)))
    file_lines = Path(event.outcome.log_path).read_text().splitlines()
    assert file_lines == texts[:-1]


def test_tasks_logs_prints_a_finished_try(nats_env, store_url, dag):
    from click.testing import CliRunner

    from executors import get_executor
    from updraft.cli import main

    [hello] = queue_tries(store_url, dag, ["hello"])
    with get_executor("sequential") as executor:
        executor.submit([hello])
        executor.join(30)
    result = CliRunner().invoke(main, ["tasks", "logs", hello.dag_id, hello.run_id, "hello"])
    assert result.exit_code == 0, result.output
    assert "hello from updraft" in result.output
    result = CliRunner().invoke(main, ["tasks", "logs", hello.dag_id, hello.run_id, "hello",
                                       "--try", "7"])
    assert result.exit_code != 0 and "no log" in result.output.lower()



@pytest.mark.parametrize("kind", ["local", "dask"])
def test_local_and_dask_workers_publish_live_logs(kind, nats_env, nats_url, store_url, dag):
    """The other executors' workers publish live lines too when NATS is configured."""
    import bus.logs
    from bus import subjects
    from bus.schemas import LogLine, decode
    from executors import get_executor

    bus.logs._process_publisher = None  # this test's NATS server, not an earlier one's
    [hello] = queue_tries(store_url, dag, ["hello"])
    received: list = []
    ready, finished = threading.Event(), threading.Event()

    async def listen():
        import nats

        async def on_line(msg):
            received.append(decode(LogLine, msg.data))

        nc = await nats.connect(nats_url)
        await nc.subscribe(subjects.log(hello.dag_id, hello.run_id, hello.task_id,
                                        hello.try_number, hello.map_index), cb=on_line)
        await nc.flush()
        ready.set()
        deadline = time.monotonic() + 60
        while not any(line.eof for line in received) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await nc.close()
        finished.set()

    listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
    listener.start()
    assert ready.wait(10)
    options = {"n_workers": 1, "threads_per_worker": 1, "processes": False,
               "dashboard_address": None, "scheduler_address": ""} if kind == "dask" else {}
    try:
        with get_executor(kind, parallelism=1, **options) as executor:
            executor.submit([hello])
            [event] = wait_events(executor, 1, timeout=60)
        assert event.error is None, event
        assert suite.ti_row(store_url, hello).state == "success"
        assert finished.wait(30)
    finally:
        if bus.logs._process_publisher is not None:
            bus.logs._process_publisher.close()
            bus.logs._process_publisher = None
    texts = [line.line for line in received if not line.eof]
    assert any("hello from updraft" in text for text in texts), texts
