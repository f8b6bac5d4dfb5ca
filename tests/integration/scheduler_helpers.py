"""Helpers for the scheduler integration tests: DAG files, a scheduler in a thread, waits.

The store is the truth, so every check reads it: run states, task instance states and try
numbers, and the rows of ``task_instance_try``. Waits poll the store with a generous
deadline (the machines are small and shared); they never assert on how long something took.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

#: Settings every scheduler test uses (short timers, unpaused DAGs).
FAST_SETTINGS = {
    "UPDRAFT__SCHEDULER__RECONCILE_INTERVAL": "0.5",
    "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "0.5",
    "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
    "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "2",
    "UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "1",
    "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
    "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
    "UPDRAFT__CORE__PARALLELISM": "4",
    "UPDRAFT__DASK__PROCESSES": "false",
    "UPDRAFT__DASK__N_WORKERS": "1",
    "UPDRAFT__DASK__THREADS_PER_WORKER": "2",
    "UPDRAFT__DASK__DASHBOARD_ADDRESS": "",
}

WAIT = 90.0
"""Default deadline of a wait, in seconds: generous, since two cores are shared."""

TERMINAL_RUN_STATES = ("success", "failed")


def write_dag(folder: Path, name: str, source: str) -> Path:
    """Write a DAG file (dedented) into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(textwrap.dedent(source))
    os.replace(tmp, path)  # atomic: the processor never parses half a file
    return path


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, interval: float = 0.1,
             what: str = "condition", describe: Callable[[], Any] | None = None) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with context on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; state: {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


# -- reading the store ---------------------------------------------------------------------------

def session(url: str | None = None):
    from updraft.store.engine import session_scope

    return session_scope(url)


def dag_row(dag_id: str, url: str | None = None):
    from updraft.store.models import DagModel

    with session(url) as s:
        row = s.get(DagModel, dag_id)
        if row is not None:
            s.expunge(row)
        return row


def runs(dag_id: str, url: str | None = None) -> list:
    """The runs of a DAG (detached rows), oldest logical date first."""
    from updraft.store.models import DagRunModel

    with session(url) as s:
        rows = list(s.scalars(select(DagRunModel).where(DagRunModel.dag_id == dag_id)
                              .order_by(DagRunModel.logical_date, DagRunModel.id)))
        s.expunge_all()
        return rows


def run_state(dag_id: str, run_id: str, url: str | None = None) -> str | None:
    from updraft.store.models import DagRunModel

    with session(url) as s:
        return s.scalar(select(DagRunModel.state).where(DagRunModel.dag_id == dag_id,
                                                        DagRunModel.run_id == run_id))


def tis(dag_id: str, run_id: str, url: str | None = None) -> dict:
    """``{task_id or (task_id, map_index): row}`` for one run (detached rows)."""
    from updraft.store.models import TaskInstanceModel

    with session(url) as s:
        rows = list(s.scalars(select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id)))
        s.expunge_all()
    return {(r.task_id if r.map_index < 0 else (r.task_id, r.map_index)): r for r in rows}


def states(dag_id: str, run_id: str, url: str | None = None) -> dict:
    """``{task key: (state, try_number)}`` for one run."""
    return {k: (r.state, r.try_number) for k, r in tis(dag_id, run_id, url).items()}


def try_rows(dag_id: str, run_id: str | None = None, url: str | None = None) -> list:
    """Rows of ``task_instance_try`` (detached), in insertion order."""
    from updraft.store.models import TaskInstanceTry

    query = select(TaskInstanceTry).where(TaskInstanceTry.dag_id == dag_id)
    if run_id is not None:
        query = query.where(TaskInstanceTry.run_id == run_id)
    with session(url) as s:
        rows = list(s.scalars(query.order_by(TaskInstanceTry.id)))
        s.expunge_all()
    return rows


def events(dag_id: str, run_id: str, task_id: str, url: str | None = None) -> list:
    """The story of one task instance (``ti_event`` rows)."""
    from updraft.store.models import TiEvent

    with session(url) as s:
        rows = list(s.scalars(select(TiEvent).where(
            TiEvent.dag_id == dag_id, TiEvent.run_id == run_id, TiEvent.task_id == task_id)
            .order_by(TiEvent.id)))
        s.expunge_all()
    return rows


def import_errors(url: str | None = None) -> dict[str, str]:
    from updraft.store.models import ImportError_

    with session(url) as s:
        return {Path(r.filename).name: r.stacktrace for r in s.scalars(select(ImportError_))}


