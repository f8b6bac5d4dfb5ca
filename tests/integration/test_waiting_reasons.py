"""Why a task instance is not running, as the scheduler records it (issue 16, item 12),
against real components: a real scheduler (a process, or a thread for the counts), a
SQLite store, the REST API of a real Flask app and ``updraft tasks failed-deps``.

Each check reads ``task_instance.waiting_reason`` from the store first: the reason is there
because the scheduler wrote it as it held the task back, not because a reader computed it.
"""

from __future__ import annotations

import json
import shutil
import signal

import pytest
import scheduler_helpers as h

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    """Fast scheduler settings, a DAGs folder and a migrated SQLite store; returns the folder."""
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    return dags


def recorded(dag_id: str, run_id: str, task_id: str):
    """(state, the recorded reason as JSON or None, waiting_since) from the store row."""
    from updraft.store.models import TaskInstanceModel

    with h.session() as s:
        row = s.get(TaskInstanceModel, (dag_id, run_id, task_id, -1))
        reason = json.loads(row.waiting_reason) if row.waiting_reason else None
        return row.state, reason, row.waiting_since


def failed_deps(dag_id: str, task_id: str, run_id: str) -> str:
    from click.testing import CliRunner

    from updraft.cli import main

    result = CliRunner().invoke(main, ["tasks", "failed-deps", dag_id, task_id, run_id])
    assert result.exit_code == 0, result.output
    return result.output


