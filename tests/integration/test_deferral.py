"""Deferrable tasks end to end (issue 14, ADR 11): the real scheduler and executor, a real
triggerer (in a thread, or ``updraft triggerer`` processes), the store as the judge.

- deferrable sensors take no worker slot while they wait and end close to their deadline;
- a resumed try keeps its try number and runs ``next_method`` with the trigger's event;
- a triggerer killed with SIGKILL has its triggers resumed by another;
- a deferral that times out fails its task with Airflow's reason;
- a trigger that blocks the event loop is named in the log.
"""

from __future__ import annotations

import shutil
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import scheduler_helpers as h
from sqlalchemy import func, select


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    """Fast scheduler settings, a DAGs folder and a migrated SQLite store; returns the folder."""
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("UPDRAFT__TRIGGERER__LEASE_SECONDS", "3")
    monkeypatch.setenv("UPDRAFT__TRIGGERER__POLL_INTERVAL", "0.5")
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    return dags


@contextmanager
def running_triggerer(scheduler=None, **options):
    """A Triggerer in a thread; its nudges wake ``scheduler`` directly (no NATS here)."""
    from triggerer.node import Triggerer

    bus = SimpleNamespace(publish=lambda *_a: scheduler.wake()) if scheduler else None
    triggerer = Triggerer(bus=bus, **options)
    thread = threading.Thread(target=triggerer.run, name="test-triggerer", daemon=True)
    thread.start()
    try:
        yield triggerer
    finally:
        triggerer.stop()
        thread.join(30)
        assert not thread.is_alive(), "the triggerer did not stop"


def count(dag_id: str, *states: str) -> int:
    from updraft.store.models import TaskInstanceModel as T

    with h.session() as s:
        return s.scalar(select(func.count()).select_from(T).where(
            T.dag_id == dag_id, T.state.in_(states))) or 0


def story(dag_id: str, run_id: str, task_id: str) -> list[str]:
    return [f"{e.old_state}->{e.new_state}: {e.cause}" for e in h.events(dag_id, run_id, task_id)]


RESUME_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.operators.base import BaseOperator
from updraft.triggers.temporal import TimeDeltaTrigger


class WaitThenReport(BaseOperator):
    def execute(self, context):
        self.xcom_push(context, key="before", value="pushed before deferring")
        self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=1)),
                   method_name="resume", kwargs={"carried": 42})

    def resume(self, context, event=None, carried=None):
        return {"carried": carried, "event": event.isoformat(),
                "try": context["ti"].try_number}


with DAG("resume_dag", start_date=datetime(2024, 1, 1), schedule=None):
    WaitThenReport(task_id="wait")
"""


@pytest.mark.parametrize("executor", ["local", pytest.param("dask", marks=pytest.mark.slow)])
def test_deferred_try_resumes_in_next_method_with_the_same_try_number(env, executor):
    from updraft.models.xcom import get_xcom

    h.write_dag(env, "resume_dag", RESUME_DAG)
    with h.running_scheduler(env, executor) as scheduler, running_triggerer(scheduler):
        h.wait_parsed("resume_dag")
        run_id = h.trigger("resume_dag")
        h.wait_for(lambda: count("resume_dag", "deferred"), 30, what="the task to defer")
        assert h.wait_run("resume_dag", run_id, timeout=60) == "success", \
            story("resume_dag", run_id, "wait")
    ti = h.tis("resume_dag", run_id)["wait"]
    assert (ti.state, ti.try_number) == ("success", 1)
    assert ti.next_method is None and ti.trigger_id is None
    with h.session() as s:
        result = get_xcom(s, dag_id="resume_dag", run_id=run_id, task_id="wait")
        before = get_xcom(s, dag_id="resume_dag", run_id=run_id, task_id="wait", key="before")
    assert result["carried"] == 42 and result["try"] == 1 and result["event"]
    assert before == "pushed before deferring"
    # One try, counted once: the deferral writes no task_instance_try row.
    assert [(r.try_number, r.state) for r in h.try_rows("resume_dag", run_id)] == \
        [(1, "success")]
    lines = story("resume_dag", run_id, "wait")
    assert any(line.startswith("running->deferred") for line in lines), lines
    assert any(line.startswith("deferred->scheduled") and "fired" in line for line in lines)


SENSORS_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.sensors.time import TimeDeltaSensorAsync
from updraft.operators.empty import EmptyOperator

with DAG("many_sensors", start_date=datetime(2024, 1, 1), schedule=None,
         max_active_tasks={n}):
    done = EmptyOperator(task_id="done")
    for i in range({n}):
        TimeDeltaSensorAsync(task_id=f"wait_{{i}}", delta=timedelta(seconds={seconds}),
                             end_from_trigger={end_from_trigger}) >> done
"""


