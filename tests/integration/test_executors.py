"""Executor conformance: one suite run against every executor, plus what is specific to each.

Real runs in a real (SQLite) store feed the executors: a DAG file written to ``tmp_path`` is
loaded with DagBag, a run is created, its task instances are queued, and the TryRequests
built from them are submitted. The store is then checked, since it is the truth; the events
are only checked for what they promise (one per submission, errors when a try is lost).
Dask runs on an in-process LocalCluster (``processes=False``), except the worker-death test.
"""

from __future__ import annotations

import itertools
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from executors import EXECUTORS, executor_class, get_executor
from executors.base import BaseExecutor, ExecutorEvent, try_key
from executors.dask_identity import worker_addresses
from updraft.runtime import TryRequest
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

DAG_FILE = '''
import os
import signal
import time
from datetime import datetime

from updraft import DAG, task

with DAG("executor_suite", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def hello():
        print("hello from updraft")
        return 1

    @task(retries=2)
    def flaky():
        raise ValueError("flaky failed")

    @task
    def broken():
        raise RuntimeError("broken for good")

    def nap():
        time.sleep(1.0)
        return "rested"

    for name in ("nap_1", "nap_2", "nap_3"):
        task(task_id=name)(nap)()

    @task
    def long_nap():
        # Long enough that a cancel always finds it running, however loaded the machine.
        time.sleep(120)

    @task
    def suicide():
        os.kill(os.getpid(), signal.SIGKILL)

    @task
    def inner_dask():
        from distributed import worker_client

        with worker_client() as client:
            return client.submit(sum, [1, 2, 3]).result()

    @task(queue="gpu")
    def on_gpu():
        from distributed import get_worker

        return get_worker().name

    @task(queue="nowhere")
    def unserved():
        return "never"

    hello(); flaky(); broken(); long_nap(); suicide(); inner_dask(); on_gpu(); unserved()
'''

_runs = itertools.count(1)


@pytest.fixture
def store_url(updraft_home, monkeypatch, _sqlite_template):
    """A migrated SQLite store, the default store of the test (executors are not about SQL
    dialects: tests/integration/test_store.py covers those)."""
    import shutil

    from updraft.config import conf

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", url)
    conf.reload()
    return url


@pytest.fixture
def dag(tmp_path):
    from updraft.dagbag import DagBag

    path = tmp_path / "dags" / "executor_suite.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(DAG_FILE))
    bag = DagBag(dag_folder=path, include_examples=False, safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags["executor_suite"]


def queue_tries(store_url: str, dag, task_ids: list[str]) -> list[TryRequest]:
    """Create a running dag run, queue ``task_ids`` in it and return their requests."""
    from updraft.store.engine import session_scope
    from updraft.store.runs import create_dag_run, queue_task_instances, row_defaults_for

    run_id = f"manual__suite_{next(_runs)}"
    with session_scope(store_url) as session:
        create_dag_run(session, dag_id=dag.dag_id, run_id=run_id, run_type="manual",
                       logical_date=None, data_interval=None, conf={},
                       tasks=row_defaults_for(dag.task_dict), state=DagRunState.RUNNING)
    with session_scope(store_url) as session:
        queued = queue_task_instances(session, dag.dag_id, run_id,
                                      [(task_id, -1) for task_id in task_ids])
    return [TryRequest(dag.dag_id, run_id, task_id, -1, queued[(task_id, -1)].try_number,
                       dag.fileloc, store_url, queue=dag.task_dict[task_id].queue,
                       try_id=queued[(task_id, -1)].try_id) for task_id in task_ids]


def ti_row(store_url: str, request: TryRequest):
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    with session_scope(store_url) as session:
        row = session.scalar(select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == request.dag_id,
            TaskInstanceModel.run_id == request.run_id,
            TaskInstanceModel.task_id == request.task_id,
            TaskInstanceModel.map_index == request.map_index))
        session.expunge_all()
        return row


def try_rows(store_url: str, request: TryRequest) -> int:
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceTry

    with session_scope(store_url) as session:
        return session.scalar(select(func.count()).select_from(TaskInstanceTry).where(
            TaskInstanceTry.dag_id == request.dag_id, TaskInstanceTry.run_id == request.run_id,
            TaskInstanceTry.task_id == request.task_id))


