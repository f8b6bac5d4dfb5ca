"""1,000 deferrable sensors waiting 30 s, on the processes a deployment runs: how close to
their deadline they end, and that none holds a worker slot while it waits.

    .venv/bin/python tests/bench/bench_deferred_sensors.py [-n 1000] [--seconds 30]
        [--executor dask] [--isolation process] [--end-from-trigger unset|true|false]

One DAG of ``n`` ``TimeDeltaSensor(deferrable=True)`` tasks (and a join) runs through a real
``updraft scheduler`` (Dask LocalCluster with 2 workers x 4 threads, as in
``bench_scheduler``) and a real ``updraft triggerer``, on a fresh SQLite store. Printed:
when the last sensor deferred, how many task instances were queued or running while the
sensors waited (a deferred sensor holds no slot: 0), and, after the deadline (the run's
data interval end + ``--seconds``), when the last trigger fired (``deferred -> scheduled``)
and when the last sensor ended. ``--end-from-trigger`` sets the sensors' parameter: left
unset (the default) a time sensor with nothing to run on resuming ends in the triggerer (ADR
13); ``false`` makes every sensor resume as a try on a worker. Figures are printed, never
asserted.
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
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

DAG = """
from datetime import datetime, timedelta
from updraft import DAG
from updraft.operators.empty import EmptyOperator
from updraft.sensors.time import TimeDeltaSensor

with DAG("bench_sensors", start_date=datetime(2024, 1, 1), schedule=None,
         max_active_tasks=100000) as dag:
    join = EmptyOperator(task_id="join")
    for i in range({n}):
        TimeDeltaSensor(task_id=f"s{{i:04d}}", delta=timedelta(seconds={seconds}),
                        deferrable=True, end_from_trigger={end_from_trigger},
                        poke_interval=5) >> join
"""


def _count(session, dag_id: str, run_id: str, *states: str) -> int:
    from sqlalchemy import func, select

    from updraft.store.models import TaskInstanceModel as T

    return session.scalar(select(func.count()).select_from(T).where(
        T.dag_id == dag_id, T.run_id == run_id, T.task_id != "join",
        T.state.in_(states))) or 0


def run(n: int, seconds: float, executor: str, isolation: str,
        end_from_trigger: bool | None) -> None:
    from bench_scheduler import _env, _trigger

    with tempfile.TemporaryDirectory(prefix="updraft-bench-sensors-") as tmp:
        home, dags = Path(tmp) / "home", Path(tmp) / "dags"
        dags.mkdir(parents=True)
        (dags / "bench_sensors.py").write_text(textwrap.dedent(DAG.format(
            n=n, seconds=seconds, end_from_trigger=end_from_trigger)))
        env = _env(home, dags, executor, isolation)
        env["UPDRAFT__TRIGGERER__CAPACITY"] = str(max(1000, n))
        os.environ.update(env)
        from updraft.config import conf

        conf.reload()
        from sqlalchemy import func, select

        from updraft.store.engine import dispose_engines, session_scope
        from updraft.store.migrate import migrate
        from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel, TiEvent

        dispose_engines()
        migrate()
        logs = [open(Path(tmp) / f"{name}.log", "wb") for name in ("scheduler", "triggerer")]
        procs = [subprocess.Popen([sys.executable, "-m", "updraft.cli", name], env=env,
                                  stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
                 for name, log in zip(("scheduler", "triggerer"), logs)]
        try:
            dag_id = "bench_sensors"
            deadline_wait = time.monotonic() + 300
            while True:
                with session_scope() as session:
                    row = session.get(DagModel, dag_id)
                    if row is not None and row.is_active:
                        break
                if time.monotonic() > deadline_wait:
                    raise RuntimeError("the scheduler did not parse the DAG")
                time.sleep(0.2)
            time.sleep(2.0)
            run_id, _via = _trigger(dag_id, deadline_wait)
            with session_scope() as session:
                run_row = session.query(DagRunModel).filter_by(dag_id=dag_id,
                                                               run_id=run_id).one()
                deadline = run_row.data_interval_end + timedelta(seconds=seconds)
                queued_at = run_row.queued_at
            from updraft.utils.timezone import utcnow

            all_deferred_at = None
            busy_while_waiting = 0
            while True:
                now = utcnow()
                with session_scope() as session:
                    deferred = _count(session, dag_id, run_id, "deferred")
                    busy = _count(session, dag_id, run_id, "queued", "running")
                    state = session.query(DagRunModel.state).filter_by(
                        dag_id=dag_id, run_id=run_id).scalar()
                if all_deferred_at is None and deferred == n:
                    all_deferred_at = now
                if all_deferred_at is not None and now < deadline - timedelta(seconds=1):
                    busy_while_waiting = max(busy_while_waiting, busy)
                if state in ("success", "failed"):
                    break
                if (now - deadline).total_seconds() > 600:
                    raise RuntimeError("the run did not finish in time")
                time.sleep(0.2)
            with session_scope() as session:
                last_end = session.scalar(select(func.max(TaskInstanceModel.end_date)).where(
                    TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                    TaskInstanceModel.task_id != "join"))
                last_wake = session.scalar(select(func.max(TiEvent.timestamp)).where(
                    TiEvent.dag_id == dag_id, TiEvent.run_id == run_id,
                    TiEvent.old_state == "deferred"))
                ever_deferred = session.scalar(select(func.count(func.distinct(
                    TiEvent.task_id))).where(TiEvent.dag_id == dag_id,
                                             TiEvent.new_state == "deferred"))
            label = f"{n} sensors x {seconds:g} s [{executor}, {isolation}" + \
                ("]" if end_from_trigger is None else f", end_from_trigger={end_from_trigger}]")
            print(f"{label}: run {state}; {ever_deferred} deferred, all of them "
                  + (f"{(all_deferred_at - queued_at).total_seconds():.1f} s after the trigger"
                     if all_deferred_at else "never at once (the first woke before the last "
                                             "deferred)")
                  + f"; at most {busy_while_waiting} queued or running while they waited")
            print(f"{label}: the last trigger fired {(last_wake - deadline).total_seconds():.2f}"
                  f" s and the last sensor ended {(last_end - deadline).total_seconds():.2f} s "
                  "after the deadline")
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for log in logs:
                log.close()
            dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--executor", default="dask")
    parser.add_argument("--isolation", default="process")
    parser.add_argument("--end-from-trigger", choices=("unset", "true", "false"),
                        default="unset")
    args = parser.parse_args()
    run(args.n, args.seconds, args.executor, args.isolation,
        {"unset": None, "true": True, "false": False}[args.end_from_trigger])


if __name__ == "__main__":
    main()