def _sensor_run(env, n: int, seconds: float, parallelism: int, end_from_trigger=False):
    h.write_dag(env, "many_sensors", SENSORS_DAG.format(n=n, seconds=seconds,
                                                        end_from_trigger=end_from_trigger))
    with h.running_scheduler(env, "local", parallelism=parallelism) as scheduler, \
            running_triggerer(scheduler):
        h.wait_parsed("many_sensors")
        run_id = h.trigger("many_sensors")
        with h.session() as s:
            from updraft.store.models import DagRunModel

            run = s.scalar(select(DagRunModel).where(DagRunModel.run_id == run_id))
            deadline = run.data_interval_end + timedelta(seconds=seconds)
        from updraft.utils.timezone import utcnow

        # All of them defer before the deadline unless the shared machine is too loaded to
        # start n tries in that time (then the late ones find their moment passed).
        h.wait_for(lambda: count("many_sensors", "deferred") == n or utcnow() > deadline,
                   60 + n / 5, what=f"all {n} sensors to defer",
                   describe=lambda: count("many_sensors", "deferred"))
        all_deferred = count("many_sensors", "deferred") == n
        # While they wait, none holds a worker slot.
        busy = count("many_sensors", "queued", "running") if all_deferred else None
        slots = scheduler.executor.slots_available() if all_deferred else None
        assert h.wait_run("many_sensors", run_id, timeout=120) == "success"
    rows = h.tis("many_sensors", run_id)
    sensors = [r for key, r in rows.items() if key != "done"]
    assert all(r.state == "success" and r.try_number == 1 for r in sensors)
    last_end = max(r.end_date for r in sensors)
    with h.session() as s:
        from updraft.store.models import TiEvent

        last_wake = s.scalar(select(func.max(TiEvent.timestamp)).where(
            TiEvent.dag_id == "many_sensors", TiEvent.old_state == "deferred"))
        deferred = s.scalar(select(func.count(func.distinct(TiEvent.task_id))).where(
            TiEvent.dag_id == "many_sensors", TiEvent.new_state == "deferred"))
    if not all_deferred:
        print(f"\nloaded machine: {deferred} of {n} sensors deferred before the deadline")
    # No sensor deferred at all when the machine could not start one before its deadline.
    return SimpleNamespace(busy=busy, slots=slots, lateness=(last_end - deadline).total_seconds(),
                           wake_lateness=(last_wake - deadline).total_seconds()
                           if last_wake is not None else None,
                           all_deferred=all_deferred, deferred=deferred or 0)


def test_deferrable_sensors_hold_no_slot_and_end_near_their_deadline(env):
    """The issue's 1,000 x 30 s case, scaled down: 200 sensors waiting 5 s on 4 slots."""
    result = _sensor_run(env, n=200, seconds=5, parallelism=4)
    print(f"\n200 deferrable sensors x 5 s on 4 slots: {result.deferred} deferred; the last "
          f"woken {result.wake_lateness} s and the last ended {result.lateness:.2f} s after the "
          "deadline")
    if result.deferred < 100:
        pytest.skip(f"the shared machine was too loaded to start 200 tries within 5 s: only "
                    f"{result.deferred} deferred before their deadline")
    if result.all_deferred:
        assert result.busy == 0 and result.slots == 4
    # Two cores shared with other test runs: loose, the figures are printed. The end also
    # waits for 200 resumed tries to pass through 4 slots.
    assert result.wake_lateness < 3
    assert result.lateness < 10


