"""Trigger-to-first-task-running latency through the NATS bus.

    .venv/bin/python tests/bench/bench_trigger_latency.py [-n 30] [--executor sequential]
        [--nats nats://127.0.0.1:4222] [--via trigger|command]

A scheduler (in this process, in a thread) on a fresh SQLite store serves the bus. Each
round publishes one outside trigger into JetStream (``--via trigger``, the default) or sends
the ``trigger`` command (``--via command``), then waits for the run to finish. The latency
is the first task's ``start_date`` in the store minus the publish time (same clock), so it
covers JetStream, the trigger consumer, the run's commit, the scheduler pass and dispatch,
and the executor picking the task up. The arrival of the first task event on
``evt.ti.<dag>`` is reported beside it. Uses the NATS at ``--nats`` if it answers, else an
embedded nats-server. Figures are printed, never asserted (target: median under 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

DAG = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("bench_latency", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
'''


def _figures(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no data"
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (f"{name}: median {statistics.median(ms):.1f} ms, p90 {p90:.1f} ms, "
            f"min {ms[0]:.1f} ms, max {ms[-1]:.1f} ms (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="number of triggers")
    parser.add_argument("--executor", default="sequential")
    parser.add_argument("--nats", default=os.environ.get("UPDRAFT_TEST_NATS_URL",
                                                         "nats://127.0.0.1:4222"))
    parser.add_argument("--via", choices=("trigger", "command"), default="trigger")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="updraft-bench-latency-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / "bench_latency.py").write_text(DAG)
    os.environ.update({
        "UPDRAFT_HOME": str(work / "home"),
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
        "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "1",
        "UPDRAFT__NATS__SUBJECT_PREFIX": f"bench{secrets.token_hex(3)}",
    })
    (work / "home").mkdir()

    from bus.connection import BusThread, BusUnavailable, connect

    embedded = None
    try:
        asyncio.run(_close(connect(args.nats)))
        url = args.nats
    except BusUnavailable:
        from bus.embedded import EmbeddedNatsServer

        embedded = EmbeddedNatsServer(work / "jetstream").start()
        url = embedded.url
    os.environ["UPDRAFT__NATS__SERVERS"] = url

    from updraft.config import conf

    conf.reload()
    from sqlalchemy import select

    from bus import schemas, subjects
    from bus.client import request_command
    from bus.node import SchedulerBus
    from executors import get_executor
    from scheduler.core import Scheduler
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel

    migrate(conf.sql_alchemy_conn())
    scheduler = Scheduler(get_executor(args.executor), dags_folder=str(dags))
    node = SchedulerBus(scheduler)
    node.start(wait=5)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()

    first_event: dict[str, float] = {}

    async def on_ti(nc):
        async def cb(msg):
            event = schemas.decode(schemas.TiStateEvent, msg.data)
            first_event.setdefault(event.run_id, time.time())
        await nc.subscribe(subjects.evt_ti("bench_latency"), cb=cb)

    client = BusThread(name="bench-client")
    client.on_connect(on_ti)
    client.start(wait=5)

    def wait(predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.005)
        raise SystemExit("timed out: is the scheduler running?")

    def parsed():
        with session_scope() as s:
            row = s.get(DagModel, "bench_latency")
            return row is not None and row.is_active

    wait(parsed)
    js_latencies, event_latencies = [], []
    print(f"NATS {url}{' (embedded)' if embedded else ''}; executor {args.executor}; "
          f"{args.n} triggers via {args.via}")
    for i in range(args.n):
        run_id = f"bench_{i}"
        sent = time.time()
        if args.via == "trigger":
            body = json.dumps({"conf": {}, "run_id": run_id}).encode()
            client.call(client.nc.jetstream().publish(subjects.trigger("bench_latency"),
                                                      body, headers={"Nats-Msg-Id": run_id}))
        else:
            request_command("trigger", {"dag_id": "bench_latency", "run_id": run_id},
                            bus=client)

        def started(run_id=run_id):
            with session_scope() as s:
                state = s.scalar(select(DagRunModel.state).where(
                    DagRunModel.dag_id == "bench_latency", DagRunModel.run_id == run_id))
                if state not in ("success", "failed"):
                    return None
                return s.scalar(select(TaskInstanceModel.start_date).where(
                    TaskInstanceModel.dag_id == "bench_latency",
                    TaskInstanceModel.run_id == run_id,
                    TaskInstanceModel.task_id == "first"))
        start_date = wait(started)
        js_latencies.append(start_date.timestamp() - sent)
        deadline = time.monotonic() + 1.0  # events go out after the store has them
        while run_id not in first_event and time.monotonic() < deadline:
            time.sleep(0.005)
        if run_id in first_event:
            event_latencies.append(first_event[run_id] - sent)
    print(_figures("trigger -> first task running (store start_date)", js_latencies))
    print(_figures("trigger -> first task event received", event_latencies))
    scheduler.stop()
    thread.join(30)
    node.stop()
    client.call(client.nc.jetstream().delete_stream(subjects.triggers_stream()))
    client.stop()
    if embedded is not None:
        embedded.stop()


async def _close(connecting):
    nc = await connecting
    await nc.close()


if __name__ == "__main__":
    main()
