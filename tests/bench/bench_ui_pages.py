"""Server time of every UI page with 1,000 DAGs and 100,000 task instances in the store.

    .venv/bin/python tests/bench/bench_ui_pages.py [--dags 1000] [--runs-per-dag 20] [-n 15]

Builds a fresh SQLite store in a temporary UPDRAFT_HOME: ``--dags`` serialized DAGs of five
tasks (three in a task group), ``--runs-per-dag`` finished runs each (one DAG, the "big" one,
gets 50 times as many, so the grid, calendar and paging see a long history) with their task
instances and tries, written with bulk inserts (5 tasks x 20 runs x 999 DAGs plus 5 x 1,000
for the big one: 104,900 task instances). Then times GETs through the Flask app in this process, as bench_dag_list.py does
(the server's work, from the WSGI call to the last byte). Figures are medians of ``-n``
requests after two warm-ups; printed, never asserted (target: every page under 300 ms).

Pages that need the bus (the clear preview asks the scheduler for a dry run) are left out:
this bench runs without NATS. The mark preview, read from the store, is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TASKS = ("extract", "work.transform_a", "work.transform_b", "work.validate", "load")
BIG = "bench_dag_0000"


def build_store(dags: int, runs_per_dag: int) -> int:
    """Fill the store; returns the number of task instances written."""
    from sqlalchemy import insert, update

    from updraft import DAG, TaskGroup
    from updraft.operators.empty import EmptyOperator
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from updraft.store.models import (
        DagModel,
        DagRunModel,
        TaskInstanceModel,
        TaskInstanceTry,
        utcnow,
    )

    migrate()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.monotonic()
    with session_scope() as session:
        for i in range(dags):
            with DAG(f"bench_dag_{i:04d}", schedule="@daily" if i % 3 else None,
                     start_date=start, tags=[f"team_{i % 10}", "bench"],
                     description=f"benchmark DAG number {i}") as dag:
                first = EmptyOperator(task_id="extract")
                with TaskGroup("work"):
                    a = EmptyOperator(task_id="transform_a")
                    b = EmptyOperator(task_id="transform_b")
                    v = EmptyOperator(task_id="validate")
                    [a, b] >> v
                first >> [a, b]
                v >> EmptyOperator(task_id="load")
            dag.fileloc = f"/dags/bench_{i // 50:02d}.py"
            write_dag(session, dag, file_hash=None, now=utcnow())
    with session_scope() as session:
        session.execute(update(DagModel).values(is_paused=False))
    print(f"stored {dags} DAGs in {time.monotonic() - began:.1f} s")
    began = time.monotonic()
    total = 0
    for i in range(dags):
        dag_id = f"bench_dag_{i:04d}"
        count = runs_per_dag * (50 if dag_id == BIG else 1)
        runs, tis, tries = [], [], []
        for r in range(count):
            day = start + timedelta(days=r)
            state = "failed" if r % 9 == 8 else "success"
            run_id = f"scheduled__{day.isoformat()}"
            runs.append({"dag_id": dag_id, "run_id": run_id, "state": state,
                         "run_type": "scheduled", "logical_date": day, "queued_at": day,
                         "start_date": day, "end_date": day + timedelta(seconds=60 + r % 50),
                         "data_interval_start": day, "data_interval_end": day,
                         "external_trigger": False, "clear_number": 0})
            clock = day
            for t in TASKS:
                ti_state = "failed" if state == "failed" and t == "work.validate" else (
                    "upstream_failed" if state == "failed" and t == "load" else "success")
                end = clock + timedelta(seconds=5 + r % 7)
                tis.append({"dag_id": dag_id, "run_id": run_id, "task_id": t, "map_index": -1,
                            "state": ti_state, "try_number": 1, "max_tries": 0,
                            "start_date": clock, "end_date": end, "duration": 5.0 + r % 7,
                            "queued_dttm": clock, "pool": "default_pool", "pool_slots": 1,
                            "priority_weight": 1, "operator": "EmptyOperator",
                            "hostname": "bench"})
                tries.append({"dag_id": dag_id, "run_id": run_id, "task_id": t,
                              "map_index": -1, "try_number": 1, "state": ti_state,
                              "start_date": clock, "end_date": end, "duration": 5.0 + r % 7})
                clock = end
        with session_scope() as session:
            session.execute(insert(DagRunModel), runs)
            session.execute(insert(TaskInstanceModel), tis)
            session.execute(insert(TaskInstanceTry), tries)
        total += len(tis)
    print(f"stored {total:,} task instances in {time.monotonic() - began:.1f} s")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs-per-dag", type=int, default=20)
    parser.add_argument("-n", type=int, default=15, help="timed requests per figure")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="updraft-bench-ui-")
    os.environ["UPDRAFT_HOME"] = home
    os.environ.setdefault("UPDRAFT__CORE__LOAD_EXAMPLES", "false")
    from updraft.config import conf

    conf.reload()
    total = build_store(args.dags, args.runs_per_dag)

    from bench_dag_list import _figures, time_requests

    from updraft.store.engine import session_scope
    from web.app import create_app
    from web.auth.users import create_token, create_user

    with session_scope() as session:
        create_user(session, "bench", "bench password", "Admin")
        token = create_token(session, "bench")
    app = create_app({"SECRET_KEY": "bench"})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    from urllib.parse import quote

    small = "bench_dag_0042"
    run = "scheduled__2024-01-08T00:00:00+00:00"
    run_q = quote(run, safe="")  # in a query string, "+" would be a space
    failed_run = quote("scheduled__2024-01-09T00:00:00+00:00", safe="")
    pages = [
        ("home dashboard", "/home"),
        ("DAG list", "/dags"),
        ("DAG list, search", "/dags?search=bench_dag_09"),
        ("DAG list, sorted by last run", "/dags?sort=last_run"),
        ("DAG list, last run failed", "/dags?last_state=failed"),
        ("DAG list, live refresh (?partial=1)", "/dags?partial=1"),
        ("runs of every DAG", "/runs"),
        ("runs of every DAG, failed", "/runs?state=failed"),
        ("runs tab of the big DAG", f"/dags/{BIG}/runs"),
        ("runs tab, date range", f"/dags/{BIG}/runs?start=2024-02-01&end=2024-02-29"),
        ("events tab", f"/dags/{small}/events"),
        ("grid (25 runs)", f"/dags/{small}/grid"),
        ("grid of the big DAG (25 of 1,000 runs)", f"/dags/{BIG}/grid"),
        ("grid of the big DAG, 365 runs", f"/dags/{BIG}/grid?limit=365"),
        ("grid of the big DAG, oldest page", f"/dags/{BIG}/grid?offset=975"),
        ("grid, live refresh (?partial=1)", f"/dags/{BIG}/grid?partial=1"),
        ("grid side panel: task instance", f"/dags/{small}/panel?run_id={run_q}&task_id=load"),
        ("grid side panel: group", f"/dags/{small}/panel?run_id={run_q}&group_id=work"),
        ("grid side panel: run", f"/dags/{small}/panel?run_id={run_q}"),
        ("graph", f"/dags/{small}/graph"),
        ("gantt", f"/dags/{small}/gantt?run_id={failed_run}"),
        ("calendar of the big DAG", f"/dags/{BIG}/calendar?year=2024"),
        ("durations", f"/dags/{small}/durations"),
        ("code", f"/dags/{small}/code"),
        ("details", f"/dags/{small}/details"),
        ("state.json (live fallback)", f"/dags/{small}/state.json?all=1"),
        ("run page", f"/dags/{small}/runs/{run}"),
        ("task instance page (no log file)", f"/dags/{small}/runs/{run}/tasks/load"),
        ("why not running (API)",
         f"/api/v1/dags/{small}/dagRuns/{run_q}/taskInstances/load/dependencies"),
        ("mark success preview, downstream + past",
         f"/dags/{BIG}/runs/{run}/confirm?action=mark_success&task_id=extract"
         "&downstream=true&past=true&future=true&partial=1"),
        ("mark failed preview, whole run",
         f"/dags/{small}/runs/{run}/confirm?action=mark_failed&partial=1"),
        ("assets", "/assets"),
        ("xcoms", "/xcoms"),
        ("import errors", "/import-errors"),
        ("audit log", "/audit"),
        ("pools", "/pools"),
        ("variables", "/variables"),
        ("connections", "/connections"),
        ("users", "/users"),
        ("health", "/health"),
    ]
    print(f"\n{args.dags} DAGs, {total:,} task instances; server time per page:")
    slow = []
    for name, path in pages:
        times = time_requests(client, path, headers, args.n)
        print(_figures(name, times))
        if sorted(times)[len(times) // 2] > 0.3:
            slow.append(name)
    print("\nover 300 ms (median): " + (", ".join(slow) if slow else "none"))


if __name__ == "__main__":
    main()
