"""Deferral over real NATS (issue 14, ADR 11): the triggerer's nudge on P.wake.scheduler,
triggers woken by the schedulers' state events instead of polling, and the NATS message
trigger. A scheduler (local executor) with its bus node and a triggerer with its own bus
connection, in threads; every poll interval is 30 s or more, so a task that ends within a
few seconds was woken by an event.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager

import pytest
import scheduler_helpers as h
import services
from test_bus import _delete_stream
from test_deferral import count, holders, story

from bus import subjects

pytestmark = pytest.mark.nats


@pytest.fixture
def bus_env(updraft_home, tmp_path, monkeypatch, _sqlite_template, nats_url):
    monkeypatch.setenv("UPDRAFT__TRIGGERER__POLL_INTERVAL", "0.5")
    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template, nats_url,
                             "d")
    prefix = subjects.prefix()
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()
    _delete_stream(nats_url, subjects.triggers_stream())
    _delete_stream(nats_url, subjects.assets_stream())
    services.delete_nats_streams(nats_url, prefix)  # the work queue's streams


@contextmanager
def running_nodes(dags):
    """A scheduler with its bus node and a triggerer nudging it over NATS."""
    from bus.connection import BusThread
    from bus.node import SchedulerBus
    from triggerer.node import Triggerer

    with h.running_scheduler(dags, "local") as scheduler:
        node = SchedulerBus(scheduler)
        node.start(wait=5)
        bus = BusThread(name="test-triggerer")
        bus.start(wait=5)
        triggerer = Triggerer(bus=bus)
        thread = threading.Thread(target=triggerer.run, name="test-triggerer", daemon=True)
        thread.start()
        try:
            yield scheduler, triggerer
        finally:
            triggerer.stop()
            thread.join(30)
            bus.stop()
            node.stop()


def publish(url: str, subject: str, body: dict | str) -> None:
    from bus.connection import connect

    async def main():
        nc = await connect(url)
        try:
            data = body if isinstance(body, str) else json.dumps(body)
            await nc.publish(subject, data.encode())
            await nc.flush()
        finally:
            await nc.close()

    asyncio.run(main())


ANSWER_DAG = """
from datetime import datetime
from updraft import DAG
from updraft.decorators import task
from updraft.sensors.nats import NatsMessageSensor

with DAG("await_answer", start_date=datetime(2024, 1, 1), schedule=None):
    answer = NatsMessageSensor(task_id="answer", subject="{subject}",
                               filter={{"request": "{{{{ run_id }}}}", "ok": True}},
                               poke_interval=300)

    @task
    def use(message):
        return message["data"]["value"] * 2

    use(answer.output)
"""


def test_a_task_waits_for_an_outside_answer_on_nats(bus_env, nats_url, monkeypatch):
    from updraft.config import conf

    # The scheduler's slow timer must not be what wakes the resumed try here.
    monkeypatch.setenv("UPDRAFT__SCHEDULER__RECONCILE_INTERVAL", "30")
    conf.reload()
    subject = f"{subjects.prefix()}.answers.billing"
    h.write_dag(bus_env, "await_answer", ANSWER_DAG.format(subject=subject))
    with running_nodes(bus_env) as (scheduler, triggerer):
        h.wait_parsed("await_answer")
        run_id = h.trigger("await_answer")
        scheduler.wake()  # a trigger through the store: the bus would have woken it
        h.wait_for(lambda: holders().get(triggerer.node_id), 60,
                   what="the triggerer to run the NATS trigger", describe=holders)
        time.sleep(0.5)  # the subscription is made as the trigger starts
        publish(nats_url, subject, {"request": "another run", "ok": True, "value": 1})
        publish(nats_url, subject, {"request": run_id, "ok": False, "value": 2})
        publish(nats_url, subject, "not json")
        time.sleep(1.0)
        assert count("await_answer", "deferred") == 1  # nothing matched yet
        sent = time.monotonic()
        publish(nats_url, subject, {"request": run_id, "ok": True, "value": 21})
        assert h.wait_run("await_answer", run_id, timeout=60) == "success"
        took = time.monotonic() - sent
    print(f"\nanswer published -> run finished: {took:.2f} s")
    from updraft.models.xcom import get_xcom

    with h.session() as s:
        message = get_xcom(s, dag_id="await_answer", run_id=run_id, task_id="answer")
        doubled = get_xcom(s, dag_id="await_answer", run_id=run_id, task_id="use")
    assert message == {"subject": subject, "data": {"request": run_id, "ok": True, "value": 21}}
    assert doubled == 42
    assert h.tis("await_answer", run_id)["answer"].try_number == 1
    assert took < 20  # the reconcile timer is 30 s: the nudge on P.wake.scheduler woke it


CONTROLLER_DAG = """
from datetime import datetime
from updraft import DAG
from updraft.operators.trigger_dagrun import TriggerDagRunOperator
from updraft.sensors.external_task import ExternalTaskSensor

