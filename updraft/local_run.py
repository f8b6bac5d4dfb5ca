"""Run a whole DAG once, here and now, without a scheduler: ``dag.test()`` and ``dags test``.

The loop is the scheduler's in miniature: ask the run logic what is ready, queue it, run it
with the shared task runner, repeat. Everything is recorded in the store like any other run,
so ``updraft tasks states-for-dag-run`` and the web UI show it afterwards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from updraft.exceptions import ParamValidationError
from updraft.state import UNFINISHED_STATES, DagRunState, DagRunType, TaskInstanceState as TI

log = logging.getLogger(__name__)
NODE = "dag.test"


def _delete_run(session, dag_id: str, run_id: str | None, logical_date: datetime | None) -> None:
    """Remove an earlier run at the same logical date (or with the same id), as Airflow does."""
    from sqlalchemy import delete, or_, select

    from updraft.store.models import (
        DagRunModel, TaskInstanceModel, TaskInstanceTry, TaskReschedule, TiEvent, XComModel,
    )

    conditions = []
    if run_id is not None:
        conditions.append(DagRunModel.run_id == run_id)
    if logical_date is not None:
        conditions.append(DagRunModel.logical_date == logical_date)
    run_ids = list(session.scalars(select(DagRunModel.run_id).where(
        DagRunModel.dag_id == dag_id, or_(*conditions))))
    for rid in run_ids:
        for model in (TaskInstanceModel, TaskInstanceTry, TaskReschedule, TiEvent, XComModel):
            session.execute(delete(model).where(model.dag_id == dag_id, model.run_id == rid))
        session.execute(delete(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                  DagRunModel.run_id == rid))


def run_dag_locally(dag, logical_date: datetime | str | None = None, conf: dict | None = None,
                    run_id: str | None = None,
                    progress: Callable[[str, Any], None] | None = None,
                    store_url: str | None = None, echo_log=None):
    """Create a manual run of ``dag`` and run all its tasks in this process; return the run."""
    from updraft.dag_callbacks import call_dag_callbacks
    from updraft.runlogic import decide, specs_from_dag
    from updraft.runtime import TryRequest, run_task_try
    from updraft.runtime_models import DagRun
    from updraft.schedules import coerce_datetime, utcnow
    from updraft.store.engine import session_scope
    from updraft.store.migrate import ensure_migrated
    from updraft.store.runs import (
        create_dag_run, expand_task, get_run, past_view, queue_task_instances, row_defaults_for,
        set_run_state, set_ti_states, ti_views, xcom_lengths,
    )

    ensure_migrated(store_url)
    dag.validate()
    logical = coerce_datetime(logical_date, dag.timezone) if logical_date else utcnow()
    try:
        dag.params.resolve(conf or {})
    except ParamValidationError as exc:
        raise ParamValidationError(f"DAG {dag.dag_id!r} refused the run: {exc}") from None
    interval = dag.timetable.infer_manual_data_interval(run_after=logical)
    run_id = run_id or DagRunType.MANUAL.generate_run_id(logical)
    specs = specs_from_dag(dag)
    with session_scope(store_url) as session:
        _delete_run(session, dag.dag_id, run_id, logical)
        run = create_dag_run(session, dag_id=dag.dag_id, run_id=run_id,
                             run_type=DagRunType.MANUAL, logical_date=logical,
                             data_interval=(interval.start, interval.end), conf=conf or {},
                             tasks=row_defaults_for(dag.task_dict), state=DagRunState.RUNNING,
                             external_trigger=True, triggered_by="test")
    if progress:
        progress("run_started", run)

    while True:
        now = utcnow()
        with session_scope(store_url) as session:
            run = get_run(session, dag.dag_id, run_id)
            views = ti_views(session, dag.dag_id, run_id)
            past = past_view(session, dag.dag_id, run_id, run.logical_date,
                             [s.task_id for s in specs.values() if s.depends_on_past])
            decision = decide(specs, views, now, past)
            if decision.changes:
                set_ti_states(session, dag.dag_id, run_id, decision.changes, NODE, now)
            for task_id in decision.expand:
                mapped = dag.task_dict[task_id]
                lengths = xcom_lengths(session, dag.dag_id, run_id, mapped.mapped_task_ids())
                length = mapped.get_map_length(lengths) or 0
                expand_task(session, dag.dag_id, run_id, task_id, length, NODE, now)
            if decision.changes or decision.expand:
                if progress:
                    for task_id, map_index, state, cause in decision.changes:
                        progress("state_changed", (task_id, map_index, state, cause))
                continue
            if decision.blocked_by_past and not decision.ready:
                decision.run_state = DagRunState.FAILED
                decision.run_reason = "blocked: " + "; ".join(sorted(set(
                    decision.waiting.values())))
            if decision.run_state is not None:
                set_run_state(session, run, decision.run_state, now)
                run_state, reason = decision.run_state, decision.run_reason
                break
            queued = queue_task_instances(session, dag.dag_id, run_id, decision.ready, NODE,
                                          executor="dag.test", now=now)
        if not queued:
            wait = (decision.wake_at - utcnow()).total_seconds() if decision.wake_at else 0.5
            time.sleep(min(max(wait, 0.01), 5.0))
            continue
        for (task_id, map_index), (try_number, try_id) in sorted(queued.items()):
            request = TryRequest(dag.dag_id, run_id, task_id, map_index, try_number,
                                 dag.fileloc, store_url, try_id=try_id)
            outcome = run_task_try(request, dag, node=NODE, executor="dag.test",
                                   echo_log=echo_log)
            while outcome.state == TI.DEFERRED:
                # As Airflow's dag.test: the trigger runs here, then the same try resumes.
                request = _run_trigger_inline(dag, run_id, task_id, map_index, store_url)
                if request is None:
                    break
                outcome = run_task_try(request, dag, node=NODE, executor="dag.test",
                                       echo_log=echo_log)
            if progress:
                progress("try_finished", (request, outcome))
            if outcome.state == TI.FAILED and dag.fail_stop:
                _fail_stop(dag, run_id, task_id, store_url)

    with session_scope(store_url) as session:
        row = get_run(session, dag.dag_id, run_id)
        result = DagRun.from_row(row, dag=dag, store_url=store_url)
    log.info("Dag run %s of %s finished: %s (%s)", run_id, dag.dag_id, run_state, reason)
    call_dag_callbacks(dag, result, str(run_state), reason)
    if progress:
        progress("run_finished", (result, reason))
    return result


def _run_trigger_inline(dag, run_id: str, task_id: str, map_index: int,
                        store_url: str | None):
    """Run a deferred task instance's trigger in this process until its first event (or
    its timeout), record it as a triggerer would, and queue the resumed try; its request."""
    import asyncio
    import traceback

    from updraft.exceptions import DEFERRAL_TIMEOUT_ERROR
    from updraft.runtime import TryRequest
    from updraft.store import triggers as store
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel, TriggerModel
    from updraft.store.runs import queue_task_instances
    from updraft.store.task_services import StoreTaskServices
    from updraft.triggers.base import build_trigger
    from updraft.utils.timezone import utcnow

    with session_scope(store_url) as session:
        ti = session.get(TaskInstanceModel, (dag.dag_id, run_id, task_id, map_index))
        row = session.get(TriggerModel, ti.trigger_id) if ti and ti.trigger_id else None
        if row is None:
            return None
        trigger_id, classpath, kwargs = row.id, row.classpath, store.open_kwargs(row.kwargs)
        timeout = ti.trigger_timeout

    async def first_event(trigger):
        events = trigger.run()
        try:
            return await events.__anext__()
        finally:
            await events.aclose()
            await trigger.cleanup()

    event = failure = None
    try:
        trigger = build_trigger(classpath, kwargs)
        trigger.trigger_id = trigger_id
        trigger.task_services = StoreTaskServices(store_url)
        log.info("Running trigger %s inline: %r", trigger_id, trigger)
        seconds = (timeout - utcnow()).total_seconds() if timeout else None
        event = asyncio.run(asyncio.wait_for(first_event(trigger), seconds))
    except TimeoutError:
        failure = (trigger_id, DEFERRAL_TIMEOUT_ERROR, None)
    except StopAsyncIteration:
        failure = (trigger_id, "Trigger exited without sending an event", None)
    except Exception as exc:  # noqa: BLE001  (the task resumes in __fail__ with it)
        failure = (trigger_id, f"Trigger failure: {type(exc).__name__}: {exc}",
                   traceback.format_exception(exc))
    now = utcnow()
    with session_scope(store_url) as session:
        if failure is not None:
            store.fail(session, [failure], triggerer_id=None, now=now, node=NODE)
        else:
            store.fire(session, [(trigger_id, event)], triggerer_id=None, now=now, node=NODE)
        queued = queue_task_instances(session, dag.dag_id, run_id, [(task_id, map_index)],
                                      NODE, executor="dag.test", now=now)
    if (task_id, map_index) not in queued:
        return None  # ended in the trigger (end_from_trigger), or changed meanwhile
    try_number, try_id = queued[(task_id, map_index)]
    return TryRequest(dag.dag_id, run_id, task_id, map_index, try_number, dag.fileloc,
                      store_url, try_id=try_id)


def _fail_stop(dag, run_id: str, failed_task_id: str, store_url: str | None) -> None:
    """``fail_stop``: once a task fails, skip every other unfinished non-teardown task.

    Queued ones too (as Airflow), so tries queued in the same batch are refused at claim.
    """
    from updraft.store.engine import session_scope
    from updraft.store.runs import set_ti_states, ti_views

    with session_scope(store_url) as session:
        changes = [(v.task_id, v.map_index, TI.SKIPPED, f"fail_stop: {failed_task_id} failed")
                   for v in ti_views(session, dag.dag_id, run_id)
                   if v.task_id != failed_task_id
                   and v.state in UNFINISHED_STATES - {TI.RUNNING}
                   and not dag.task_dict[v.task_id].is_teardown]
        set_ti_states(session, dag.dag_id, run_id, changes, NODE)
