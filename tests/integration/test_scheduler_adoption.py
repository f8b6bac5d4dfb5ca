"""A scheduler killed with tries queued leaves them to the scheduler that survives it
(issue 18): the survivor puts them back to scheduled on its slow timer, not only when it
starts, and runs them; each try is recorded once. A live peer's queued tries are its own:
a scheduler that starts leaves them alone.

Scheduler A is ``updraft scheduler --executor nats_queue`` in a subprocess with no
``updraft worker``: its tries stay queued (in the store and in NATS). Scheduler B runs in
this process on the same store (PostgreSQL, then MariaDB). A is killed with SIGKILL;
later, an ``updraft worker`` that takes A's stale task messages is refused by the claim
(the reset cleared their identity), so nothing runs twice.
"""

from __future__ import annotations

import secrets
import signal

import pytest
import scheduler_helpers as h
import services

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(300)]

FAN_DAG = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("fan", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    start = EmptyOperator(task_id="start")
    for i in range(4):
        start >> EmptyOperator(task_id=f"t{i}")
'''


@pytest.fixture(params=[pytest.param("postgres_url", id="postgres", marks=pytest.mark.postgres),
                        pytest.param("mysql_url", id="mysql", marks=pytest.mark.mysql)])
def pg_env(request, nats_url, updraft_home, tmp_path, monkeypatch):
    """Two schedulers' store (PostgreSQL, then MariaDB), a DAGs folder, NATS."""
    from updraft.config import conf
    from updraft.store.migrate import migrate

    postgres_url = request.getfixturevalue(request.param)
    migrate(postgres_url)
    services.empty_store(postgres_url)
    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", postgres_url)
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", nats_url)
    monkeypatch.setenv("UPDRAFT__NATS__SUBJECT_PREFIX", f"adopt{secrets.token_hex(4)}")
    monkeypatch.setenv("UPDRAFT__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD", "3")
    conf.reload()
    h.write_dag(dags, "fan", FAN_DAG)
    return dags


def queued_messages() -> int:
    """Task messages waiting in the NATS queue executor's default queue."""
    import asyncio

    from bus import subjects
    from bus.connection import connect

    async def main():
        nc = await connect()
        try:
            info = await nc.jetstream().stream_info(subjects.tasks_stream("default"))
            return info.state.messages
        finally:
            await nc.close()
    return asyncio.run(main())


def queued_by(dag_id: str, run_id: str) -> dict[str, str | None]:
    return {t: r.queued_by for t, r in h.tis(dag_id, run_id).items() if r.state == "queued"}


def test_survivor_adopts_the_queued_tries_of_a_killed_scheduler(pg_env, tmp_path):
    log_a = tmp_path / "scheduler-a.log"
    a = h.start_scheduler_process(log_a, "nats_queue")
    try:
        h.wait_parsed("fan")
        run_id = h.trigger("fan")
        h.wait_for(lambda: queued_by("fan", run_id).get("start"),
                   what="scheduler A to queue the first task",
                   describe=lambda: log_a.read_text()[-2000:])
        owner = queued_by("fan", run_id)["start"]
        assert queued_messages() == 1
        assert owner.startswith("scheduler-")
        with h.running_scheduler(pg_env, "local", parallelism=4) as b:
            # A is alive: B, starting, leaves A's queued try alone.
            h.wait_for(lambda: b._loops >= 3, what="scheduler B to loop")
            assert queued_by("fan", run_id) == {"start": owner}
            h.kill_group(a, signal.SIGKILL)
            assert h.wait_run("fan", run_id) == "success"
        rows = h.try_rows("fan", run_id)
        assert sorted(r.task_id for r in rows) == ["start", "t0", "t1", "t2", "t3"]
        assert {(r.try_number, r.state) for r in rows} == {(1, "success")}
        causes = [e.cause for e in h.events("fan", run_id, "start")
                  if e.old_state == "queued" and e.new_state == "scheduled"]
        assert len(causes) == 1 and "scheduler that queued this try is gone" in causes[0] \
            and owner in causes[0], causes
    finally:
        h.kill_group(a, signal.SIGKILL)
    # A worker that now takes A's stale message is refused: the try ran once.
    log_w = tmp_path / "worker.log"
    import subprocess
    import sys
    from pathlib import Path

    with open(log_w, "ab") as handle:
        worker = subprocess.Popen([str(Path(sys.executable).with_name("updraft")), "worker"],
                                  env=h.cli_env(), stdout=handle, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        h.wait_for(lambda: queued_messages() == 0, timeout=60,
                   what="the worker to take A's stale task message",
                   describe=lambda: log_w.read_text()[-2000:])
    finally:
        h.kill_group(worker, signal.SIGTERM)
    assert {(r.task_id, r.try_number) for r in h.try_rows("fan", run_id)} == {
        ("start", 1), ("t0", 1), ("t1", 1), ("t2", 1), ("t3", 1)}