# -- waiting on the store -------------------------------------------------------------------------

def wait_parsed(dag_id: str, url: str | None = None, timeout: float = WAIT,
                hash_not: str | None = None):
    """Wait until ``dag_id`` is active in the store (with a hash other than ``hash_not``)."""
    def ready():
        row = dag_row(dag_id, url)
        return row if row is not None and row.is_active and row.dag_hash and \
            row.dag_hash != hash_not else None

    return wait_for(ready, timeout, what=f"DAG {dag_id} to be parsed",
                    describe=lambda: import_errors(url))


def wait_run(dag_id: str, run_id: str, url: str | None = None, timeout: float = WAIT,
             states_wanted: tuple[str, ...] = TERMINAL_RUN_STATES) -> str:
    """Wait until the run is in one of ``states_wanted``; return its state."""
    def done():
        state = run_state(dag_id, run_id, url)
        return state if state in states_wanted else None

    return wait_for(done, timeout, what=f"run {run_id} of {dag_id} to be {states_wanted}",
                    describe=lambda: (run_state(dag_id, run_id, url),
                                      states(dag_id, run_id, url)))


def trigger(dag_id: str, url: str | None = None, **kwargs) -> str:
    """Trigger a run through the store commands; returns its run id."""
    from updraft.store.commands import trigger_dag_run

    with session(url) as s:
        run = trigger_dag_run(s, dag_id, triggered_by="test", **kwargs)
        return run.run_id


# -- the scheduler --------------------------------------------------------------------------------

def make_executor(kind: str, parallelism: int | None = None):
    from executors import get_executor

    options: dict[str, Any] = {}
    if parallelism is not None:
        options["parallelism"] = parallelism
    if kind == "dask":
        options.update(n_workers=1, threads_per_worker=2, processes=False,
                       dashboard_address=None, scheduler_address="")
    return get_executor(kind, **options)


@contextmanager
def running_scheduler(dags_folder: Path, executor: str | Any = "local", *,
                      url: str | None = None, parallelism: int | None = None,
                      run_processor: bool = True):
    """A Scheduler running in a thread for the duration of the block."""
    from scheduler.core import Scheduler

    if isinstance(executor, str):
        executor = make_executor(executor, parallelism)
    scheduler = Scheduler(executor, store_url=url, run_processor=run_processor,
                          dags_folder=str(dags_folder))
    failure: list[BaseException] = []

    def body():
        try:
            scheduler.run()
        except BaseException as exc:  # noqa: BLE001  (reported by the test)
            failure.append(exc)

    thread = threading.Thread(target=body, name="test-scheduler", daemon=True)
    thread.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()
        thread.join(timeout=60)
        # Leaked Dask/processor threads would slow every later test: fail loudly instead.
        assert not thread.is_alive(), "the scheduler did not stop within 60s"
    if failure:
        raise failure[0]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: this one's (UPDRAFT_HOME, UPDRAFT__...) plus extra."""
    env = dict(os.environ)
    env.update(extra)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def start_scheduler_process(log_path: Path, executor: str = "local", **env: str):
    """``updraft scheduler`` in a subprocess (its own process group), logging to a file."""
    with open(log_path, "ab") as handle:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("updraft")), "scheduler", "--executor",
             executor], env=cli_env(**env), stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True)


def kill_group(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the scheduler subprocess and everything it started."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def wait_scheduler_sees(scheduler, dag_id: str, dag_hash: str, url: str | None = None,
                        timeout: float = WAIT) -> None:
    """Wait until the scheduler's DAG cache serves version ``dag_hash`` of ``dag_id``."""
    def sees():
        with session(url) as s:
            dag = scheduler.dags.read(s, dag_id)
        return dag is not None and dag.dag_hash == dag_hash

    wait_for(sees, timeout, what=f"the scheduler to read version {dag_hash} of {dag_id}")


def prepare_bus_env(monkeypatch, tmp_path: Path, updraft_home: Path, sqlite_template: Path,
                    nats_url: str, prefix: str) -> Path:
    """Fast scheduler settings, a DAGs folder, a copied SQLite store and NATS with a fresh
    subject prefix (starting with ``prefix``); returns the DAGs folder."""
    import secrets
    import shutil

    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    path = updraft_home / "updraft.db"
    shutil.copyfile(sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", nats_url)
    monkeypatch.setenv("UPDRAFT__NATS__SUBJECT_PREFIX", f"{prefix}{secrets.token_hex(4)}")
    conf.reload()
    return dags
