"""``updraft tasks failed-deps`` says why a task instance is not running with the reasons the UI
and the API show (``updraft.store.waiting``), then its story."""

from __future__ import annotations

from datetime import datetime

from click.testing import CliRunner

from updraft import DAG
from updraft.operators.empty import EmptyOperator


def test_failed_deps_prints_the_reasons_the_ui_shows(store_url):
    from sqlalchemy import select

    from updraft.cli import main
    from updraft.store.commands import trigger_dag_run
    from updraft.store.dags import read_dag, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, PoolModel, TaskInstanceModel, utcnow
    from updraft.store.waiting import waiting_reasons

    with session_scope() as session:
        with DAG("why_dag", schedule=None, start_date=datetime(2024, 1, 1),
                 is_paused_upon_creation=False) as dag:
            EmptyOperator(task_id="first") >> EmptyOperator(task_id="second")
        write_dag(session, dag, file_hash=None, now=utcnow())
        run = trigger_dag_run(session, "why_dag")
        run_id = run.run_id
        pool = session.scalar(select(PoolModel).where(PoolModel.pool == "default_pool"))
        pool.slots = 0
    with session_scope() as session:
        run = session.scalar(select(DagRunModel).where(DagRunModel.run_id == run_id))
        run.state = "running"
        serialized = read_dag(session, "why_dag")
        expected = {}
        for task_id in ("first", "second"):
            ti = session.get(TaskInstanceModel, ("why_dag", run_id, task_id, -1))
            expected[task_id] = waiting_reasons(session, serialized, run, ti)

    runner = CliRunner()
    first = runner.invoke(main, ["tasks", "failed-deps", "why_dag", "first", run_id])
    assert first.exit_code == 0, first.output
    assert "Why first is not running" in first.output
    assert "pool 'default_pool' has 0 slots" in first.output
    assert "no scheduler has sent a heartbeat" in first.output
    for reason in expected["first"]:
        assert reason["check"] in first.output and reason["reason"] in first.output

    second = runner.invoke(main, ["tasks", "failed-deps", "why_dag", "second", run_id])
    assert second.exit_code == 0, second.output
    checks = [r["check"] for r in expected["second"]]
    assert "dependencies" in checks and "pool" not in checks
    for reason in expected["second"]:
        assert reason["reason"] in second.output

    missing = runner.invoke(main, ["tasks", "failed-deps", "why_dag", "nope", run_id])
    assert missing.exit_code != 0 and "not found" in missing.output
