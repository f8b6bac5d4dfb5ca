"""Fan-out (1 -> 1,000 no-op tasks -> join) through the scheduler: NATS queue vs Dask.

    .venv/bin/python tests/bench/bench_fanout_nats_vs_dask.py [--repeat N] [--concurrency 4]

The same DAG (``bench_scheduler.DAG_FILES["fanout"]``) runs through a real ``updraft
scheduler`` process on a fresh SQLite store twice: with the ``nats_queue`` executor and two
``updraft worker`` processes (``--concurrency`` slots each, default 4), and with the Dask
executor (LocalCluster, 2 workers x 4 threads; ``bench_scheduler.run_updraft``). NATS is
``UPDRAFT__NATS__SERVERS`` (default nats://127.0.0.1:4222, JetStream on); each run uses a
subject prefix of its own. Prints trigger-to-done seconds of each and their ratio; asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_scheduler  # noqa: E402
import services  # noqa: E402

UPDRAFT = [sys.executable, "-m", "updraft.cli"]


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def run_nats(concurrency: int) -> dict:
    """The fan-out through a scheduler with the nats_queue executor and 2 workers."""
    servers = os.environ.get("UPDRAFT__NATS__SERVERS", "nats://127.0.0.1:4222")
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="updraft-bench-nats-") as tmp:
        home, dags = Path(tmp) / "home", Path(tmp) / "dags"
        dags.mkdir(parents=True)
        (dags / "bench_fanout.py").write_text(textwrap.dedent(
            bench_scheduler.DAG_FILES["fanout"]))
        env = bench_scheduler._env(home, dags, "nats_queue")
        env.update({"UPDRAFT__NATS__SERVERS": servers, "UPDRAFT__NATS__SUBJECT_PREFIX": prefix,
                    "UPDRAFT__WORKER__CONCURRENCY": str(concurrency)})
        os.environ.update(env)
        from updraft.config import conf

        conf.reload()
        from updraft.store.commands import trigger_dag_run
        from updraft.store.engine import dispose_engines, session_scope
        from updraft.store.migrate import migrate
        from updraft.store.models import DagModel, DagRunModel

        dispose_engines()
        migrate()
        processes = []
        logs = []
        try:
            for name in ("scheduler", "worker-1", "worker-2"):
                log = open(Path(tmp) / f"{name}.log", "wb")  # noqa: SIM115  (closed below)
                logs.append(log)
                args = ["scheduler"] if name == "scheduler" else ["worker", "--node-id", name]
                processes.append(subprocess.Popen(
                    [*UPDRAFT, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                    cwd=str(bench_scheduler.ROOT)))
            deadline = time.monotonic() + 300
            while True:
                with session_scope() as session:
                    row = session.get(DagModel, "bench_fanout")
                    if row is not None and row.is_active:
                        break
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise RuntimeError("the scheduler did not parse the DAG (or a process "
                                       "died): " + (Path(tmp) / "scheduler.log").read_text()
                                       [-2000:])
                time.sleep(0.2)
            time.sleep(1.0)  # let the workers bind their consumers
            with session_scope() as session:
                run = trigger_dag_run(session, "bench_fanout", triggered_by="bench")
                run_id, triggered = run.run_id, run.queued_at
            while True:
                with session_scope() as session:
                    run = session.query(DagRunModel).filter_by(dag_id="bench_fanout",
                                                               run_id=run_id).one()
                    if run.state in ("success", "failed"):
                        break
                if time.monotonic() > deadline + 900:
                    raise RuntimeError("the run did not finish in time")
                time.sleep(0.05)
            return {"state": run.state, "seconds": (run.end_date - triggered).total_seconds()}
        finally:
            for process in processes:
                _stop(process)
            for log in logs:
                log.close()
            dispose_engines()
            services.delete_nats_streams(servers.split(",")[0], prefix)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="slots per `updraft worker` (Dask: 4 threads per worker)")
    args = parser.parse_args()
    for i in range(args.repeat):
        nats = run_nats(args.concurrency)
        dask = bench_scheduler.run_updraft("fanout", "dask")
        ratio = nats["seconds"] / dask["seconds"] if dask["seconds"] else float("nan")
        print(f"[{i + 1}/{args.repeat}] fan-out 1 -> 1000 -> 1, trigger to done: "
              f"nats_queue (2 workers x {args.concurrency}) {nats['seconds']:7.2f} s "
              f"[{nats['state']}]   dask (2 x 4) {dask['seconds']:7.2f} s [{dask['state']}]   "
              f"nats/dask {ratio:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
