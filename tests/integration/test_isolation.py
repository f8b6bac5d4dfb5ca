"""Process isolation of tries, tried with hostile tasks on every executor.

One run of a DAG holding 140 well-behaved tasks (retries=0) beside tasks that SIGKILL
themselves, segfault, sleep for an hour, spin in Python and in C, leak a gigabyte (the last
four under an ``execution_timeout``), print 50 MB, and hold the GIL for 20 s in one C call
while ``zombie_threshold`` is 10 s. It runs on the real scheduler with the Dask executor
(worker processes), the local executor, and the NATS work queue with an ``updraft worker``
subprocess. Each hostile task must fail within seconds of its cause with the cause in its
log; the GIL holder and the log writer must succeed; every well-behaved task must succeed
with one try; two seconds after the run no process of a stopped try may still be alive.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import scheduler_helpers as h
from sqlalchemy import select

HOSTILE_DAG = '''
import ctypes
import itertools
import os
import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

from updraft import DAG, task

PIDS = Path(os.environ["ISO_PID_DIR"])


def note_pid(name):
    (PIDS / f"{name}.{os.getpid()}").touch()


with DAG("hostile", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=64,
         default_args={"retries": 0}) as dag:
    @task
    def good(i):
        return i * 2

    good.expand(i=list(range(140)))

    @task
    def suicide():
        note_pid("suicide")
        os.kill(os.getpid(), signal.SIGKILL)

    @task
    def segfault():
        note_pid("segfault")
        ctypes.string_at(0)

    @task(execution_timeout=timedelta(seconds=2))
    def sleeper():
        note_pid("sleeper")
        time.sleep(3600)

    @task(execution_timeout=timedelta(seconds=2))
    def spinner():
        note_pid("spinner")
        while True:
            pass

    @task(execution_timeout=timedelta(seconds=2))
    def c_spinner():
        note_pid("c_spinner")
        sum(itertools.repeat(1, 10 ** 13))  # one C call: no Python signal handler runs

    @task(execution_timeout=timedelta(seconds=5))
    def leaker():
        note_pid("leaker")
        hoard = [bytearray(16 * 2 ** 20) for _ in range(64)]  # 1 GiB, touched
        time.sleep(3600)
        return len(hoard)

    @task
    def chatty():
        line = "x" * 99
        for _ in range(512 * 1024):  # 50 MiB of log
            print(line)
        return "said it all"

    @task
    def gil_holder():
        note_pid("gil_holder")
        ctypes.PyDLL(None).sleep(20)  # a C call that keeps the GIL for 20 s
        return "held"

    suicide(); segfault(); sleeper(); spinner(); c_spinner(); leaker(); chatty(); gil_holder()
'''

HOSTILE_CAUSES = {
    "suicide": "died of signal 9 (SIGKILL)",
    "segfault": "died of signal 11 (SIGSEGV)",
    "sleeper": "Timeout",
    "spinner": "Timeout",
    "c_spinner": "Timeout",
    "leaker": "Timeout",
}
#: Seconds from a hostile task's start to its end, at most: its timeout, the supervisor's
#: margin and the kill grace of these tests, plus room for a busy two-core machine (the
#: 50 MB log and the 1 GiB leak run at the same time).
HOSTILE_LIMITS = {"suicide": 10, "segfault": 10, "sleeper": 12, "spinner": 12,
                  "c_spinner": 2 + 1 + 3 + 14, "leaker": 20}
KILL_GRACE = "3"


@pytest.fixture
def hostile_env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    from updraft.config import conf

    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    pids = tmp_path / "pids"
    pids.mkdir()
    settings = {
        "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{path}",
        "UPDRAFT__SCHEDULER__ZOMBIE_THRESHOLD": "10",
        "UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "2",
        "UPDRAFT__CORE__KILL_GRACE_PERIOD": KILL_GRACE,
        "UPDRAFT__CORE__PARALLELISM": "16",
        "UPDRAFT__LOGGING__LIVE_LOGS": "false",
        "ISO_PID_DIR": str(pids),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    folder = tmp_path / "dags"
    h.write_dag(folder, "hostile", HOSTILE_DAG)
    return folder, pids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in (b"Z", b"X")


def _check_hostile_run(run_id: str, pids: Path) -> None:
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel, TaskInstanceTry

    with session_scope() as session:
        tis = {(t.task_id, t.map_index): t for t in session.scalars(
            select(TaskInstanceModel).where(TaskInstanceModel.run_id == run_id))}
        tries = session.execute(select(TaskInstanceTry.task_id, TaskInstanceTry.map_index,
                                       TaskInstanceTry.state, TaskInstanceTry.error).where(
            TaskInstanceTry.run_id == run_id)).all()
        session.expunge_all()
    goods = {key: ti for key, ti in tis.items() if key[0] == "good"}
    assert len(goods) == 140
    assert {ti.state for ti in goods.values()} == {"success"}, \
        sorted((k, t.state) for k, t in goods.items() if t.state != "success")
    per_ti: dict[tuple, list] = {}
    for row in tries:
        per_ti.setdefault((row.task_id, row.map_index), []).append(row)
    assert all(len(rows) == 1 for rows in per_ti.values()), \
        {k: [(r.state, r.error) for r in v] for k, v in per_ti.items() if len(v) != 1}
    for task_id in ("chatty", "gil_holder"):
        ti = tis[(task_id, -1)]
        assert (ti.state, ti.try_number) == ("success", 1), (task_id, ti.state,
                                                              per_ti.get((task_id, -1)))
    for task_id, cause in HOSTILE_CAUSES.items():
        ti = tis[(task_id, -1)]
        [row] = per_ti[(task_id, -1)]
        assert ti.state == "failed", (task_id, ti.state)
        assert cause in (row.error or ""), (task_id, row.error)
        took = (ti.end_date - ti.start_date).total_seconds()
        assert took <= HOSTILE_LIMITS[task_id], (task_id, took)
        log_text = _log(run_id, task_id).read_text(errors="replace")
        assert cause in log_text, (task_id, log_text[-2000:])
    chatty_log = _log(run_id, "chatty")
    assert chatty_log.stat().st_size >= 50 * 2 ** 20
    assert "xxxxxxxxxx" in chatty_log.read_text(errors="replace")[-4000:]
    time.sleep(2)
    noted = {path.name: int(path.name.rsplit(".", 1)[1]) for path in pids.iterdir()}
    assert {name.split(".")[0] for name in noted} >= set(HOSTILE_CAUSES)
    alive = {name: pid for name, pid in noted.items() if _alive(pid)}
    assert not alive, f"processes of stopped tries still alive: {alive}"


def _log(run_id: str, task_id: str) -> Path:
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    return try_log_path(conf.log_folder(), "hostile", run_id, task_id, -1, 1)


def _run_hostile(folder: Path, executor, pids: Path) -> None:
    with h.running_scheduler(folder, executor):
        h.wait_parsed("hostile", timeout=60)
        run_id = h.trigger("hostile")
        assert h.wait_run("hostile", run_id, timeout=240) == "failed"
    _check_hostile_run(run_id, pids)


@pytest.mark.slow
def test_hostile_tasks_on_the_dask_executor(hostile_env):
    from executors import get_executor

    folder, pids = hostile_env
    executor = get_executor("dask", parallelism=16, n_workers=2, threads_per_worker=4,
                            processes=True, dashboard_address=None, scheduler_address="")
    _run_hostile(folder, executor, pids)


@pytest.mark.slow
def test_hostile_tasks_on_the_local_executor(hostile_env):
    from executors import get_executor

    folder, pids = hostile_env
    _run_hostile(folder, get_executor("local", parallelism=8), pids)


@pytest.mark.slow
@pytest.mark.nats
def test_hostile_tasks_on_the_nats_work_queue(hostile_env, nats_url, monkeypatch, tmp_path):
    import services
    from executors import get_executor
    from updraft.config import conf

    folder, pids = hostile_env
    prefix = f"iso{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", nats_url)
    monkeypatch.setenv("UPDRAFT__NATS__SUBJECT_PREFIX", prefix)
    monkeypatch.setenv("UPDRAFT__WORKER__HEARTBEAT_INTERVAL", "1")
    conf.reload()
    log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115  (the worker keeps it)
    worker = subprocess.Popen(
        [str(Path(sys.executable).with_name("updraft")), "worker", "--concurrency", "8"],
        env=h.cli_env(UPDRAFT__CORE__DAGS_FOLDER=str(folder)), stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        _run_hostile(folder, get_executor("nats_queue", parallelism=16), pids)
        assert worker.poll() is None, "the worker died with a hostile task"
    finally:
        try:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(worker.pid, signal.SIGKILL)
        services.delete_nats_streams(nats_url, prefix)


STOPPABLE_DAG = '''
import itertools
import os
import time
from datetime import datetime, timedelta
from pathlib import Path

from updraft import DAG, task
from updraft.operators.bash import BashOperator

PIDS = Path(os.environ["ISO_PID_DIR"])


def note_pid(name):
    (PIDS / f"{name}.{os.getpid()}").touch()


with DAG("stoppable", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def long_sleeper():
        note_pid("long_sleeper")
        time.sleep(3600)

    long_sleeper()
    BashOperator(task_id="long_bash", bash_command="echo $$ > $ISO_PID_DIR/bash_shell.$$; "
                                                   "sleep 3600")

with DAG("stubborn", schedule=None, start_date=datetime(2024, 1, 1)) as dag2:
    @task(retries=1, retry_delay=timedelta(seconds=0), execution_timeout=timedelta(seconds=1))
    def stubborn(ti=None):
        if ti.try_number == 1:
            note_pid("stubborn_first")
            sum(itertools.repeat(1, 10 ** 13))  # one C call: only SIGKILL ends it
        earlier = [int(p.name.rsplit(".", 1)[1]) for p in PIDS.glob("stubborn_first.*")]
        alive = [pid for pid in earlier if os.path.exists(f"/proc/{pid}")
                 and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] not in "ZX"]
        if alive:
            raise RuntimeError(f"the first try's process still runs: {alive}")
        return "the first try was gone"

    stubborn()

with DAG("timed_out", schedule=None, start_date=datetime(2024, 1, 1),
         dagrun_timeout=timedelta(seconds=2)) as dag3:
    @task
    def endless():
        note_pid("endless")
        time.sleep(3600)

    endless()
'''


@pytest.fixture
def stoppable(hostile_env):
    folder, pids = hostile_env
    h.write_dag(folder, "stoppable", STOPPABLE_DAG)
    return folder, pids


def _wait_pid(pids: Path, name: str) -> int:
    found = h.wait_for(lambda: [p for p in pids.glob(f"{name}.*")], timeout=60,
                       what=f"{name} to start")
    return int(found[0].name.rsplit(".", 1)[1])


def _wait_gone(pid: int, timeout: float) -> float:
    started = time.monotonic()
    h.wait_for(lambda: not _alive(pid), timeout=timeout, interval=0.05,
               what=f"process {pid} to end")
    return time.monotonic() - started


@pytest.mark.slow
def test_marking_a_running_try_stops_its_process_and_what_it_started(stoppable):
    from updraft.store.commands import set_task_instance_state
    from updraft.store.engine import session_scope

    folder, pids = stoppable
    with h.running_scheduler(folder, "local", parallelism=4):
        h.wait_parsed("stoppable")
        run_id = h.trigger("stoppable")
        python_pid = _wait_pid(pids, "long_sleeper")
        shell_pid = _wait_pid(pids, "bash_shell")
        with session_scope() as session:
            set_task_instance_state(session, "stoppable", run_id, "long_sleeper",
                                    state="failed", owner="test")
            set_task_instance_state(session, "stoppable", run_id, "long_bash",
                                    state="success", owner="test")
        # The heartbeat (every 2 s here) finds the rows moved on; SIGTERM does the rest.
        assert _wait_gone(python_pid, 15) < 15
        assert _wait_gone(shell_pid, 15) < 15
        assert h.wait_run("stoppable", run_id) == "failed"
    assert h.states("stoppable", run_id) == {"long_sleeper": ("failed", 1),
                                             "long_bash": ("success", 1)}
    log_text = _log_of("stoppable", run_id, "long_sleeper").read_text()
    assert "stopping the try's process: stopped: the task instance is now failed" in log_text


@pytest.mark.slow
def test_dagrun_timeout_stops_the_running_try(stoppable):
    folder, pids = stoppable
    with h.running_scheduler(folder, "local", parallelism=4):
        h.wait_parsed("timed_out")
        run_id = h.trigger("timed_out")
        pid = _wait_pid(pids, "endless")
        assert h.wait_run("timed_out", run_id) == "failed"
        assert _wait_gone(pid, 15) < 15
    assert h.states("timed_out", run_id)["endless"][0] == "skipped"


@pytest.mark.slow
def test_a_retry_starts_only_after_the_stopped_try_is_gone(stoppable):
    folder, _pids = stoppable
    with h.running_scheduler(folder, "local", parallelism=4):
        h.wait_parsed("stubborn")
        run_id = h.trigger("stubborn")
        assert h.wait_run("stubborn", run_id, timeout=60) == "success"
    rows = h.try_rows("stubborn", run_id)
    assert [(r.try_number, r.state) for r in rows] == [(1, "up_for_retry"), (2, "success")]
    assert "Timeout" in rows[0].error and "SIGKILL" in rows[0].error


def _log_of(dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> Path:
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    return try_log_path(conf.log_folder(), dag_id, run_id, task_id, -1, try_number)