def test_time_sensors_with_nothing_to_resume_end_in_the_triggerer(env):
    """Left unset, ``end_from_trigger`` ends a plain time sensor in the triggerer (ADR 13):
    one try, no resumed run of it, the trigger's ending in each task instance's story."""
    result = _sensor_run(env, n=20, seconds=3, parallelism=4, end_from_trigger=None)
    with h.session() as s:
        from updraft.store.models import TiEvent

        ended = s.scalars(select(TiEvent.task_id).where(
            TiEvent.dag_id == "many_sensors", TiEvent.old_state == "deferred",
            TiEvent.new_state == "success", TiEvent.cause.contains("ended the task"))).all()
        resumed = s.scalar(select(func.count()).select_from(TiEvent).where(
            TiEvent.dag_id == "many_sensors", TiEvent.new_state == "scheduled",
            TiEvent.old_state == "deferred"))
    if result.deferred < 20:
        pytest.skip(f"the shared machine was too loaded: {result.deferred} of 20 deferred")
    assert sorted(ended) == sorted(f"wait_{i}" for i in range(20)) and resumed == 0
    assert result.lateness < 5


@pytest.mark.slow
def test_a_thousand_deferrable_sensors_waiting_30_seconds(env):
    """The issue's case, with the sensors' defaults: a time sensor with nothing to run on
    resuming ends in the triggerer (ADR 13). With ``end_from_trigger=False``, 1,000 resumed
    tries pass through the executor's slots after the deadline: the resumed path is
    tested with 200 sensors above, its 1,000-sensor figure is
    ``tests/bench/bench_deferred_sensors.py --end-from-trigger false``."""
    end_from_trigger = None
    result = _sensor_run(env, n=1000, seconds=30, parallelism=4,
                         end_from_trigger=end_from_trigger)
    print(f"\n1,000 deferrable sensors x 30 s on 4 slots (end_from_trigger="
          f"{end_from_trigger}): {result.deferred} deferred; the last woken "
          f"{result.wake_lateness} s and the last ended {result.lateness:.2f} s after the "
          "deadline")
    if result.deferred < 900:
        # 4 slots must start 1,000 tries within 30 s: a shared machine loaded by other test
        # runs may not; the figures above say how far it got.
        pytest.skip(f"the shared machine was too loaded to start 1,000 tries within 30 s on "
                    f"4 slots: only {result.deferred} deferred before their deadline")
    assert result.busy in (0, None)
    assert result.wake_lateness < 5
    assert result.lateness < 5


TIMEOUT_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.operators.base import BaseOperator
from updraft.triggers.temporal import TimeDeltaTrigger


class NeverInTime(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(hours=1)), method_name="resume",
                   timeout=timedelta(seconds=1))

    def resume(self, context, event=None):
        return "should not resume"


with DAG("timeout_dag", start_date=datetime(2024, 1, 1), schedule=None):
    NeverInTime(task_id="late", retries=0)
"""


def test_a_deferral_that_times_out_fails_with_a_clear_reason(env):
    h.write_dag(env, "timeout_dag", TIMEOUT_DAG)
    with h.running_scheduler(env, "local") as scheduler, running_triggerer(scheduler):
        h.wait_parsed("timeout_dag")
        run_id = h.trigger("timeout_dag")
        assert h.wait_run("timeout_dag", run_id, timeout=60) == "failed"
    ti = h.tis("timeout_dag", run_id)["late"]
    assert (ti.state, ti.try_number) == ("failed", 1)
    (row,) = h.try_rows("timeout_dag", run_id)
    assert "TaskDeferralTimeout" in row.error and "Trigger/execution timeout" in row.error
    lines = story("timeout_dag", run_id, "late")
    assert any("deferral timed out" in line for line in lines), lines
    with h.session() as s:
        from updraft.store.models import TriggerModel

        assert s.scalar(select(func.count()).select_from(TriggerModel)) == 0


BLOCKING_DAG = """
from datetime import datetime
from updraft import DAG
from updraft.operators.base import BaseOperator
from blocking_trigger import BlockingTrigger


class Blocked(BaseOperator):
    def execute(self, context):
        self.defer(trigger=BlockingTrigger(seconds=1.0), method_name="resume")

    def resume(self, context, event=None):
        return event


with DAG("blocking_dag", start_date=datetime(2024, 1, 1), schedule=None):
    Blocked(task_id="blocked")
"""

BLOCKING_TRIGGER = """
import time
from updraft.triggers.base import BaseTrigger, TriggerEvent


class BlockingTrigger(BaseTrigger):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def serialize(self):
        return ("blocking_trigger.BlockingTrigger", {"seconds": self.seconds})

    async def run(self):
        time.sleep(self.seconds)  # wrong on purpose: blocks the triggerer's loop
        yield TriggerEvent("woke up")
