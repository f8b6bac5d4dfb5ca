"""10,000 concurrent TimeDelta triggers in one ``updraft triggerer`` process: its memory and
how late the triggers wake their tasks.

    .venv/bin/python tests/bench/bench_triggerer.py [-n 10000] [--spread 10] [--store URL]

A fresh SQLite store (or ``--store``) gets one run with ``n`` deferred task instances, each
waiting for a ``DateTimeTrigger`` whose moment lies ``--lead`` seconds ahead, spread evenly
over ``--spread`` seconds (``--spread 0``: all at once, the worst case for the writes). One
``updraft triggerer --capacity n`` process claims and runs them all. Reported: how long the
claim took, the process's resident memory while all triggers wait (VmRSS) and its peak
(VmHWM), and the wake-up lateness of each task: the time of its ``deferred -> scheduled``
story line minus its trigger's moment (the triggerer's loop, the batched store writes and
the commit; the scheduler is not part of it). Figures are printed, never asserted (target:
under 300 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of ``pid``, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                values[name] = int(value.split()[0])
    return values


def _seed(url: str, n: int, lead: float, spread: float):
    """One run with ``n`` deferred task instances, each with its trigger row."""
    from sqlalchemy import insert

    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel, TriggerModel
    from updraft.store.triggers import encode, seal_kwargs
    from updraft.utils.timezone import utcnow

    start = utcnow() + timedelta(seconds=lead)
    moments = [start + timedelta(seconds=spread * i / max(n - 1, 1)) for i in range(n)]
    with session_scope(url) as session:
        session.add(DagModel(dag_id="bench_triggerer", fileloc="/dev/null", is_paused=False))
        session.add(DagRunModel(dag_id="bench_triggerer", run_id="bench", state="running",
                                run_type="manual", logical_date=utcnow()))
        session.flush()
        session.execute(insert(TriggerModel.__table__), [
            {"id": i + 1, "classpath": "updraft.triggers.temporal.DateTimeTrigger",
             "kwargs": seal_kwargs(encode({"moment": moment, "end_from_trigger": False})),
             "created_date": utcnow()} for i, moment in enumerate(moments)])
        session.execute(insert(TaskInstanceModel.__table__), [
            {"dag_id": "bench_triggerer", "run_id": "bench", "task_id": f"wait_{i}",
             "map_index": -1, "state": "deferred", "try_number": 1, "max_tries": 0,
             "pool": "default_pool", "pool_slots": 1, "priority_weight": 1,
             "trigger_id": i + 1, "next_method": "execute_complete",
             "next_kwargs": encode({})} for i in range(n)])
    return {f"wait_{i}": moment for i, moment in enumerate(moments)}


def _woken(url: str) -> dict:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import TiEvent

    with session_scope(url) as session:
        return {r.task_id: r.timestamp for r in session.execute(
            select(TiEvent.task_id, TiEvent.timestamp).where(
                TiEvent.dag_id == "bench_triggerer", TiEvent.old_state == "deferred",
                TiEvent.new_state == "scheduled"))}


def _held(url: str) -> int:
    from sqlalchemy import func, select

    from updraft.store.engine import session_scope
    from updraft.store.models import TriggerModel

    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(TriggerModel).where(
            TriggerModel.triggerer_id.is_not(None))) or 0


def _figures(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    if not ms:
        return f"{name}: no data"
    pick = lambda q: ms[min(len(ms) - 1, int(len(ms) * q))]  # noqa: E731
    return (f"{name}: median {statistics.median(ms):.0f} ms, p90 {pick(0.9):.0f} ms, "
            f"p99 {pick(0.99):.0f} ms, max {ms[-1]:.0f} ms (n={len(ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10_000)
    parser.add_argument("--lead", type=float, default=30.0,
                        help="seconds until the first trigger fires (time to claim them all)")
    parser.add_argument("--spread", type=float, default=10.0)
    parser.add_argument("--store", default=None, help="a store URL (default: fresh SQLite)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench_triggerer_"))
    os.environ["UPDRAFT_HOME"] = str(home)
    url = args.store or f"sqlite:///{home / 'updraft.db'}"
    os.environ["UPDRAFT__DATABASE__SQL_ALCHEMY_CONN"] = url
    os.environ["UPDRAFT__NATS__SERVERS"] = "nats://127.0.0.1:1"  # no nudges needed here
    from updraft.config import conf
    from updraft.store.migrate import migrate
    from updraft.utils.timezone import utcnow

    conf.reload()
    migrate(url)
    moments = _seed(url, args.n, args.lead, args.spread)
    began = time.monotonic()
    log = open(home / "triggerer.log", "wb")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("updraft")), "triggerer", "--capacity",
         str(args.n)], env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        while _held(url) < args.n:
            if process.poll() is not None:
                sys.exit(f"the triggerer exited: see {home / 'triggerer.log'}")
            time.sleep(0.2)
        claimed = time.monotonic() - began
        time.sleep(2.0)  # every trigger is now sleeping on the loop
        waiting = _status(process.pid)
        first = min(moments.values())
        if utcnow() > first:
            print(f"warning: the first triggers were due before all were claimed; raise "
                  f"--lead (claim took {claimed:.1f} s)")
        deadline = time.monotonic() + args.lead + args.spread + 120
        while time.monotonic() < deadline:
            woken = _woken(url)
            if len(woken) >= args.n:
                break
            time.sleep(1.0)
        peak = _status(process.pid)
    finally:
        process.terminate()
        process.wait(60)
    lateness = [(when - moments[task]).total_seconds() for task, when in woken.items()]
    print(f"{args.n} DateTime triggers in one triggerer process ({url.split(':')[0]} store)")
    print(f"  claimed and started in {claimed:.1f} s")
    print(f"  memory while all wait: VmRSS {waiting['VmRSS'] / 1024:.0f} MB "
          f"(peak VmHWM {peak['VmHWM'] / 1024:.0f} MB)")
    print(f"  woken: {len(woken)} of {args.n}")
    print("  " + _figures("wake-up lateness", lateness))


if __name__ == "__main__":
    main()
