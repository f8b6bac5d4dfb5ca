"""The store side of the UI's notes, DAG delete and backfill (``updraft.store.actions``), which
the scheduler applies for the bus commands ``set_note``, ``delete_dag`` and ``backfill``."""

from __future__ import annotations

from datetime import datetime

import pytest

from updraft import DAG
from updraft.operators.empty import EmptyOperator


def _write(session, dag_id: str, schedule="@daily"):
    from updraft.store.dags import write_dag
    from updraft.store.models import utcnow

    with DAG(dag_id, schedule=schedule, start_date=datetime(2025, 1, 1), catchup=False,
             is_paused_upon_creation=True) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
    write_dag(session, dag, file_hash=None, now=utcnow())


def test_backfill_preview_create_keep_and_reset(store_url):
    from updraft.exceptions import UpdraftBadRequest, UpdraftConflict
    from updraft.store.actions import backfill, backfill_progress
    from updraft.store.engine import session_scope

    with session_scope() as session:
        _write(session, "daily")
    with session_scope() as session:
        plan = backfill(session, "daily", "2025-01-01", "2025-01-03", dry_run=True)
        assert plan["run_ids"] == [f"backfill__2025-01-0{d}T00:00:00+00:00" for d in (1, 2, 3)]
        assert plan["existing"] == []
        assert backfill_progress(session, "daily")["runs"] == []
    with session_scope() as session:
        made = backfill(session, "daily", "2025-01-01", "2025-01-02", owner="test")
        assert len(made["created"]) == 2
    with session_scope() as session:
        again = backfill(session, "daily", "2025-01-01", "2025-01-03")
        assert again["created"] == ["backfill__2025-01-03T00:00:00+00:00"]
        reset = backfill(session, "daily", "2025-01-01", "2025-01-01", reset_existing=True)
        assert reset["created"] == ["backfill__2025-01-01T00:00:00+00:00"]
        progress = backfill_progress(session, "daily", datetime(2025, 1, 2).astimezone())
        assert progress["total"] == 2 * len(progress["runs"]) and progress["done"] == 0
        assert not progress["finished"]
        with pytest.raises(UpdraftConflict, match="before the start"):
            backfill(session, "daily", "2025-01-03", "2025-01-01")
        with pytest.raises(UpdraftBadRequest):
            backfill(session, "daily", "yesterday", "2025-01-01")
        with pytest.raises(UpdraftConflict, match="more than 1,000 runs"):
            backfill(session, "daily", "2020-01-01", "2025-01-01", dry_run=True)
    with session_scope() as session:
        assert len(backfill_progress(session, "daily")["runs"]) == 3


def test_notes_on_runs_and_task_instances(store_url):
    from updraft.exceptions import TaskNotFound, UpdraftBadRequest
    from updraft.store.actions import MAX_NOTE, set_note
    from updraft.store.commands import trigger_dag_run
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, LogEvent, TaskInstanceModel

    with session_scope() as session:
        _write(session, "noted", schedule=None)
        run_id = trigger_dag_run(session, "noted").run_id
    with session_scope() as session:
        set_note(session, "noted", run_id, "line one\r\nline two  ", owner="ann")
        set_note(session, "noted", run_id, "task note", task_id="b", owner="ann")
        with pytest.raises(UpdraftBadRequest, match="at most"):
            set_note(session, "noted", run_id, "x" * (MAX_NOTE + 1))
        with pytest.raises(TaskNotFound):
            set_note(session, "noted", run_id, "x", task_id="nope")
    with session_scope() as session:
        run = session.query(DagRunModel).filter_by(dag_id="noted", run_id=run_id).one()
        assert run.note == "line one\nline two"
        assert session.get(TaskInstanceModel, ("noted", run_id, "b", -1)).note == "task note"
        assert session.query(LogEvent).filter_by(event="set_note", owner="ann").count() == 2
        set_note(session, "noted", run_id, "", task_id="b")
    with session_scope() as session:
        assert session.get(TaskInstanceModel, ("noted", run_id, "b", -1)).note is None


def test_delete_dag_removes_its_history_only(store_url):
    from sqlalchemy import func, select

    from updraft.exceptions import DagNotFound
    from updraft.store.actions import backfill, delete_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, DagRunModel, LogEvent, TaskInstanceModel

    with session_scope() as session:
        _write(session, "doomed")
        _write(session, "kept")
    with session_scope() as session:
        backfill(session, "doomed", "2025-01-01", "2025-01-02")
        backfill(session, "kept", "2025-01-01", "2025-01-01")
    with session_scope() as session:
        counts = delete_dag(session, "doomed", owner="ann")
        assert counts["dag_run"] == 2 and counts["task_instance"] == 4 and counts["dag"] == 1
    with session_scope() as session:
        assert session.get(DagModel, "doomed") is None
        runs = dict(session.execute(select(DagRunModel.dag_id, func.count()).group_by(
            DagRunModel.dag_id)).all())
        assert runs == {"kept": 1}
        assert session.scalar(select(func.count()).select_from(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == "kept")) == 2
        # the audit log keeps what happened to the DAG
        assert session.query(LogEvent).filter_by(dag_id="doomed", event="delete_dag").count()
        with pytest.raises(DagNotFound):
            delete_dag(session, "doomed")
    with session_scope() as session:  # parsed again: back, without its history
        _write(session, "doomed")
    with session_scope() as session:
        assert session.get(DagModel, "doomed") is not None
        assert not session.scalar(select(func.count()).select_from(DagRunModel).where(
            DagRunModel.dag_id == "doomed"))