def api_dependencies(dag_id: str, run_id: str, task_id: str) -> dict:
    """``GET .../dependencies`` of a real Flask app, as a Viewer with an API token."""
    from updraft.store.engine import session_scope
    from web.app import create_app
    from web.auth.users import create_token, create_user, get_user

    with session_scope() as session:
        if get_user(session, "reader") is None:
            create_user(session, "reader", "correct horse battery", "Viewer",
                        email="reader@example.com")
        token = create_token(session, "reader", name="tests")
    client = create_app({"TESTING": True, "SECRET_KEY": "s"}).test_client()
    answer = client.get(f"/api/v1/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/"
                        "dependencies", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


POOLED = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.bash import BashOperator

with DAG("pooled", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    BashOperator(task_id="first", bash_command="true") >> \\
        BashOperator(task_id="second", bash_command="true")
'''


def set_pool(slots: int) -> None:
    from updraft.cli.pools import set_pool as write_pool

    with h.session() as s:
        write_pool(s, "default_pool", slots)


def test_an_empty_pool_is_recorded_by_the_scheduler_shown_everywhere_and_cleared(
        env, tmp_path):
    """The issue's example: default_pool at 0 slots, and nothing ran without saying why."""
    set_pool(0)
    h.write_dag(env, "pooled", POOLED)
    log_path = tmp_path / "scheduler.log"
    process = h.start_scheduler_process(log_path, "local")
    try:
        h.wait_parsed("pooled")
        run_id = h.trigger("pooled")

        def held():
            state, reason, since = recorded("pooled", run_id, "first")
            return (state, reason, since) if state == "scheduled" and reason else None

        state, reason, since = h.wait_for(
            held, what="the scheduler to record why 'first' waits",
            describe=lambda: (h.states("pooled", run_id), log_path.read_text()[-2000:]))
        # Written by the scheduler: the row says so, with the state it held it in.
        assert reason["state"] == "scheduled" and since is not None
        (check,) = reason["checks"]
        assert check["check"] == "pool"
        assert "pool 'default_pool' has 0 slots" in check["reason"]
        # The downstream task's reason comes from decide(), recorded as well.
        state2, reason2, _since2 = recorded("pooled", run_id, "second")
        assert state2 == "none" and reason2["checks"][0]["check"] == "dependencies"
        assert "upstream" in reason2["checks"][0]["reason"]

        body = api_dependencies("pooled", run_id, "first")
        assert body["state"] == "scheduled"
        (pool,) = [d for d in body["dependencies"] if d["name"] == "pool"]
        assert pool["recorded_by_scheduler"] is True and pool["since"]
        assert "0 slots" in pool["reason"]
        out = failed_deps("pooled", "first", run_id)
        assert "pool 'default_pool' has 0 slots" in out
        assert "recorded by the scheduler since" in out

        set_pool(4)
        assert h.wait_run("pooled", run_id) == "success"
    finally:
        h.kill_group(process, signal.SIGTERM)
    # Queueing cleared the reason in the UPDATE that queued it.
    for task_id in ("first", "second"):
        state, reason, since = recorded("pooled", run_id, task_id)
        assert (state, reason, since) == ("success", None, None)
    out = failed_deps("pooled", "first", run_id)
    assert "Nothing holds it back: it is success." in out and "pool" not in out.split("Story")[0]
    assert api_dependencies("pooled", run_id, "first")["dependencies"] == []


LIMITED = '''
import time
from datetime import datetime
from pathlib import Path
from updraft import DAG, task

GO = Path({go!r})

with DAG("limited", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=1):
    def hold():
        while not GO.exists():
            time.sleep(0.1)

    task(task_id="one")(hold)()
    task(task_id="two")(hold)()
'''


def test_max_active_tasks_is_recorded_and_cleared_when_the_task_is_queued(env, tmp_path):
    go = tmp_path / "go"
    h.write_dag(env, "limited", LIMITED.format(go=str(go)))
    with h.running_scheduler(env, "local", parallelism=4) as scheduler:
        h.wait_parsed("limited")
        run_id = h.trigger("limited")

        def one_held():
            rows = {t: recorded("limited", run_id, t) for t in ("one", "two")}
            waiting = {t: r for t, r in rows.items() if r[0] == "scheduled" and r[1]}
            running = [t for t, r in rows.items() if r[0] in ("queued", "running")]
            return waiting if len(waiting) == 1 and len(running) == 1 else None

        waiting = h.wait_for(one_held, what="one task running, the other held back",
                             describe=lambda: h.states("limited", run_id))
        ((task_id, (_state, reason, since)),) = waiting.items()
        (check,) = reason["checks"]
        assert check["check"] == "max_active_tasks" and since is not None
        assert "max_active_tasks (1) is reached" in check["reason"]
        assert "recorded by the scheduler" in failed_deps("limited", task_id, run_id)
        writes, loops = scheduler.waiting.writes, scheduler._loops
        # Passes go on (the slow timer looks at the run twice a second); the reason stays
        # the same, so nothing more is written.
        h.wait_for(lambda: scheduler._loops >= loops + 4, 30, what="a few more passes")
        assert scheduler.waiting.writes == writes
        assert recorded("limited", run_id, task_id)[2] == since
        go.write_text("go")
        assert h.wait_run("limited", run_id) == "success"
    assert recorded("limited", run_id, task_id)[1:] == (None, None)


RETRYING = '''
from datetime import datetime, timedelta
from pathlib import Path
from updraft import DAG, task

MARK = Path({mark!r})

with DAG("retrying", schedule=None, start_date=datetime(2024, 1, 1)):
    @task(retries=1, retry_delay=timedelta(seconds=4))
    def flaky():
        if not MARK.exists():
            MARK.write_text("failed once")
            raise RuntimeError("first try fails")

    flaky()
'''


def test_a_retry_delay_is_recorded_until_the_retry(env, tmp_path):
    h.write_dag(env, "retrying", RETRYING.format(mark=str(tmp_path / "mark")))
    with h.running_scheduler(env, "local", parallelism=2):
        h.wait_parsed("retrying")
        run_id = h.trigger("retrying")

        def waiting_retry():
            state, reason, since = recorded("retrying", run_id, "flaky")
            return reason if state == "up_for_retry" and reason else None

        reason = h.wait_for(waiting_retry, 60, interval=0.05,
                            what="the retry delay to be recorded",
                            describe=lambda: h.states("retrying", run_id))
        (check,) = reason["checks"]
        assert reason["state"] == "up_for_retry" and check["check"] == "retry delay"
        assert "waits for its retry time" in check["reason"]
        assert h.wait_run("retrying", run_id) == "success"
    assert h.states("retrying", run_id) == {"flaky": ("success", 2)}
    assert recorded("retrying", run_id, "flaky")[1:] == (None, None)


CHAIN = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.bash import BashOperator

with DAG("chained", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    previous = None
    for i in range({length}):
        current = BashOperator(task_id=f"t{{i:02d}}", bash_command="true")
        if previous is not None:
            previous >> current
        previous = current
'''


def test_a_chain_writes_no_reason_per_hop(env):
    """A chain of tasks records its tasks' upstream waits once, when the run starts; each
    hop after that writes no reason (queueing clears it in the UPDATE that queues)."""
    from sqlalchemy import event

    from updraft.store.engine import get_engine

    length = 12
    h.write_dag(env, "chained", CHAIN.format(length=length))
    statements: list[str] = []

    def count(_conn, _cursor, statement, _params, _context, _executemany):
        if statement.startswith("UPDATE task_instance") and "waiting_reason" in statement:
            statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        with h.running_scheduler(env, "sequential", parallelism=1) as scheduler:
            h.wait_parsed("chained")
            run_id = h.trigger("chained")
            assert h.wait_run("chained", run_id) == "success"
            writes = scheduler.waiting.writes
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Reason writes leave updated_at alone; the queueing UPDATEs set it.
    reason_writes = [s for s in statements if "updated_at=task_instance.updated_at" in s]
    queueing = [s for s in statements if "state=" in s.split("WHERE")[0]]
    assert len(reason_writes) == writes == 1, statements
    assert len(queueing) >= 1
    assert h.states("chained", run_id) == {f"t{i:02d}": ("success", 1) for i in range(length)}


def test_recorded_reasons_on_every_store(store_url):
    """The recorder's one statement on SQLite, PostgreSQL and MariaDB: it writes only what
    changed, keeps ``waiting_since`` while the check stays (also across a restart, when the
    row already holds the same reason), leaves ``updated_at`` alone, never writes on a row
    that moved to another state; readers show it only in the state it was recorded in."""
    from datetime import datetime, timedelta

    from updraft import DAG
    from updraft.operators.empty import EmptyOperator
    from updraft.state import TaskInstanceState as TI
    from updraft.store.commands import trigger_dag_run
    from updraft.store.dags import read_dag, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel, TaskInstanceModel, utcnow
    from updraft.store.waiting import waiting_reasons
    from scheduler.waiting import WaitingReasons

    with session_scope() as session:
        with DAG("kept", schedule=None, start_date=datetime(2024, 1, 1),
                 is_paused_upon_creation=False) as dag:
            EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        write_dag(session, dag, file_hash=None, now=utcnow())
        run_id = trigger_dag_run(session, "kept").run_id
    with session_scope() as session:
        for row in session.query(TaskInstanceModel).filter_by(run_id=run_id):
            row.state = "scheduled" if row.task_id == "a" else "none"
        session.query(DagRunModel).filter_by(run_id=run_id).update({"state": "running"})

    def row(task_id: str):
        with session_scope() as session:
            ti = session.get(TaskInstanceModel, ("kept", run_id, task_id, -1))
            session.expunge(ti)
            return ti

    updated_before = row("a").updated_at
    t0 = utcnow().replace(microsecond=0) - timedelta(minutes=5)
    first = WaitingReasons()
    first.note_held("kept", run_id, "a", -1, "pool", "pool 'p' is full: 1 of 1", t0)
    first.note_run("kept", run_id, {("a", -1): TI.SCHEDULED, ("b", -1): TI.NONE},
                   {("a", -1): "waits for a free slot (scheduled)",
                    ("b", -1): "waits for its upstream tasks: none has finished yet"}, t0)
    with session_scope() as session:
        assert first.flush(session) == 2
        assert first.flush(session) == 0  # nothing changed: no statement
    a = row("a")
    assert json.loads(a.waiting_reason) == {"state": "scheduled", "checks": [
        {"check": "pool", "reason": "pool 'p' is full: 1 of 1"}]}
    assert a.waiting_since == t0 and a.updated_at == updated_before
    assert json.loads(row("b").waiting_reason)["checks"][0]["check"] == "dependencies"

    # The same check with other words keeps its since; another check starts a new one.
    t1 = t0 + timedelta(minutes=1)
    first.note_held("kept", run_id, "a", -1, "pool", "pool 'p' is full: 2 of 2", t1)
    first.note_held("kept", run_id, "a", -1, "pool", "pool 'p' is full: 2 of 2", t1)
    with session_scope() as session:
        assert first.flush(session) == 1
    assert row("a").waiting_since == t0
    # A restarted scheduler writes its reasons once more; an unchanged one keeps its since.
    again = WaitingReasons()
    again.note_held("kept", run_id, "a", -1, "pool", "pool 'p' is full: 2 of 2", t1)
    with session_scope() as session:
        assert again.flush(session) == 1
    assert row("a").waiting_since == t0
    again.note_held("kept", run_id, "a", -1, "max_active_tasks", "the DAG's limit", t1)
    with session_scope() as session:
        again.flush(session)
    assert row("a").waiting_since == t1

    # Readers: the recorded reason, marked as such; none once the state is another.
    with session_scope() as session:
        serialized = read_dag(session, "kept")
        run = session.query(DagRunModel).filter_by(run_id=run_id).one()
        ti = session.get(TaskInstanceModel, ("kept", run_id, "a", -1))
        reasons = waiting_reasons(session, serialized, run, ti)
        assert [r["check"] for r in reasons] == ["scheduler", "max_active_tasks"]
        assert reasons[1]["recorded_since"] == t1
        ti.state = "none"  # as a clear would leave it: the recorded reason no longer applies
        session.flush()
        reasons = waiting_reasons(session, serialized, run, ti)
        assert all("recorded_since" not in r for r in reasons), reasons
    # A reason for a state the row has left is not written.
    again.note_held("kept", run_id, "a", -1, "pool", "pool 'p' has 0 slots", t1)
    with session_scope() as session:
        again.flush(session)
    assert json.loads(row("a").waiting_reason)["state"] == "scheduled"
    assert row("a").state == "none"
