"""Horizontal scaling: 1,000 tasks that each sleep 200 ms on 1, 2 and 4 Dask workers.

    .venv/bin/python tests/bench/bench_scale.py [--tasks 1000] [--sleep 0.2] [--threads 4]
        [--workers 1,2,4] [--store URL] [--isolation process|thread] [--max-bundle N]

An external Dask cluster (``dask scheduler`` and ``dask worker`` processes, as a platform
team runs one: ``tests/dask_processes.py``) and an Updraft scheduler in this process on a
fresh store (SQLite in a temp folder, or ``--store``). The workers have no DAGs folder: they
fetch the DAG bundle from the store. One benchmark run grows the same cluster: with 1
worker it runs the DAG once, then adds workers to 2 and runs it again, then to 4. Before
each measured run a warm-up run of no-op tasks lets every worker fetch the bundle and warm
its try processes.

The DAG has ``--tasks`` independent tasks that sleep ``--sleep`` seconds (sleep-bound: two
cores do not limit it). For each size it prints the run's time (its start to its end, as
the store records them), the ideal (tasks x sleep / (workers x threads)) and the
efficiency, ideal / time. Target: at least 80 % at 4 workers. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

DAG = '''
import time
from datetime import datetime
from updraft import DAG
from updraft.operators.python import PythonOperator

def nap(seconds):
    time.sleep(seconds)

for dag_id, count, seconds in (("bench_scale", {tasks}, {sleep}),
                               ("bench_scale_warmup", {warm}, 0.0)):
    with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1),
             max_active_tasks={concurrency}) as dag:
        for i in range(count):
            PythonOperator(task_id=f"t{{i:04d}}", python_callable=nap, op_args=[seconds])
    globals()[dag_id] = dag
'''


def run_once(dag_id: str, timeout: float) -> float:
    """Trigger ``dag_id``, wait for its run, return its start-to-end seconds."""
    from sqlalchemy import select

    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel

    with session_scope() as session:
        run_id = trigger_dag_run(session, dag_id, triggered_by="bench").run_id
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            run = session.scalar(select(DagRunModel).where(
                DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))
            if run.state in ("success", "failed"):
                if run.state != "success":
                    raise RuntimeError(f"{dag_id} {run_id} ended {run.state}")
                return (run.end_date - run.start_date).total_seconds()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id} {run_id} did not end within {timeout:g} s")
        time.sleep(0.2)


def wait_parsed(dag_ids: list[str], timeout: float = 120.0) -> None:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            found = set(session.scalars(select(DagModel.dag_id).where(
                DagModel.dag_id.in_(dag_ids), DagModel.is_active.is_(True))))
        if found == set(dag_ids):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"DAGs not parsed: {set(dag_ids) - found}")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=4, help="threads per Dask worker")
    parser.add_argument("--workers", default="1,2,4", help="cluster sizes, growing")
    parser.add_argument("--store", default="", help="store URL (default: SQLite in a temp dir)")
    parser.add_argument("--isolation", default="", help="[core] task_isolation for the tries")
    parser.add_argument("--max-bundle", default="", help="[dask] max_bundle (default: config)")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.workers.split(",")]
    concurrency = max(sizes) * args.threads

    workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    dags = workdir / "dags"
    dags.mkdir()
    (dags / "bench_scale.py").write_text(DAG.format(
        tasks=args.tasks, sleep=args.sleep, warm=concurrency * 2, concurrency=concurrency * 2))
    store = args.store or f"sqlite:///{workdir / 'store.db'}"
    env = {
        "UPDRAFT_HOME": str(workdir / "home"),
        "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": store,
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
        "UPDRAFT__CORE__PARALLELISM": str(concurrency * 2),
        "UPDRAFT__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(concurrency * 2),
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "1",
        "UPDRAFT__NATS__SERVERS": "",  # no bus: the scheduler alone
        "UPDRAFT__LOGGING__LIVE_LOGS": "false",
    }
    if args.isolation:
        env["UPDRAFT__CORE__TASK_ISOLATION"] = args.isolation
    if args.max_bundle:
        env["UPDRAFT__DASK__MAX_BUNDLE"] = args.max_bundle
    os.environ.update(env)
    (workdir / "home").mkdir()
    from updraft.config import conf

    conf.reload()
    from dask_processes import DaskProcesses

    from executors.dask import DaskExecutor
    from scheduler.core import Scheduler
    from updraft.store.migrate import migrate

    migrate(store)
    # The workers' environment: the store, no DAGs folder (they fetch bundles).
    worker_env = {k: v for k, v in os.environ.items() if k != "UPDRAFT__CORE__DAGS_FOLDER"}
    worker_env["UPDRAFT__CORE__DAGS_FOLDER"] = str(workdir / "no-dags-here")
    cluster = DaskProcesses(workdir / "cluster", worker_env, threads=args.threads)
    (workdir / "cluster").mkdir()
    scheduler = None
    thread = None
    try:
        cluster.start_scheduler()
        cluster.add_worker()
        cluster.wait_workers(1)
        executor = DaskExecutor(scheduler_address=cluster.address)
        scheduler = Scheduler(executor, dags_folder=str(dags))
        thread = threading.Thread(target=scheduler.run, name="bench-scheduler", daemon=True)
        thread.start()
        wait_parsed(["bench_scale", "bench_scale_warmup"])
        print(f"{args.tasks} tasks of {args.sleep:g} s, {args.threads} threads per worker, "
              f"store {store.split(':')[0]}, isolation {conf.get('core', 'task_isolation')}, "
              f"max_bundle {conf.get('dask', 'max_bundle')}")
        print(f"{'workers':>8} {'time s':>8} {'ideal s':>8} {'efficiency':>10}")
        results = []
        for size in sizes:
            while len(cluster.workers) < size:
                cluster.add_worker()
            cluster.wait_workers(size)
            run_once("bench_scale_warmup", timeout=300)
            elapsed = run_once("bench_scale", timeout=args.tasks * args.sleep + 600)
            ideal = args.tasks * args.sleep / (size * args.threads)
            results.append((size, elapsed, ideal))
            print(f"{size:>8} {elapsed:>8.2f} {ideal:>8.2f} {ideal / elapsed:>9.0%}",
                  flush=True)
        base = results[0][1]
        for size, elapsed, _ideal in results[1:]:
            print(f"speed-up {results[0][0]} -> {size} workers: {base / elapsed:.2f}x "
                  f"(ideal {size / results[0][0]:.0f}x)")
    finally:
        if scheduler is not None:
            scheduler.stop()
        if thread is not None:
            thread.join(timeout=60)
        cluster.stop()


if __name__ == "__main__":
    main()