with DAG("controller", start_date=datetime(2024, 1, 1), schedule=None):
    TriggerDagRunOperator(task_id="run_target", trigger_dag_id="target",
                          trigger_run_id="{{ run_id }}", logical_date="{{ logical_date }}",
                          wait_for_completion=True, deferrable=True, poke_interval=60)
    ExternalTaskSensor(task_id="watch_target", external_dag_id="target",
                       external_task_id="slow", deferrable=True, poll_interval=60,
                       poke_interval=60)
"""

TARGET_DAG = """
import time
from datetime import datetime
from updraft import DAG
from updraft.decorators import task

with DAG("target", start_date=datetime(2024, 1, 1), schedule=None):
    @task
    def slow():
        time.sleep(3)

    slow()
"""


@pytest.mark.slow
def test_waiting_for_another_run_is_woken_by_its_state_events(bus_env, monkeypatch):
    from updraft.config import conf

    # The triggered run is queued through the store: a short timer starts it.
    monkeypatch.setenv("UPDRAFT__SCHEDULER__RECONCILE_INTERVAL", "1")
    conf.reload()
    h.write_dag(bus_env, "target", TARGET_DAG)
    h.write_dag(bus_env, "controller", CONTROLLER_DAG)
    with running_nodes(bus_env) as (scheduler, _triggerer):
        h.wait_parsed("target")
        h.wait_parsed("controller")
        run_id = h.trigger("controller")
        scheduler.wake()  # a trigger through the store: the bus would have woken it
        h.wait_for(lambda: count("controller", "deferred") == 2, 60,
                   what="both waiting tasks to defer",
                   describe=lambda: h.states("controller", run_id))
        assert h.wait_run("target", run_id, timeout=60) == "success"
        target_end = h.tis("target", run_id)["slow"].end_date
        assert h.wait_run("controller", run_id, timeout=60) == "success", \
            story("controller", run_id, "run_target")
    tis = h.tis("controller", run_id)
    for task_id in ("run_target", "watch_target"):
        assert (tis[task_id].state, tis[task_id].try_number) == ("success", 1)
        lag = (tis[task_id].end_date - target_end).total_seconds()
        print(f"\n{task_id} ended {lag:.2f} s after the target's task (poll interval 60 s)")
        assert lag < 20  # woken by the state events, not the 60 s checks


def test_a_deferred_try_resumes_on_the_nats_work_queue_executor(bus_env, nats_url):
    """The same try, deferred on an ``updraft worker`` slot and resumed on one: its
    queueings have distinct Nats-Msg-Ids, so the work queue keeps both."""
    from test_deferral import RESUME_DAG, running_triggerer
    from test_nats_queue import WorkerThread

    from executors import get_executor
    from updraft.models.xcom import get_xcom

    h.write_dag(bus_env, "resume_dag", RESUME_DAG)
    with WorkerThread(queues=["default"], concurrency=2), \
            h.running_scheduler(bus_env, get_executor("nats_queue", parallelism=2)) as sched, \
            running_triggerer(sched):
        h.wait_parsed("resume_dag")
        run_id = h.trigger("resume_dag")
        sched.wake()
        assert h.wait_run("resume_dag", run_id, timeout=90) == "success", \
            story("resume_dag", run_id, "wait")
    ti = h.tis("resume_dag", run_id)["wait"]
    assert (ti.state, ti.try_number, ti.executor) == ("success", 1, "nats_queue")
    with h.session() as s:
        assert get_xcom(s, dag_id="resume_dag", run_id=run_id, task_id="wait")["carried"] == 42
    lines = story("resume_dag", run_id, "wait")
    assert any(line.startswith("running->deferred") for line in lines), lines
