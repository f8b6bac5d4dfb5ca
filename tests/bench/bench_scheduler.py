"""Scheduler benchmarks: trigger-to-done of three graphs on the Dask executor, beside the
same graphs as plain Dask futures in the same run.

    .venv/bin/python tests/bench/bench_scheduler.py [chain fanout layered] [--executor dask]
        [--isolation process,thread]

Each graph runs with every isolation mode asked for (``[core] task_isolation``: each try
in its own process, the default, or in the worker's thread), and prints the CPU spent per
try by the whole process tree (scheduler, Dask, zygotes, try processes) beside plain
Dask's.

(a) a chain of 100 no-op tasks (the figure that matters: milliseconds per task-to-task
hop), (b) one task fanning out to 1,000 no-op tasks and a join, (c) 10,000 no-op tasks in
10 layers. Updraft runs as a real ``updraft scheduler`` process (Dask LocalCluster with 2
workers) on a fresh SQLite store; its peak memory is read from /proc (VmHWM). Figures are
printed, never asserted.

Warm-up, on both sides: plain Dask runs one task before the clock starts; Updraft is
triggered ``--settle`` seconds (default 2) after its DAG was parsed, as a deployed DAG is,
so the workers have imported the task runner and parsed the DAG ahead (``--settle 0``
measures a trigger right after the first parse instead).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

DAG_FILES = {
    "chain": """
        from datetime import datetime
        from updraft import DAG
        from updraft.operators.python import PythonOperator

        def noop():
            return None

        with DAG("bench_chain", start_date=datetime(2024, 1, 1), schedule=None) as dag:
            previous = None
            for i in range(100):
                op = PythonOperator(task_id=f"t{i:03d}", python_callable=noop)
                if previous is not None:
                    previous >> op
                previous = op
    """,
    "fanout": """
        from datetime import datetime
        from updraft import DAG
        from updraft.operators.python import PythonOperator

        def noop():
            return None

        with DAG("bench_fanout", start_date=datetime(2024, 1, 1), schedule=None,
                 max_active_tasks=10000) as dag:
            start = PythonOperator(task_id="start", python_callable=noop)
            join = PythonOperator(task_id="join", python_callable=noop)
            for i in range(1000):
                start >> PythonOperator(task_id=f"t{i:04d}", python_callable=noop) >> join
    """,
    "layered": """
        from datetime import datetime
        from updraft import DAG
        from updraft.operators.python import PythonOperator

        def noop():
            return None

        with DAG("bench_layered", start_date=datetime(2024, 1, 1), schedule=None,
                 max_active_tasks=100000) as dag:
            previous = []
            for layer in range(10):
                current = [PythonOperator(task_id=f"l{layer}_{i:04d}", python_callable=noop)
                           for i in range(1000)]
                if previous:
                    for i, op in enumerate(current):
                        previous[i] >> op
                        if i % 2:
                            previous[(i * 7) % 1000] >> op
                previous = current
    """,
}


def _env(home: Path, dags: Path, executor: str, isolation: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "UPDRAFT__CORE__TASK_ISOLATION": isolation,
        "UPDRAFT_HOME": str(home),
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__EXECUTOR": executor,
        "UPDRAFT__CORE__PARALLELISM": "64",
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT": "300",
        "UPDRAFT__DASK__N_WORKERS": "2",
        "UPDRAFT__DASK__THREADS_PER_WORKER": "4",
        "UPDRAFT__DASK__DASHBOARD_ADDRESS": "",
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "1",
        "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3600",
        "UPDRAFT__LOGGING__LEVEL": "WARNING",
        # Each run gets its own subjects, so other schedulers on the same NATS stay out.
        "UPDRAFT__NATS__SUBJECT_PREFIX": f"bench{os.getpid()}",
    })
    return env


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants, reaped children included."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = 0.0
        for process in [root, *root.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total
    except psutil.Error:
        return 0.0


def _print_breakdown(pid: int) -> None:
    """CPU seconds of each process of the tree so far (BENCH_BREAKDOWN=1)."""
    import psutil

    root = psutil.Process(pid)
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            print(f"    {process.pid:7} {' '.join(process.cmdline())[:90]:90} "
                  f"{times.user + times.system:6.2f} s (+children "
                  f"{times.children_user + times.children_system:.2f} s)")
        except psutil.Error:
            pass


TRIES = {"chain": 100, "fanout": 1002, "layered": 10000}


def run_updraft(kind: str, executor: str = "dask", settle: float = 2.0,
                isolation: str = "process") -> dict:
    """Run one graph through a real scheduler process; return timings and peak memory."""
    with tempfile.TemporaryDirectory(prefix="updraft-bench-") as tmp:
        if os.environ.get("BENCH_KEEP"):
            tmp = tempfile.mkdtemp(prefix="updraft-bench-keep-")
            print("keeping", tmp)
        home, dags = Path(tmp) / "home", Path(tmp) / "dags"
        dags.mkdir(parents=True)
        (dags / f"bench_{kind}.py").write_text(textwrap.dedent(DAG_FILES[kind]))
        env = _env(home, dags, executor, isolation)
        os.environ.update(env)
        from updraft.config import conf

        conf.reload()
        from updraft.store.engine import dispose_engines, session_scope
        from updraft.store.migrate import migrate

        dispose_engines()
        migrate()
        log_path = Path(tmp) / "scheduler.log"
        log_file = open(log_path, "wb")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen([sys.executable, "-m", "updraft.cli", "scheduler"], env=env,
                                stdout=log_file, stderr=subprocess.STDOUT, cwd=str(ROOT))
        try:
            dag_id = f"bench_{kind}"
            from updraft.store.models import DagModel, DagRunModel

            deadline = time.monotonic() + 300
            while True:
                with session_scope() as session:
                    row = session.get(DagModel, dag_id)
                    if row is not None and row.is_active:
                        break
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the scheduler did not parse the DAG: " +
                                       log_path.read_text()[-2000:])
                time.sleep(0.2)
            time.sleep(settle)
            cpu_before = _tree_cpu(proc.pid)
            spy = None
            if os.environ.get("BENCH_PYSPY"):
                # BENCH_PYSPY=out.raw: samples of GIL holders in the whole tree (py-spy must
                # be installed; `pip install py-spy`), in py-spy's raw (collapsed) format.
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--subprocesses",
                     "--gil", "--format", "raw", "--rate",
                     os.environ.get("BENCH_PYSPY_RATE", "200"), "-p", str(proc.pid),
                     "-o", os.environ["BENCH_PYSPY"]],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            run_id, via = _trigger(dag_id, deadline)
            with session_scope() as session:
                triggered = session.query(DagRunModel).filter_by(
                    dag_id=dag_id, run_id=run_id).one().queued_at
            while True:
                with session_scope() as session:
                    run = session.query(DagRunModel).filter_by(dag_id=dag_id,
                                                               run_id=run_id).one()
                    if run.state in ("success", "failed"):
                        break
                if time.monotonic() > deadline + 600:
                    raise RuntimeError("the run did not finish in time")
                time.sleep(0.05)
            seconds = (run.end_date - triggered).total_seconds()
            cpu = _tree_cpu(proc.pid) - cpu_before
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            if os.environ.get("BENCH_BREAKDOWN"):
                _print_breakdown(proc.pid)
            peak = _peak_rss_mb(proc.pid)
            with session_scope() as session:
                from sqlalchemy import func

                from updraft.store.models import TaskInstanceModel as TIM

                first, last = session.query(func.min(TIM.start_date),
                                            func.max(TIM.end_date)).filter(
                    TIM.dag_id == dag_id, TIM.run_id == run_id).one()
                if run.state != "success":
                    from updraft.store.models import TaskInstanceTry as TRY

                    for row in session.query(TRY).filter(
                            TRY.dag_id == dag_id, TRY.run_id == run_id,
                            TRY.state != "success").limit(5):
                        print(f"  {row.task_id} try {row.try_number}: {row.state}: {row.error}",
                              file=sys.stderr)
                    print(log_path.read_text()[-3000:], file=sys.stderr)
            return {"state": run.state, "seconds": seconds, "peak_mb": peak, "via": via,
                    "tasks_seconds": (last - first).total_seconds(),
                    "cpu_ms_per_try": cpu / TRIES[kind] * 1000}
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log_file.close()
            dispose_engines()


def _trigger(dag_id: str, deadline: float) -> tuple[str, str]:
    """Trigger over the bus (the scheduler wakes at once) if NATS is up, else in the store."""
    try:
        from bus.client import CommandError, request_command

        while True:
            try:
                return request_command("trigger", {"dag_id": dag_id}, timeout=5)["run_id"], "bus"
            except CommandError as exc:
                if exc.code == "unavailable" or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)  # the scheduler's bus may still be connecting
    except Exception:  # noqa: BLE001  (no NATS here: the slow timer picks the run up)
        from updraft.store.commands import trigger_dag_run
        from updraft.store.engine import session_scope

        with session_scope() as session:
            return trigger_dag_run(session, dag_id, triggered_by="bench").run_id, "store"


def run_dask_baseline(kind: str) -> tuple[float, float]:
    """The same graph as plain Dask futures on a LocalCluster with 2 workers: seconds, and
    CPU milliseconds per task (this process and the cluster's)."""
    from distributed import Client, LocalCluster

    def noop(*_args):
        return None

    with LocalCluster(n_workers=2, threads_per_worker=4, dashboard_address=None,
                      processes=True) as cluster, Client(cluster) as client:
        client.submit(noop, pure=False).result()  # warm up
        cpu_before = _tree_cpu(os.getpid())
        started = time.perf_counter()
        if kind == "chain":
            future = None
            for _ in range(100):
                future = client.submit(noop, future, pure=False)
            future.result()
        elif kind == "fanout":
            start = client.submit(noop, pure=False)
            middle = [client.submit(noop, start, pure=False) for _ in range(1000)]
            client.submit(noop, *middle, pure=False).result()
        else:
            previous = []
            for layer in range(10):
                current = []
                for i in range(1000):
                    deps = []
                    if previous:
                        deps.append(previous[i])
                        if i % 2:
                            deps.append(previous[(i * 7) % 1000])
                    current.append(client.submit(noop, *deps, pure=False))
                previous = current
            client.gather(previous)
        seconds = time.perf_counter() - started
        return seconds, (_tree_cpu(os.getpid()) - cpu_before) / TRIES[kind] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kinds", nargs="*", default=["chain", "fanout", "layered"])
    parser.add_argument("--executor", default="dask")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between the DAG's first parse and the trigger")
    parser.add_argument("--isolation", default="process,thread",
                        help="comma-separated [core] task_isolation modes to run")
    args = parser.parse_args()
    modes = [m.strip() for m in args.isolation.split(",") if m.strip()]
    for kind in args.kinds:
        baselines = [run_dask_baseline(kind) for _ in range(args.repeat)]
        baseline = statistics.median(b[0] for b in baselines)
        baseline_cpu = statistics.median(b[1] for b in baselines)
        if kind == "chain":
            print(f"{kind:8} plain dask {baseline:7.3f} s  hop {baseline / 99 * 1000:.1f} ms  "
                  f"cpu/task {baseline_cpu:.2f} ms", flush=True)
        else:
            print(f"{kind:8} plain dask {baseline:7.3f} s  cpu/task {baseline_cpu:.2f} ms",
                  flush=True)
        for mode in modes:
            results = [run_updraft(kind, args.executor, args.settle, mode)
                       for _ in range(args.repeat)]
            seconds = statistics.median(r["seconds"] for r in results)
            peak = max((r["peak_mb"] or 0) for r in results)
            cpu = statistics.median(r["cpu_ms_per_try"] for r in results)
            line = (f"{kind:8} updraft[{args.executor}, {mode:7}] {seconds:8.2f} s  ratio "
                    f"{seconds / baseline:5.1f}x  cpu/try {cpu:6.2f} ms "
                    f"({cpu / baseline_cpu:4.1f}x)  scheduler peak {peak:5.0f} MB  "
                    f"state {results[-1]['state']}")
            line += f"  (tasks {statistics.median(r['tasks_seconds'] for r in results):.2f} " \
                    f"s, trigger via {results[-1]['via']})"
            if kind == "chain":
                hop = statistics.median(r["tasks_seconds"] for r in results) / 99 * 1000
                line += f"  hop {hop:.1f} ms ({hop / (baseline / 99 * 1000):.1f}x)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
