"""``updraft assets list | details | events | event`` against a real SQLite store: events
recorded from the command line, idempotent by ``--id``, precise errors for unknown assets and
bad extras, and the listings in table and JSON form."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from updraft import DAG, Asset
from updraft.operators.empty import EmptyOperator


@pytest.fixture
def store(updraft_home, _sqlite_template, monkeypatch):
    from updraft.config import conf
    from updraft.store.dags import write_dag
    from updraft.store.engine import session_scope

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    orders = Asset(name="orders", uri="s3://lake/orders", extra={"owner": "sales"})
    now = datetime(2026, 1, 5, tzinfo=UTC)
    with DAG("writes_orders", schedule=None, start_date=now) as producer:
        EmptyOperator(task_id="write", outlets=[orders])
    with DAG("reads_orders", schedule=[orders], start_date=now) as consumer:
        EmptyOperator(task_id="read")
    with session_scope() as session:
        for dag in (producer, consumer):
            write_dag(session, dag, file_hash=dag.dag_id, now=now)
    return path


def cli(*args: str):
    from updraft.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_assets_commands(store):
    first = cli("assets", "event", "orders", "--extra", '{"file": "o-1.csv"}', "--id", "o-1")
    assert first.exit_code == 0, first.output
    assert first.output.startswith("Recorded event 1 of asset orders")
    again = cli("assets", "event", "orders", "--extra", '{"file": "o-1.csv"}', "--id", "o-1")
    assert again.output.strip() == "Event 1 of asset orders was already recorded with id o-1"
    unknown = cli("assets", "event", "nope")
    assert unknown.exit_code == 1 and "no asset named 'nope'" in unknown.output
    bad = cli("assets", "event", "orders", "--extra", "[1]")
    assert bad.exit_code == 2 and "must be a JSON object, got list" in bad.output

    listed = json.loads(cli("assets", "list", "-o", "json").output)
    assert [(a["name"], a["uri"], a["events"]) for a in listed] == [
        ("orders", "s3://lake/orders", 1)]
    details = json.loads(cli("assets", "details", "orders", "-o", "json").output)
    assert details["producing_tasks"] == [{"dag_id": "writes_orders", "task_id": "write"}]
    assert details["consuming_dags"] == [{"dag_id": "reads_orders", "waiting_events": 1}]
    assert details["extra"] == {"owner": "sales"}
    table = cli("assets", "events", "orders").output
    assert "o-1.csv" in table and "cli" in table
    assert cli("assets", "details", "nope").exit_code == 1
