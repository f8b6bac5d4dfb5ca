"""Server time of the DAG list (API and UI page) with 1,000 DAGs in the store.

    .venv/bin/python tests/bench/bench_dag_list.py [--dags 1000] [--runs-per-dag 2] [-n 30]

Builds a fresh SQLite store in a temporary UPDRAFT_HOME with ``--dags`` serialized DAGs (five
tasks each, tags, some paused) and ``--runs-per-dag`` finished runs each with their task
instances, then times requests through the Flask app in this process (no network: the figure
is the server's work, from WSGI call to the last byte of the body). Each figure is the median
of ``-n`` requests after two warm-up requests. Figures are printed, never asserted (target:
the DAG list under 300 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))


def _figures(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return (f"{name:<44} median {statistics.median(ms):7.1f} ms   p90 {p90:7.1f} ms   "
            f"min {ms[0]:7.1f} ms   (n={len(ms)})")


def build_store(dags: int, runs_per_dag: int) -> None:
    """Fill the configured store with serialized DAGs, finished runs and task instances."""
    from sqlalchemy import update

    from updraft import DAG
    from updraft.operators.empty import EmptyOperator
    from updraft.state import DagRunType
    from updraft.store.commands import trigger_dag_run
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope
    from updraft.store.migrate import migrate
    from updraft.store.models import DagModel, DagRunModel, TaskInstanceModel, utcnow

    migrate()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    began = time.monotonic()
    with session_scope() as session:
        for i in range(dags):
            with DAG(f"bench_dag_{i:04d}", schedule="@daily" if i % 3 else None,
                     start_date=start, tags=[f"team_{i % 10}", "bench"],
                     description=f"benchmark DAG number {i}") as dag:
                first = EmptyOperator(task_id="extract")
                middle = [EmptyOperator(task_id=f"transform_{k}") for k in range(3)]
                first >> middle >> EmptyOperator(task_id="load")
            dag.fileloc = f"/dags/bench_{i // 50:02d}.py"
            write_dag(session, dag, file_hash=None, now=utcnow())
    with session_scope() as session:
        session.execute(update(DagModel).values(is_paused=False))
        session.execute(update(DagModel).where(DagModel.dag_id.like("%5")).values(is_paused=True))
    print(f"stored {dags} DAGs in {time.monotonic() - began:.1f} s")
    began = time.monotonic()
    for i in range(dags):
        with session_scope() as session:
            for r in range(runs_per_dag):
                trigger_dag_run(session, f"bench_dag_{i:04d}", run_id=f"run_{r}",
                                logical_date=start + timedelta(days=r),
                                run_type=DagRunType.MANUAL, triggered_by="bench")
    with session_scope() as session:
        session.execute(update(DagRunModel).values(state="success"))
        session.execute(update(TaskInstanceModel).values(state="success", duration=1.0))
        session.execute(update(DagRunModel).where(DagRunModel.dag_id.like("%7"),
                                                  DagRunModel.run_id == "run_0")
                        .values(state="failed"))
    print(f"stored {dags * runs_per_dag} runs in {time.monotonic() - began:.1f} s")


def time_requests(client, path: str, headers: dict, n: int) -> list[float]:
    """Wall time of ``n`` GETs of ``path`` (after two warm-ups); fails on a non-200."""
    for _ in range(2):
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} "
                             f"{response.get_data(as_text=True)[:300]}")
    times = []
    for _ in range(n):
        began = time.perf_counter()
        response = client.get(path, headers=headers)
        response.get_data()
        times.append(time.perf_counter() - began)
        assert response.status_code == 200
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs-per-dag", type=int, default=2)
    parser.add_argument("-n", type=int, default=30, help="timed requests per figure")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="updraft-bench-")
    os.environ["UPDRAFT_HOME"] = home
    os.environ.setdefault("UPDRAFT__CORE__LOAD_EXAMPLES", "false")
    from updraft.config import conf

    conf.reload()
    build_store(args.dags, args.runs_per_dag)

    from updraft.store.engine import session_scope
    from web.app import create_app
    from web.auth.users import create_token, create_user

    with session_scope() as session:
        create_user(session, "bench", "bench password", "Viewer")
        token = create_token(session, "bench")
    app = create_app({"SECRET_KEY": "bench"})
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    print(f"\n{args.dags} DAGs, {args.runs_per_dag} runs each; server time per request:")
    paths = [("API /api/v1/dags (limit 100)", "/api/v1/dags?limit=100"),
             ("API /api/v1/dags (limit 1000)", "/api/v1/dags?limit=1000"),
             ("API /api/v1/dags?tags=team_3", "/api/v1/dags?tags=team_3"),
             ("API /api/v1/dags?dag_id_pattern=99", "/api/v1/dags?dag_id_pattern=99"),
             ("API /api/v1/dags/~/dagRuns (limit 100)", "/api/v1/dags/~/dagRuns?limit=100")]
    ui_rules = {rule.rule for rule in app.url_map.iter_rules()}
    if "/dags" in ui_rules:
        paths += [("UI /dags (DAG list page)", "/dags"),
                  ("UI /dags?search=bench_dag_09", "/dags?search=bench_dag_09"),
                  ("UI /dags?tag=team_3", "/dags?tag=team_3")]
    else:
        print("(no UI DAG list page registered: web.ui is not installed)")
    for name, path in paths:
        print(_figures(name, time_requests(client, path, headers, args.n)))


if __name__ == "__main__":
    main()
