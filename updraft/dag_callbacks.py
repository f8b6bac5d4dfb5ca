"""Calling a DAG's on_success / on_failure callbacks when one of its runs ends.

Shared by ``dag.test()`` (in process) and the scheduler (in a child process, since callbacks
are user code).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def call_dag_callbacks(dag, run, state: str, reason: str) -> bool:
    """Call the DAG's callback(s) for a run that ended in ``state``; False if it has none.

    Each callback gets Airflow's context (dag, dag_run, run_id, reason, logical_date, ds,
    params); one that raises is logged and does not stop the others.
    """
    callback = dag.on_success_callback if str(state) == "success" else dag.on_failure_callback
    if not callback:
        return False
    context = {"dag": dag, "dag_run": run, "run_id": run.run_id, "reason": reason,
               "logical_date": run.logical_date, "params": dag.params.dump(),
               "ds": run.logical_date.strftime("%Y-%m-%d") if run.logical_date else None}
    for func in callback if isinstance(callback, (list, tuple)) else [callback]:
        try:
            func(context)
        except Exception:  # noqa: BLE001  (a failing callback does not change the run)
            log.exception("A callback of DAG %s failed", dag.dag_id)
    return True