def wait_events(executor: BaseExecutor, count: int, timeout: float = 20.0,
                collected: list | None = None) -> list[ExecutorEvent]:
    """Collect ``count`` events, woken by the executor's wakeup (no fixed sleeps)."""
    woken = threading.Event()
    executor.set_wakeup(woken.set)
    events = collected if collected is not None else []
    deadline = time.monotonic() + timeout
    while len(events) < count:
        events.extend(executor.events())
        if len(events) >= count:
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{len(events)} of {count} events after {timeout}s: {events}")
        woken.wait(min(remaining, 0.5))
        woken.clear()
    return events


def wait_state(store_url: str, request: TryRequest, state: TI, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while ti_row(store_url, request).state != state:
        assert time.monotonic() < deadline, f"{request.task_id} never became {state}"
        time.sleep(0.02)


def build(kind: str, parallelism: int = 2, **options) -> BaseExecutor:
    if kind == "dask":
        options = {"n_workers": 1, "threads_per_worker": 2, "processes": False,
                   "dashboard_address": None, "scheduler_address": "",
                   "fetch_outcomes": True, **options}
    return get_executor(kind, parallelism=parallelism, **options)


def warm_dask(executor: BaseExecutor, dag, workers: int = 1, timeout: float = 120.0) -> None:
    """Have the in-process Dask workers' zygotes parse ``dag`` ahead, as the scheduler does
    (``executor.warm``), and wait for it: a fresh executor's zygotes are new interpreters
    importing the task runner and distributed (seconds of CPU, many more on a loaded
    machine), which the event waits of the tests are not about."""
    from executors import dask_worker

    executor.warm([(dag.fileloc, dag.dag_id)])
    deadline = time.monotonic() + timeout
    while sum(supervisor.zygote.warmed.get(dag.fileloc, "not yet") is None
              for supervisor in list(dask_worker._supervisors.values())) < workers:
        assert time.monotonic() < deadline, f"the Dask workers' zygotes did not parse " \
            f"{dag.dag_id} in {timeout:g}s"
        time.sleep(0.05)


@pytest.fixture(params=["sequential", "local", "dask"])
def executor(request, store_url, dag):
    executor = build(request.param)
    executor.start()
    if request.param == "dask":
        warm_dask(executor, dag)
    yield executor
    executor.stop(wait=False)


# -- the conformance suite ---------------------------------------------------------------------

def test_outcomes_land_in_the_store(executor, store_url, dag):
    requests = queue_tries(store_url, dag, ["hello", "flaky", "broken"])
    executor.submit(requests)
    events = {event.key[2]: event for event in wait_events(executor, 3)}

    assert {name: (e.outcome.state, e.error) for name, e in events.items()} == {
        "hello": (TI.SUCCESS, None), "flaky": (TI.UP_FOR_RETRY, None),
        "broken": (TI.FAILED, None)}
    hello, flaky, broken = (ti_row(store_url, r) for r in requests)
    assert (hello.state, flaky.state, broken.state) == ("success", "up_for_retry", "failed")
    assert flaky.next_retry_at is not None and hello.executor == executor.name
    assert events["hello"].try_number == 1 and events["hello"].key == try_key(requests[0])
    log_text = Path(events["hello"].outcome.log_path).read_text()
    assert "hello from updraft" in log_text
    assert "flaky failed" in Path(events["flaky"].outcome.log_path).read_text()
    assert executor.running() == set() and executor.slots_available() == 2
    assert executor.events() == []


def test_slots_and_running_follow_tries_in_flight(executor, store_url, dag):
    wakeups: list[str] = []
    executor.set_wakeup(lambda: wakeups.append(threading.current_thread().name))
    [nap] = queue_tries(store_url, dag, ["nap_1"])
    assert executor.slots_available() == 2
    executor.submit([nap])
    assert executor.slots_available() == 1
    assert executor.running() == {try_key(nap)}
    wait_state(store_url, nap, TI.RUNNING)
    assert executor.slots_available() == 1 and wakeups == []
    assert executor.join(timeout=20)
    [event] = executor.events()
    assert event.outcome.state == TI.SUCCESS and len(wakeups) == 1
    assert executor.slots_available() == 2 and executor.running() == set()
    assert executor.queue_depth() == 0
    health = executor.health()
    assert health["kind"] == executor.name and health["parallelism"] == 2


def test_cancel_stops_a_try_that_has_not_started(executor, store_url, dag):
    first, second, third = queue_tries(store_url, dag, ["nap_1", "nap_2", "nap_3"])
    executor.submit([first, second, third])
    wait_state(store_url, first, TI.RUNNING)
    if executor.name != "sequential":  # two slots: the first two run together
        wait_state(store_url, second, TI.RUNNING)
    assert executor.cancel(try_key(third)) is True
    assert executor.cancel(try_key(third)) is False  # nothing left to cancel
    assert try_key(third) not in executor.running()
    events = {event.key[2]: event for event in wait_events(executor, 3)}
    assert events["nap_3"].outcome is None and "cancel" in events["nap_3"].error
    assert events["nap_1"].outcome.state == TI.SUCCESS
    assert events["nap_2"].outcome.state == TI.SUCCESS
    assert ti_row(store_url, third).state == "queued"  # the scheduler decides what it becomes


def test_the_same_request_twice_runs_once(executor, store_url, dag):
    [hello] = queue_tries(store_url, dag, ["hello"])
    executor.submit([hello])
    executor.submit([hello])
    events = wait_events(executor, 2)
    ran = [e for e in events if e.error is None]
    refused = [e for e in events if e.refused]
    assert len(ran) == 1 and len(refused) == 1, events
    assert ran[0].outcome.state == TI.SUCCESS
    assert refused[0].lost and "refused" in refused[0].error
    assert ti_row(store_url, hello).state == "success" and try_rows(store_url, hello) == 1


def test_submit_needs_start_and_stop_waits(store_url, dag):
    executor = build("sequential")
    with pytest.raises(RuntimeError, match="start"):
        executor.submit([])
    executor.start()
    requests = queue_tries(store_url, dag, ["hello", "broken"])
    executor.submit(requests)
    executor.stop(wait=True)
    assert len(executor.events()) == 2 and executor.running() == set()
    with pytest.raises(RuntimeError, match="stopping"):
        executor.submit(requests)


# -- executor-specific behaviour ---------------------------------------------------------------

def test_get_executor_by_name_and_config(monkeypatch):
    from updraft.config import conf

    assert set(EXECUTORS) >= {"dask", "local", "sequential", "nats_queue"}
    assert EXECUTORS["nats_queue"] == "executors.nats_queue:NatsQueueExecutor"
    assert executor_class("local").__name__ == "LocalExecutor"
    assert executor_class("executors.sequential:SequentialExecutor").name == "sequential"
    with pytest.raises(ValueError, match="unknown executor"):
        get_executor("carrier_pigeon")
    monkeypatch.setenv("UPDRAFT__CORE__EXECUTOR", "local")
    monkeypatch.setenv("UPDRAFT__CORE__PARALLELISM", "7")
    conf.reload()
    executor = get_executor()
    assert executor.name == "local" and executor.parallelism == 7
    assert get_executor("sequential").parallelism == 1  # one at a time unless told
    monkeypatch.delenv("UPDRAFT__CORE__EXECUTOR")
    conf.reload()
    assert executor_class(conf.get("core", "executor")).name == "dask"


def test_local_try_that_kills_itself_fails_alone_with_the_cause(store_url, dag):
    with build("local") as executor:
        suicide, hello = queue_tries(store_url, dag, ["suicide", "hello"])
        executor.submit([suicide])
        [event] = wait_events(executor, 1)
        assert event.error is None and event.outcome.state == TI.FAILED
        assert "signal 9 (SIGKILL)" in event.outcome.error
        assert ti_row(store_url, suicide).state == "failed"  # recorded by the supervisor
        assert "died of signal 9" in Path(event.outcome.log_path).read_text()
        executor.submit([hello])
        [event] = wait_events(executor, 1)
        assert event.outcome.state == TI.SUCCESS
        assert executor.health()["tries_died"] == 1


def test_local_cancel_stops_a_running_try(store_url, dag):
    with build("local") as executor:
        [nap] = queue_tries(store_url, dag, ["long_nap"])
        executor.submit([nap])
        wait_state(store_url, nap, TI.RUNNING)
        assert executor.cancel(try_key(nap)) is True
        [event] = wait_events(executor, 1)
        assert event.outcome.state == TI.FAILED and "cancelled" in event.outcome.error
        assert executor.slots_available() == 2


def test_local_cancel_as_the_claim_commits_stops_the_try(store_url, dag, monkeypatch):
    """A cancel that comes the moment the store says "running" (the claim committed, the
    try's process not started yet) still stops the try: it is not lost in between."""
    import updraft.isolation.supervisor as supervisor

    real_claim = supervisor.claim_try
    answers: list[bool] = []

    with build("local") as executor:
        def claim_then_cancel(request, *args, **kwargs):
            claimed = real_claim(request, *args, **kwargs)
            answers.append(executor.cancel(try_key(request)))
            return claimed

        monkeypatch.setattr(supervisor, "claim_try", claim_then_cancel)
        [nap] = queue_tries(store_url, dag, ["long_nap"])
        executor.submit([nap])
        [event] = wait_events(executor, 1)
    assert answers == [True]
    assert event.outcome.state == TI.FAILED and "cancelled" in event.outcome.error


def test_dask_worker_client_inside_a_task(store_url, dag):
    # The try runs in a process of its own: it reaches the cluster over TCP.
    with build("dask", dashboard_address="127.0.0.1:0",
               cluster_options={"protocol": "tcp"}) as executor:
        [inner] = queue_tries(store_url, dag, ["inner_dask"])
        executor.submit([inner])
        # A cold cluster of worker processes: each starts its zygote and the try's process
        # connects a client of its own (tens of seconds under CI load); this test is about
        # that client working, not about how soon.
        [event] = wait_events(executor, 1, timeout=90)
        assert event.error is None and event.outcome.state == TI.SUCCESS, event
        assert "Done. Returned value was: 6" in Path(event.outcome.log_path).read_text()
        assert executor.health()["dashboard_link"].startswith("http://127.0.0.1:")


def test_dask_queue_runs_on_a_worker_with_its_resource(store_url, dag):
    from distributed import Client, LocalCluster, Worker

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                           dashboard_address=None,
                           scheduler_kwargs={"dashboard": False,
                                             "dashboard_address": "127.0.0.1:0"})

    async def add_gpu_worker():
        return await Worker(cluster.scheduler_address, nthreads=1, name="gpu-worker",
                            resources={"queue-gpu": 1000}, dashboard=False)

    gpu_worker = cluster.sync(add_gpu_worker)
    client = Client(cluster, set_as_default=False)
    try:
        with DaskExecutorFor(client) as executor:
            warm_dask(executor, dag, workers=2)
            on_gpu, hello, unserved = queue_tries(store_url, dag, ["on_gpu", "hello",
                                                                   "unserved"])
            assert on_gpu.queue == "gpu" and hello.queue == "default"
            executor.submit([on_gpu, hello, unserved])
            events = {e.key[2]: e for e in wait_events(executor, 2)}
            assert events["on_gpu"].worker == "gpu-worker"
            assert events["on_gpu"].outcome.state == TI.SUCCESS
            assert events["hello"].outcome.state == TI.SUCCESS
            # No worker serves "nowhere": the try waits in Dask until cancelled.
            assert executor.running() == {try_key(unserved)}
            assert executor.cancel(try_key(unserved)) is True
            [event] = wait_events(executor, 1)
            assert event.key == try_key(unserved) and "cancel" in event.error
            health = executor.health()
            assert {w["name"] for w in health["workers"]} >= {"gpu-worker"}
    finally:
        client.close()
        cluster.sync(gpu_worker.close)
        cluster.close()


