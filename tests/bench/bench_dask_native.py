"""Dask-native tasks: a 10-million-row Dask DataFrame through a DAG, one thread vs the cluster.

The DAG of issue 17: task A builds a Dask DataFrame of ``--rows`` rows (16 partitions of
generated data) and returns it, B aggregates it (a group-by on the cluster), C reports. It
runs on the real scheduler with the cluster the Dask executor starts and process isolation,
twice: on one worker with one thread, then on ``--workers`` workers of ``--threads`` threads
each; on each cluster the DAG runs twice and the second run counts (the first pays for
importing pandas and dask.dataframe in the workers and try processes). Printed per setting: the durations of A and B (from the store), the run's wall time,
the largest XCom row in the store (bytes: references only), and the bytes kept on the
cluster; then the speedup over one thread of A+B and of B's group-by alone (A and B also
pay fixed costs: the try's process, its client's connection, publishing). With more than
one thread per worker, the same number of workers with one thread each is measured too
(pandas holds the GIL in parts of a group-by: processes scale where threads may not).

Run it: ``python tests/bench/bench_dask_native.py [--rows 10000000] [--workers 2]
[--threads 4] [--repeat 1]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

DAG = '''
from datetime import datetime

from updraft import DAG, task

ROWS = __ROWS__
PARTS = 16

with DAG("bench_dask_native", schedule=None, start_date=datetime(2024, 1, 1),
         default_args={"retries": 0}, max_active_runs=1) as dag:
    @task.dask
    def build():
        import dask.dataframe as dd
        import numpy as np
        import pandas as pd

        def part(i):
            rng = np.random.default_rng(i)
            n = ROWS // PARTS
            return pd.DataFrame({"key": rng.integers(0, 1000, n), "value": rng.random(n),
                                 "other": rng.normal(size=n)})

        return dd.from_map(part, range(PARTS))

    @task.dask
    def aggregate(frame):
        import time

        started = time.perf_counter()
        out = frame.groupby("key").agg({"value": ["sum", "mean"], "other": ["std"]}).compute()
        return {"groups": int(len(out)), "total": round(float(out[("value", "sum")].sum()), 3),
                "compute": time.perf_counter() - started}

    @task
    def report(summary):
        print(summary)
        return summary

    report(aggregate(build()))
'''


def run_once(rows: int, workers: int, threads: int, runs: int = 2) -> dict:
    """``runs`` runs of the DAG, one after the other, on a fresh cluster of ``workers`` x
    ``threads``; the figures of the last (the first pays for imports in the workers and
    the try processes: pandas, dask.dataframe)."""
    import scheduler_helpers as h

    from executors import get_executor
    from updraft.config import conf
    from updraft.store.engine import dispose_engines
    from updraft.store.migrate import migrate

    home = Path(tempfile.mkdtemp(prefix="bench-dask-native-"))
    os.environ["UPDRAFT_HOME"] = str(home)
    dags = home / "dags"
    h.write_dag(dags, "bench_dask_native", DAG.replace("__ROWS__", str(rows)))
    for name, value in h.FAST_SETTINGS.items():
        os.environ[name] = value
    os.environ["UPDRAFT__CORE__DAGS_FOLDER"] = str(dags)
    os.environ["UPDRAFT__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'updraft.db'}"
    os.environ["UPDRAFT__DASK__PERFORMANCE_REPORT"] = "false"  # not part of the work
    conf.reload()
    migrate()
    executor = get_executor("dask", parallelism=16, n_workers=workers,
                            threads_per_worker=threads, processes=True,
                            dashboard_address=None, scheduler_address="")
    with h.running_scheduler(dags, executor):
        h.wait_parsed("bench_dask_native", timeout=120)
        for _ in range(runs):
            started = time.monotonic()
            run_id = h.trigger("bench_dask_native")
            state = h.wait_run("bench_dask_native", run_id, timeout=900)
            wall = time.monotonic() - started
            assert state == "success", h.states("bench_dask_native", run_id)
        tis = h.tis("bench_dask_native", run_id)
        from sqlalchemy import select

        from updraft.store.models import XComModel

        with h.session() as s:
            sizes = [len(v or "") for v in s.scalars(select(XComModel.value).where(
                XComModel.run_id == run_id))]
        from updraft.models.xcom import deserialize_value

        with h.session() as s:
            text = s.scalar(select(XComModel.value).where(XComModel.run_id == run_id,
                                                          XComModel.task_id == "build"))
        kept = deserialize_value(text).meta.get("nbytes")
        with h.session() as s:
            summary = deserialize_value(s.scalar(select(XComModel.value).where(
                XComModel.run_id == run_id, XComModel.task_id == "aggregate")))
        threads_used = executor.health()["total_threads"]
    dispose_engines()
    return {"build": tis["build"].duration, "aggregate": tis["aggregate"].duration,
            "wall": wall, "compute": summary["compute"], "max_xcom": max(sizes), "kept": kept, "threads": threads_used}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    results = {}
    settings = [("1 worker x 1 thread", 1, 1),
                (f"{args.workers} workers x {args.threads} threads", args.workers,
                 args.threads)]
    if args.threads > 1:
        settings.append((f"{args.workers} workers x 1 thread", args.workers, 1))
    for label, workers, threads in settings:
        runs = [run_once(args.rows, workers, threads) for _ in range(args.repeat)]
        best = {key: statistics.median(r[key] for r in runs) for key in
                ("build", "aggregate", "wall", "compute")}
        results[label] = best
        last = runs[-1]
        print(f"{label:>24}: A {best['build']:.2f} s, B {best['aggregate']:.2f} s (its "
              f"group-by {best['compute']:.2f} s), run "
              f"{best['wall']:.2f} s; largest XCom row {last['max_xcom']} bytes; "
              f"{(last['kept'] or 0) / 2 ** 20:.0f} MiB kept on the cluster "
              f"({last['threads']} threads)", flush=True)
    one = results[settings[0][0]]
    for label, *_rest in settings[1:]:
        many = results[label]
        work_one = one["build"] + one["aggregate"]
        work_many = many["build"] + many["aggregate"]
        print(f"{label}: speedup over one thread: A+B {work_one / work_many:.2f}x "
              f"({work_one:.2f} s -> {work_many:.2f} s), B's group-by "
              f"{one['compute'] / many['compute']:.2f}x ({one['compute']:.2f} s -> "
              f"{many['compute']:.2f} s); {os.cpu_count()} CPU cores", flush=True)


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