"""


def test_a_trigger_blocking_the_loop_is_named_in_the_log(env, caplog):
    Path(env, "blocking_trigger.py").write_text(BLOCKING_TRIGGER)
    h.write_dag(env, "blocking_dag", BLOCKING_DAG)
    caplog.set_level("WARNING", logger="updraft.triggerer")
    with h.running_scheduler(env, "local") as scheduler, \
            running_triggerer(scheduler) as triggerer:
        h.wait_parsed("blocking_dag")
        run_id = h.trigger("blocking_dag")
        assert h.wait_run("blocking_dag", run_id, timeout=60) == "success", (
            story("blocking_dag", run_id, "blocked"), h.try_rows("blocking_dag", run_id)[0].error)
        # The watchdog records the block when the loop beats again: the resumed task may
        # finish before it looks.
        h.wait_for(lambda: triggerer.runner.blocks, 10, what="the block to be recorded")
    text = caplog.text
    assert "blocked" in text and "blocking_dag.blocked" in text and "BlockingTrigger" in text
    assert "blocking_trigger.py" in text  # where it blocks
    seconds, label = triggerer.runner.blocks[0]
    assert seconds >= 0.8 and "blocking_dag.blocked" in label


def start_triggerer_process(log_path: Path):
    """``updraft triggerer`` in a subprocess (its own process group), logging to a file."""
    import subprocess
    import sys

    with open(log_path, "ab") as handle:
        return subprocess.Popen([str(Path(sys.executable).with_name("updraft")), "triggerer"],
                                env=h.cli_env(), stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def holders() -> dict[str | None, int]:
    """How many triggers each triggerer holds (None: nobody)."""
    from updraft.store.models import TriggerModel as T

    with h.session() as s:
        return {r[0]: r[1] for r in s.execute(
            select(T.triggerer_id, func.count()).group_by(T.triggerer_id))}


@pytest.mark.slow
def test_a_killed_triggerer_s_triggers_resume_on_another(env, tmp_path):
    """SIGKILL a real ``updraft triggerer`` mid-wait: the other one takes its triggers over
    once their lease (3 s here) has passed, and every sensor ends."""
    import signal

    n, seconds = 20, 12
    h.write_dag(env, "many_sensors", SENSORS_DAG.format(n=n, seconds=seconds,
                                                        end_from_trigger=False))
    first = start_triggerer_process(tmp_path / "first.log")
    second = None
    try:
        with h.running_scheduler(env, "local"):
            h.wait_parsed("many_sensors")
            run_id = h.trigger("many_sensors")
            h.wait_for(lambda: count("many_sensors", "deferred") == n, 60,
                       what="all sensors to defer")
            h.wait_for(lambda: len(holders()) == 1 and None not in holders(), 30,
                       what="the first triggerer to hold every trigger", describe=holders)
            (victim,) = holders()
            second = start_triggerer_process(tmp_path / "second.log")
            time.sleep(2)  # the second one is up and finds nothing free
            assert holders() == {victim: n}
            h.kill_group(first, signal.SIGKILL)
            killed = time.monotonic()
            h.wait_for(lambda: victim not in holders() and sum(holders().values()) in (0, n),
                       30, what="the second triggerer to take the triggers over",
                       describe=holders)
            takeover = time.monotonic() - killed
            assert h.wait_run("many_sensors", run_id, timeout=90) == "success"
        print(f"\ntriggers of a killed triggerer taken over after {takeover:.1f} s "
              f"(lease 3 s)")
        rows = h.tis("many_sensors", run_id)
        assert all(r.state == "success" and r.try_number == 1 for r in rows.values())
        assert takeover < 15
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                h.kill_group(process, signal.SIGTERM)
    assert "Traceback" not in (tmp_path / "second.log").read_text()


WAITING_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.operators.base import BaseOperator
from updraft.triggers.temporal import TimeDeltaTrigger


class WaitLong(BaseOperator):
    def execute(self, context):
        self.defer(trigger=TimeDeltaTrigger(timedelta(hours=2)), method_name="resume",
                   timeout=timedelta(hours=3))

    def resume(self, context, event=None):
        return None


with DAG("waiting_dag", start_date=datetime(2024, 1, 1), schedule=None):
    WaitLong(task_id="wait_long")
"""