QUICK_DAG = '''
from datetime import datetime

from updraft import DAG
from updraft.operators.python import PythonOperator

with DAG("quick_suite", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    for i in range(12):
        PythonOperator(task_id=f"q{i:02d}", python_callable=lambda: print("quick"))
'''


@pytest.fixture
def quick_dag(tmp_path):
    from updraft.dagbag import DagBag

    path = tmp_path / "quick" / "quick_suite.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(QUICK_DAG))
    return DagBag(dag_folder=path, include_examples=False, safe_mode=False).dags["quick_suite"]


def bundling_executor(**options) -> BaseExecutor:
    """One worker thread and room for many tries in flight: tries queue up, so they go to
    Dask in bundles of ``max_bundle``."""
    return build("dask", threads_per_worker=1, parallelism=20, max_bundle=4, **options)


def test_dask_bundles_tries_that_would_queue_and_reports_each(store_url, quick_dag):
    requests = queue_tries(store_url, quick_dag, [f"q{i:02d}" for i in range(12)])
    with bundling_executor() as executor:
        warm_dask(executor, quick_dag)
        executor.submit(requests)
        events = wait_events(executor, 12)
        assert executor.bundled_tries == 12
    assert sorted(e.key[2] for e in events) == [r.task_id for r in requests]
    assert all(e.error is None and e.outcome.state == TI.SUCCESS for e in events), events
    for request in requests:
        assert ti_row(store_url, request).state == "success"
        assert try_rows(store_url, request) == 1
    assert "quick" in Path(events[0].outcome.log_path).read_text()


