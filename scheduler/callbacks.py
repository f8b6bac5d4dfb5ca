"""DAG-level callbacks (on_success, on_failure, sla_miss) run in a child process.

They are user code, and the scheduler process never imports DAG files: a small process pool
loads the DAG file and calls the callback with a context like Airflow's.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import threading
import time

log = logging.getLogger("updraft.callbacks")
_pool: concurrent.futures.ProcessPoolExecutor | None = None
_lock = threading.Lock()


def _get_pool() -> concurrent.futures.ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return _pool


def shutdown(timeout: float = 3.0) -> None:
    """Stop the pool (node stop): a callback still running after ``timeout`` s is killed."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
        if process.is_alive():
            log.warning("A DAG callback still ran at stop; killed (pid %s)", process.pid)
            process.kill()
            process.join(1.0)


def submit_dag_callback(fileloc: str, dag_id: str, run_id: str, state: str, reason: str,
                        store_url: str | None) -> concurrent.futures.Future:
    """Run the DAG's on_success/on_failure callback for a finished run, in the background."""
    future = _get_pool().submit(run_dag_callback, fileloc, dag_id, run_id, state, reason,
                                store_url)
    future.add_done_callback(_report)
    return future


def submit_sla_callback(fileloc: str, dag_id: str, misses: list[dict],
                        store_url: str | None) -> concurrent.futures.Future:
    """Run the DAG's sla_miss_callback with the new misses, in the background."""
    future = _get_pool().submit(run_sla_callback, fileloc, dag_id, misses, store_url)
    future.add_done_callback(_report)
    return future


def _report(future: concurrent.futures.Future) -> None:
    error = future.exception()
    if error is not None:
        log.error("A DAG callback failed: %s", error)


def run_dag_callback(fileloc: str, dag_id: str, run_id: str, state: str, reason: str,
                     store_url: str | None) -> bool:
    """In the child: load the DAG and call its callback(s) with the run's context."""
    from updraft.dag_callbacks import call_dag_callbacks
    from updraft.task_execution import load_dag
    from updraft.runtime_models import DagRun
    from updraft.store.engine import session_scope
    from updraft.store.runs import get_run

    dag = load_dag(fileloc, dag_id)
    with session_scope(store_url) as session:
        row = get_run(session, dag_id, run_id)
        run = DagRun.from_row(row, dag=dag, store_url=store_url)
    return call_dag_callbacks(dag, run, state, reason)


def run_sla_callback(fileloc: str, dag_id: str, misses: list[dict],
                     store_url: str | None) -> bool:
    """In the child: call ``sla_miss_callback(dag, task_list, blocking_task_list, slas,
    blocking_tis)`` as Airflow does."""
    from updraft.task_execution import load_dag

    dag = load_dag(fileloc, dag_id)
    if not dag.sla_miss_callback:
        return False
    task_list = "\n".join(m["task_id"] for m in misses)
    dag.sla_miss_callback(dag, task_list, "", misses, [])
    return True