def test_failed_deps_the_api_and_the_ui_show_what_a_deferred_task_waits_for(env):
    from click.testing import CliRunner

    from updraft.cli import main
    from updraft.store.models import TaskInstanceModel
    from web.queries import ti_json, trigger_json

    h.write_dag(env, "waiting_dag", WAITING_DAG)
    with h.running_scheduler(env, "local") as scheduler, \
            running_triggerer(scheduler) as triggerer:
        h.wait_parsed("waiting_dag")
        run_id = h.trigger("waiting_dag")
        h.wait_for(lambda: holders().get(triggerer.node_id), 30,
                   what="the triggerer to run the trigger", describe=holders)
        result = CliRunner().invoke(main, ["tasks", "failed-deps", "waiting_dag", "wait_long",
                                           run_id])
        with h.session() as s:
            row = s.get(TaskInstanceModel, ("waiting_dag", run_id, "wait_long", -1))
            api, trigger = ti_json(row), trigger_json(s, row)
        # Marking it ends the deferral: the triggerer drops the trigger.
        from updraft.store.commands import set_task_instance_state

        with h.session() as s:
            set_task_instance_state(s, "waiting_dag", run_id, "wait_long", state="success",
                                    owner="test")
        h.wait_for(lambda: not holders(), 30, what="the trigger to be dropped",
                   describe=holders)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "running -> deferred" in out
    assert "Deferred: waits for trigger" in out and "DateTimeTrigger(moment=" in out
    assert "timeout: 20" in out and f"run by: {triggerer.node_id}" in out
    assert "resumes in: resume" in out
    assert api["state"] == "deferred" and api["next_method"] == "resume"
    assert api["trigger_timeout"] and api["trigger_id"] == trigger["id"]
    assert trigger["classpath"] == "updraft.triggers.temporal.DateTimeTrigger"
    assert trigger["triggerer_id"] == triggerer.node_id and "moment" in trigger["kwargs"]
    ti = h.tis("waiting_dag", run_id)["wait_long"]
    assert ti.state == "success" and ti.next_method is None and ti.trigger_id is None


POLLED_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.operators.base import BaseOperator
from updraft.sensors.http import HttpSensor
from updraft.sensors.sql import SqlSensor
from updraft.triggers.base import StartTriggerArgs


class StartsDeferred(BaseOperator):
    start_from_trigger = True
    start_trigger_args = StartTriggerArgs(
        trigger_cls="updraft.triggers.temporal.TimeDeltaTrigger",
        trigger_kwargs={"delta": timedelta(seconds=1)}, next_method="execute_complete")

    def execute(self, context):
        raise AssertionError("start_from_trigger: execute never runs")

    def execute_complete(self, context, event=None):
        return "started from the trigger"


with DAG("polled", start_date=datetime(2024, 1, 1), schedule=None):
    HttpSensor(task_id="http", http_conn_id="api", endpoint="ready", deferrable=True,
               poke_interval=0.3, timeout=60)
    SqlSensor(task_id="sql", conn_id="db", sql="SELECT COUNT(*) FROM items",
              deferrable=True, poke_interval=0.3, timeout=60)
    StartsDeferred(task_id="from_trigger")
"""


def test_http_and_sql_sensors_and_start_from_trigger_wait_deferred(env, tmp_path, monkeypatch):
    """The HTTP and SQL triggers poll in the triggerer's threads, not in a worker slot."""
    import sqlite3
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ready = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200 if ready.is_set() else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("UPDRAFT_CONN_API", f"http://127.0.0.1:{server.server_address[1]}/")
    data = tmp_path / "data.db"
    with sqlite3.connect(data) as db:
        db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")
    monkeypatch.setenv("UPDRAFT_CONN_DB", f"sqlite:///{data}")
    h.write_dag(env, "polled", POLLED_DAG)
    try:
        with h.running_scheduler(env, "local") as scheduler, running_triggerer(scheduler):
            h.wait_parsed("polled")
            run_id = h.trigger("polled")
            h.wait_for(lambda: h.states("polled", run_id)["http"][0] == "deferred" and
                       h.states("polled", run_id)["sql"][0] == "deferred", 60,
                       what="the HTTP and SQL sensors to defer",
                       describe=lambda: h.states("polled", run_id))
            time.sleep(1.0)
            assert count("polled", "deferred") >= 2
            ready.set()
            with sqlite3.connect(data) as db:
                db.execute("INSERT INTO items (id) VALUES (1)")
            assert h.wait_run("polled", run_id, timeout=60) == "success", \
                h.states("polled", run_id)
    finally:
        server.shutdown()
    from updraft.models.xcom import get_xcom

    with h.session() as s:
        started = get_xcom(s, dag_id="polled", run_id=run_id, task_id="from_trigger")
    assert started == "started from the trigger"
    assert all(try_number == 1 for _state, try_number in h.states("polled", run_id).values())
    assert any("deferred" in line for line in story("polled", run_id, "from_trigger"))