def test_a_runner_error_in_a_bundle_reaches_every_try_of_it(store_url, quick_dag,
                                                            monkeypatch):
    from updraft.isolation.supervisor import Supervisor

    real = Supervisor.run

    def failing_on_q03(self, request, *args, **kwargs):
        if request.task_id == "q03":  # the task runner itself fails (not the task)
            raise OSError("the store went away")
        return real(self, request, *args, **kwargs)

    monkeypatch.setattr(Supervisor, "run", failing_on_q03)
    requests = queue_tries(store_url, quick_dag, ["q00", "q01", "q02", "q03"])
    with bundling_executor() as executor:
        executor.submit(requests)
        events = wait_events(executor, 4)
        assert executor.bundled_tries == 4
    assert all(e.lost and e.outcome is None for e in events), events
    assert all("the store went away" in e.error for e in events)
    # The store holds what ran: the scheduler's check of a lost try leaves these alone.
    assert [ti_row(store_url, r).state for r in requests] == ["success"] * 3 + ["queued"]


def test_cancelling_a_bundled_try_reports_it_at_once(store_url, quick_dag):
    requests = queue_tries(store_url, quick_dag, [f"q{i:02d}" for i in range(8)])
    with bundling_executor() as executor:
        executor.submit(requests)
        assert executor.cancel(try_key(requests[-1])) is True
        events = wait_events(executor, 8)
    by_task = {e.key[2]: e for e in events}
    assert "cancel" in by_task["q07"].error and by_task["q07"].outcome is None
    assert all(by_task[f"q{i:02d}"].outcome.state == TI.SUCCESS for i in range(7))


