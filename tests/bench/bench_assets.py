"""Asset latency: a producer task's success to the consumer run's first task running.

    .venv/bin/python tests/bench/bench_assets.py [-n 30] [--executor sequential]
        [--nats nats://127.0.0.1:4222]

A scheduler (in this process, in a thread) on a fresh SQLite store, with its bus node, runs
two DAGs: ``bench_producer`` (one task with an outlet) and ``bench_consumer`` (scheduled on
that asset). Each round triggers the producer and waits for the consumer's run to finish.
The latency is the consumer's first task's ``start_date`` minus the producer task's
``end_date`` (both written by the store's clock on this machine), so it covers recording
the event with the outcome, the scheduler waking, the run's creation and claim, its start,
dispatch and the executor picking the task up. The same for an outside event published on
the asset's JetStream subject (``P.asset.<name>``): publish time to the first task running.
The trigger latency (``bench_trigger_latency.py``) is printed beside them, measured the same
way in the same run. Figures are printed, never asserted (target: median under 100 ms).

    .venv/bin/python tests/bench/bench_assets.py --backlog 50000 [--batch 1000]

instead times one scheduler pass over a backlog of that many waiting events (written
straight into a fresh SQLite store) and prints the runs it made, the time and the peak of
Python memory it allocated (tracemalloc): the pass reads the deliveries in chunks and never
holds the events.
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

DAGS = '''
from datetime import datetime
from updraft import DAG, Asset
from updraft.operators.empty import EmptyOperator

orders = Asset(name="bench_orders")

with DAG("bench_producer", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="produce", outlets=[orders])

with DAG("bench_consumer", schedule=[orders], start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")

with DAG("bench_triggered", schedule=None, start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="first")
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
    parser.add_argument("-n", type=int, default=30, help="rounds of each kind")
    parser.add_argument("--executor", default="sequential")
    parser.add_argument("--nats", default=os.environ.get("UPDRAFT_TEST_NATS_URL",
                                                         "nats://127.0.0.1:4222"))
    parser.add_argument("--backlog", type=int, help="time a pass over this many events")
    parser.add_argument("--batch", type=int, default=1000, help="asset_batch_size (backlog)")
    args = parser.parse_args()
    if args.backlog:
        backlog(args.backlog, args.batch)
        return

    work = Path(tempfile.mkdtemp(prefix="updraft-bench-assets-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / "bench_assets.py").write_text(DAGS)
    (work / "home").mkdir()
    os.environ.update({
        "UPDRAFT_HOME": str(work / "home"),
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
        "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "1",
        "UPDRAFT__NATS__SUBJECT_PREFIX": f"bench{secrets.token_hex(3)}",
    })
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

    from bus import subjects
    from bus.node import SchedulerBus
    from executors import get_executor
    from scheduler.core import Scheduler
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel

    migrate(conf.sql_alchemy_conn())
    scheduler = Scheduler(get_executor(args.executor), dags_folder=str(dags))
    node = SchedulerBus(scheduler)
    node.start(wait=5)
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    client = BusThread(name="bench-client")
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
            return all(s.get(DagModel, d) is not None and s.get(DagModel, d).is_active
                       for d in ("bench_producer", "bench_consumer", "bench_triggered"))

    def consumer_runs() -> list[str]:
        with session_scope() as s:
            return list(s.scalars(select(DagRunModel.run_id).where(
                DagRunModel.dag_id == "bench_consumer").order_by(DagRunModel.id)))

    def first_start(dag_id: str, run_id: str, task_id: str = "first"):
        with session_scope() as s:
            state = s.scalar(select(DagRunModel.state).where(
                DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))
            if state not in ("success", "failed"):
                return None
            return s.scalar(select(TaskInstanceModel.start_date).where(
                TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                TaskInstanceModel.task_id == task_id))

    def next_consumer_run(seen: int) -> str:
        return wait(lambda: len(consumer_runs()) > seen and consumer_runs()[seen])

    wait(parsed)
    print(f"NATS {url}{' (embedded)' if embedded else ''}; executor {args.executor}; "
          f"{args.n} rounds of each")
    produced, published, triggered = [], [], []
    for i in range(args.n):
        # A producer's success -> the consumer's first task running.
        seen = len(consumer_runs())
        with session_scope() as s:
            run_id = trigger_dag_run(s, "bench_producer", run_id=f"p_{i}",
                                     triggered_by="bench").run_id
        scheduler.wake()
        end = wait(lambda run_id=run_id: _end(first_start, run_id))
        consumer = next_consumer_run(seen)
        start = wait(lambda consumer=consumer: first_start("bench_consumer", consumer))
        produced.append(start.timestamp() - end.timestamp())

        # An outside event on the asset's JetStream subject -> the first task running.
        seen = len(consumer_runs())
        sent = time.time()
        client.call(client.nc.jetstream().publish(
            subjects.asset("bench_orders"), json.dumps({"extra": {"i": i}}).encode(),
            headers={"Nats-Msg-Id": f"bench-{i}"}))
        consumer = next_consumer_run(seen)
        start = wait(lambda consumer=consumer: first_start("bench_consumer", consumer))
        published.append(start.timestamp() - sent)

        # Beside them, a NATS trigger -> the first task running (bench_trigger_latency).
        sent = time.time()
        client.call(client.nc.jetstream().publish(
            subjects.trigger("bench_triggered"),
            json.dumps({"conf": {}, "run_id": f"t_{i}"}).encode(),
            headers={"Nats-Msg-Id": f"t-{i}"}))
        start = wait(lambda i=i: first_start("bench_triggered", f"t_{i}"))
        triggered.append(start.timestamp() - sent)
    print(_figures("producer success -> consumer's first task running", produced))
    print(_figures("asset event on NATS -> consumer's first task running", published))
    print(_figures("run trigger on NATS -> first task running (beside)", triggered))
    scheduler.stop()
    thread.join(30)
    node.stop()
    for stream in (subjects.assets_stream(), subjects.triggers_stream()):
        try:
            client.call(client.nc.jetstream().delete_stream(stream))
        except Exception:  # noqa: BLE001, S110  (cleaning up only)
            pass
    client.stop()
    if embedded is not None:
        embedded.stop()


def backlog(total: int, batch: int) -> None:
    """One scheduler pass over ``total`` waiting events of one consuming DAG."""
    import tracemalloc
    from datetime import UTC, datetime

    os.environ["UPDRAFT_HOME"] = tempfile.mkdtemp(prefix="updraft-bench-backlog-")
    from updraft.config import conf

    conf.reload()
    from sqlalchemy import func, insert, select

    from scheduler.assets import AssetRuns
    from updraft import DAG, Asset
    from updraft.operators.empty import EmptyOperator
    from updraft.store.assets import record_outside_event
    from updraft.store.dags import read_dag, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from updraft.store.models import AssetDelivery, AssetEventModel, DagModel

    migrate(conf.sql_alchemy_conn())
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with DAG("backlog", schedule=[Asset("orders")], start_date=now, asset_batch_size=batch,
             max_active_runs=max(1, total // batch + 1)) as dag:
        EmptyOperator(task_id="consume")
    with session_scope() as session:
        write_dag(session, dag, file_hash="bench", now=now)
        session.get(DagModel, "backlog").is_paused = False
    with session_scope() as session:
        record_outside_event(session, name="orders", extra={}, source="api", now=now)
    with session_scope() as session:
        asset_id = session.scalar(select(AssetEventModel.asset_id))
        first = session.scalar(select(func.max(AssetEventModel.id))) + 1
        for start in range(first, first + total - 1, 10_000):
            ids = range(start, min(start + 10_000, first + total - 1))
            session.execute(insert(AssetEventModel.__table__), [
                {"id": i, "asset_id": asset_id, "extra": {"n": i}, "source": "api",
                 "timestamp": now} for i in ids])
            session.execute(insert(AssetDelivery.__table__), [
                {"dag_id": "backlog", "event_id": i, "asset_id": asset_id, "created_at": now}
                for i in ids])
    tracemalloc.start()
    started = time.monotonic()
    with session_scope(write=True) as session:
        runs = AssetRuns().create_runs(session, now, read_dag)
    took = time.monotonic() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"{total:,} waiting events, asset_batch_size={batch}: {len(runs)} runs in "
          f"{took:.1f} s, peak Python allocation {peak / 1e6:.1f} MB")


def _end(first_start, run_id: str):
    """The producer task's end, once its run finished."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel

    if first_start("bench_producer", run_id, "produce") is None:
        return None
    with session_scope() as s:
        return s.scalar(select(TaskInstanceModel.end_date).where(
            TaskInstanceModel.dag_id == "bench_producer", TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == "produce"))


async def _close(connecting):
    nc = await connecting
    await nc.close()


if __name__ == "__main__":
    main()