ASYNC_TASK_DAG = """
import asyncio
from datetime import datetime
from updraft import DAG
from updraft.decorators import task
from updraft.runtime_context import get_current_context

with DAG("async_tasks", start_date=datetime(2024, 1, 1), schedule=None):
    @task
    async def fetch_all():
        async def fetch(i):
            await asyncio.sleep(0.2)
            return i * i
        started = asyncio.get_running_loop().time()
        values = await asyncio.gather(*(fetch(i) for i in range(5)))
        elapsed = asyncio.get_running_loop().time() - started
        return {"values": values, "concurrent": elapsed < 0.9,
                "run_id": get_current_context()["run_id"]}

    @task
    async def total(result):
        return sum(result["values"])

    total(fetch_all())
"""


def test_an_async_task_body_runs_on_an_event_loop_in_the_try_process(env):
    from updraft.models.xcom import get_xcom

    h.write_dag(env, "async_tasks", ASYNC_TASK_DAG)
    with h.running_scheduler(env, "local"):
        h.wait_parsed("async_tasks")
        run_id = h.trigger("async_tasks")
        assert h.wait_run("async_tasks", run_id, timeout=60) == "success", \
            h.try_rows("async_tasks", run_id)
    with h.session() as s:
        fetched = get_xcom(s, dag_id="async_tasks", run_id=run_id, task_id="fetch_all")
        summed = get_xcom(s, dag_id="async_tasks", run_id=run_id, task_id="total")
    assert fetched == {"values": [0, 1, 4, 9, 16], "concurrent": True, "run_id": run_id}
    assert summed == 30


POOLED_DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.sensors.time import TimeDeltaSensorAsync

with DAG("pooled", start_date=datetime(2024, 1, 1), schedule=None, max_active_tasks=1):
    for i in range(2):
        TimeDeltaSensorAsync(task_id=f"wait_{i}", delta=timedelta(seconds=3), pool="narrow")