def DaskExecutorFor(client) -> BaseExecutor:
    return executor_class("dask")(parallelism=4, client=client, fetch_outcomes=True)


@pytest.mark.slow
def test_dask_try_that_kills_itself_leaves_its_worker_alone(store_url, dag):
    with build("dask", processes=True, n_workers=2, threads_per_worker=1) as executor:
        hello, suicide = queue_tries(store_url, dag, ["hello", "suicide"])
        executor.submit([hello])
        [event] = wait_events(executor, 1, timeout=30)
        assert event.outcome.state == TI.SUCCESS and event.worker is not None
        assert "hello from updraft" in Path(event.outcome.log_path).read_text()
        workers = set(worker_addresses(executor.client))
        executor.submit([suicide])
        [event] = wait_events(executor, 1, timeout=30)
        # Only the try's own process died; the supervisor recorded how.
        assert event.error is None and event.outcome.state == TI.FAILED, event
        assert "signal 9 (SIGKILL)" in event.outcome.error
        assert ti_row(store_url, suicide).state == "failed"
        assert set(worker_addresses(executor.client)) == workers


def test_warming_a_worker_runs_the_runner_statements_and_leaves_the_store_as_it_was(
        store_url):
    from updraft.runtime import preload, warm_statements
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceTry, TiEvent

    preload()
    warm_statements(store_url)  # raises if a statement does not fit the schema
    with session_scope(store_url) as session:
        assert session.scalar(select(func.count()).select_from(TaskInstanceTry)) == 0
        assert session.scalar(select(func.count()).select_from(TiEvent)) == 0


def test_dask_workers_parse_a_dag_ahead_when_asked(store_url, quick_dag):
    from executors import dask_worker

    key = (quick_dag.fileloc, quick_dag.dag_id)
    with build("dask") as executor:  # in-process workers: their supervisors are here
        executor.warm([key])
        deadline = time.monotonic() + 20
        while not any(supervisor.zygote.warmed.get(quick_dag.fileloc, "not yet") is None
                      for supervisor in list(dask_worker._supervisors.values())):
            assert time.monotonic() < deadline, "the workers' zygotes did not parse the DAG"
            time.sleep(0.02)


def test_the_cluster_s_workers_are_read_without_the_client_s_cache_race():
    """Dask's client refreshes its cached identity with totals only (no workers) every few
    seconds; ``scheduler_info(n_workers=-1)`` returns that cache, so a refresh landing
    between its fetch and its return shows a cluster with no workers, which the watchdog
    took for every worker lost. ``cluster_identity`` returns the scheduler's own answer."""
    import dask
    from distributed import Client, LocalCluster

    from executors.dask_identity import cluster_identity

    with dask.config.set({"distributed.client.scheduler-info-interval": "2ms"}), \
            LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        counts = [len(cluster_identity(client)["workers"]) for _ in range(300)]
    assert set(counts) == {2}