"""


@pytest.mark.parametrize("include_deferred", [False, True])
def test_deferred_tasks_hold_pool_slots_only_if_the_pool_says_so(env, include_deferred):
    """A pool of one slot and max_active_tasks=1: two sensors defer side by side, unless
    the pool counts deferred tasks (Airflow's include_deferred)."""
    from updraft.cli.pools import set_pool

    with h.session() as s:
        set_pool(s, "narrow", 1, "one slot", include_deferred=include_deferred)
    h.write_dag(env, "pooled", POOLED_DAG)
    seen: set[tuple[str, ...]] = set()
    with h.running_scheduler(env, "local") as scheduler, running_triggerer(scheduler):
        h.wait_parsed("pooled")
        run_id = h.trigger("pooled")

        def done():
            seen.add(tuple(sorted(s for s, _n in h.states("pooled", run_id).values())))
            return h.run_state("pooled", run_id) in h.TERMINAL_RUN_STATES

        h.wait_for(done, 60, interval=0.05, what="the run to end")
    assert h.run_state("pooled", run_id) == "success"
    both_deferred = ("deferred", "deferred") in seen
    assert both_deferred is not include_deferred, seen
    if include_deferred:
        assert ("deferred", "scheduled") in seen  # the second waits for the pool's slot


def test_dag_test_runs_triggers_inline_as_airflow_does(updraft_home):
    """``dag.test()`` has no triggerer: it runs each trigger in its own process, then the
    same try resumes (Airflow's dag.test does the same); a deferral's timeout still fails."""
    from datetime import UTC, datetime

    from updraft import DAG
    from updraft.operators.base import BaseOperator
    from updraft.sensors.time import TimeDeltaSensorAsync
    from updraft.triggers.temporal import TimeDeltaTrigger

    class Waits(BaseOperator):
        def execute(self, context):
            self.defer(trigger=TimeDeltaTrigger(timedelta(seconds=0.5)), method_name="back",
                       kwargs={"n": 1})

        def back(self, context, event=None, n=0):
            return n + 1

    class TooLate(BaseOperator):
        def execute(self, context):
            self.defer(trigger=TimeDeltaTrigger(timedelta(hours=1)), method_name="back",
                       timeout=timedelta(seconds=0.5))

        def back(self, context, event=None):
            return "never"

    with DAG("inline", start_date=datetime(2024, 1, 1, tzinfo=UTC), schedule=None) as dag:
        Waits(task_id="waits") >> TimeDeltaSensorAsync(task_id="sensor",
                                                        delta=timedelta(days=-1))
        TooLate(task_id="too_late", retries=0)
    run = dag.test()
    states = {ti.task_id: (ti.state, ti.try_number) for ti in run.get_task_instances()}
    assert states == {"waits": ("success", 1), "sensor": ("success", 1),
                      "too_late": ("failed", 1)}
    assert run.get_task_instance("waits").xcom_pull(task_ids="waits") == 2


HTTP_OPERATOR_DAG = """
from datetime import datetime
from updraft import DAG
from updraft.operators.http import HttpOperator


def next_page(response):
    body = response.json()
    return {"data": {"page": body["next"]}} if body.get("next") else None


with DAG("http_deferred", start_date=datetime(2024, 1, 1), schedule=None):
    HttpOperator(task_id="slow", http_conn_id="api", endpoint="slow", method="GET",
                 deferrable=True, response_filter=lambda response: response.json())
    HttpOperator(task_id="paged", http_conn_id="api", endpoint="pages", method="GET",
                 data={"page": 1}, deferrable=True, pagination_function=next_page,
                 response_filter=lambda responses: [r.json()["page"] for r in responses])
    HttpOperator(task_id="broken", http_conn_id="api", endpoint="broken", method="GET",
                 deferrable=True)
"""


def test_a_deferrable_http_operator_waits_for_its_response_in_the_triggerer(env, monkeypatch):
    """HttpOperator(deferrable=True), as Airflow's: the request is sent by the triggerer while
    the task holds no slot; the response comes back to ``execute_complete`` (filtered into
    the XCom), pagination defers once per page, and an error status fails the task with
    the status in its error."""
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlparse

    from updraft.models.xcom import get_xcom

    release = threading.Event()
    seen_pages: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/slow":
                release.wait(60)
                self._answer(200, {"answer": 42})
            elif url.path == "/pages":
                page = int(parse_qs(url.query)["page"][0])
                seen_pages.append(page)
                self._answer(200, {"page": page, "next": page + 1 if page < 3 else None})
            else:
                self._answer(500, {"error": "boom"})

        def _answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("UPDRAFT_CONN_API", f"http://127.0.0.1:{server.server_address[1]}/")
    h.write_dag(env, "http_deferred", HTTP_OPERATOR_DAG)
    try:
        with h.running_scheduler(env, "local") as scheduler, running_triggerer(scheduler):
            h.wait_parsed("http_deferred")
            run_id = h.trigger("http_deferred")
            h.wait_for(lambda: h.states("http_deferred", run_id)["slow"][0] == "deferred", 60,
                       what="the slow request to defer",
                       describe=lambda: h.states("http_deferred", run_id))
            time.sleep(1.0)
            # The request is in flight in the triggerer: the task still waits, in no slot.
            assert h.states("http_deferred", run_id)["slow"][0] == "deferred"
            release.set()
            assert h.wait_run("http_deferred", run_id, timeout=60) == "failed"
    finally:
        release.set()
        server.shutdown()
    states = h.states("http_deferred", run_id)
    assert states["slow"] == ("success", 1) and states["paged"] == ("success", 1), states
    assert states["broken"][0] == "failed", states
    with h.session() as s:
        assert get_xcom(s, dag_id="http_deferred", run_id=run_id, task_id="slow") == \
            {"answer": 42}
        assert get_xcom(s, dag_id="http_deferred", run_id=run_id, task_id="paged") == [1, 2, 3]
    assert seen_pages == [1, 2, 3]
    broken = story("http_deferred", run_id, "broken")
    assert any("Unexpected error in the operation: 500:Internal Server Error" in line
               for line in broken), broken
    assert any("deferred" in line for line in story("http_deferred", run_id, "paged"))
