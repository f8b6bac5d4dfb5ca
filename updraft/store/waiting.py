"""Why a task instance is not running: the UI's task instance page and grid panel, the
API's ``.../dependencies`` and ``updraft tasks failed-deps`` show it.

The scheduler records why it holds a task instance back as it decides (``scheduler.waiting``:
dispatch's limits, ``updraft.runlogic.decide``'s dependencies) in ``task_instance
.waiting_reason`` / ``waiting_since``; what it recorded is shown first, marked as such.
What it cannot know or has not recorded yet (no scheduler heartbeat, a paused DAG, a queued
run, a deferral, a task instance it has not looked at since) is asked of the store here with
the same rules. This module never writes; ``encode_waiting_reason`` is the column's format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from updraft.store.models import DagModel, DagRunModel, NodeModel, TaskInstanceModel, utcnow

#: A scheduler whose last heartbeat is older than this counts as down (UI health, reasons).
SCHEDULER_HEALTH_THRESHOLD = timedelta(seconds=60)

#: States in which a task instance waits for something (the others run or are over).
WAITING_STATES = frozenset({"none", "scheduled", "queued", "up_for_retry", "up_for_reschedule",
                            "deferred"})


def encode_waiting_reason(state: str, checks: Iterable[tuple[str, str]]) -> str:
    """``task_instance.waiting_reason`` as the scheduler writes it: the checks that hold the
    task instance back, and the state they were recorded in."""
    return json.dumps({"state": state, "checks": [{"check": check, "reason": reason}
                                                   for check, reason in checks]},
                      separators=(",", ":"))


def recorded_checks(ti: TaskInstanceModel) -> list[dict[str, Any]]:
    """What the scheduler recorded of why ``ti`` waits, as ``[{"check", "reason",
    "recorded_since"}]``; empty when nothing is recorded for the state it is in now."""
    if not ti.waiting_reason or ti.state not in WAITING_STATES:
        return []
    try:
        data = json.loads(ti.waiting_reason)
    except ValueError:
        return []
    if not isinstance(data, dict) or data.get("state") != ti.state:
        return []  # recorded in an earlier state: the task instance moved on since
    return [{"check": str(c["check"]), "reason": str(c.get("reason") or ""),
             "recorded_since": ti.waiting_since}
            for c in data.get("checks") or () if isinstance(c, dict) and c.get("check")]


def waiting_reasons(session: Session, dag: Any, run: DagRunModel, ti: TaskInstanceModel,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """Why ``ti`` is not running, as ``[{"check", "reason"}]`` (empty when it runs or is over);
    a reason the scheduler recorded also has ``recorded_since`` (when it first found it).

    The run, the DAG's pause and the schedulers' heartbeats come first. Then what the
    scheduler recorded for the state ``ti`` is in; failing that, the same questions asked of
    the store with the scheduler's own rules: the dependencies from
    ``updraft.runlogic.decide`` on the run's task instances (trigger rules, depends_on_past,
    retry and reschedule times), the slots counted as dispatch counts them (the pool, the
    DAG's max_active_tasks, the task's max_active_tis_per_dag / per_dagrun).
    """
    from updraft.runlogic import TiView, decide, spec_from_task
    from updraft.store.models import PoolModel
    from updraft.store.runs import past_view

    if ti.state not in WAITING_STATES:
        return []
    now = now or utcnow()
    found: list[dict[str, Any]] = []

    def add(check: str, reason: str) -> None:
        found.append({"check": check, "reason": reason})

    alive = session.scalar(select(func.count()).select_from(NodeModel).where(
        NodeModel.kind == "scheduler", NodeModel.state == "running",
        NodeModel.heartbeat_at >= now - SCHEDULER_HEALTH_THRESHOLD)) or 0
    if not alive:
        add("scheduler", "no scheduler has sent a heartbeat in the last "
            f"{SCHEDULER_HEALTH_THRESHOLD.seconds} s: nothing gets scheduled")
    row = session.get(DagModel, dag.dag_id)
    if row is not None and row.is_paused and run.run_type != "backfill":
        add("dag paused", "the DAG is paused: the scheduler starts none of its tasks")
    if run.state == "queued":
        running = session.scalar(select(func.count(DagRunModel.id)).where(
            DagRunModel.dag_id == dag.dag_id, DagRunModel.state == "running")) or 0
        limit = dag.max_active_runs
        if limit and running >= limit:
            add("max_active_runs", f"the run is queued: {running} of the DAG's "
                f"max_active_runs ({limit}) runs are running")
        else:
            add("run queued", "the run is queued: the scheduler has not started it yet")
    if ti.state == "deferred":
        add("deferred", "it is deferred: it waits for its trigger to fire (see what it waits "
            "for below)")
        return found
    if ti.state == "queued":
        since = ti.queued_dttm
        age = f" for {int((now - since).total_seconds())} s" if since else ""
        add("executor", f"it is queued at the executor{age}: no worker has started it yet "
            f"(executor {ti.executor or 'unknown'}, queue {ti.queue or 'default'})")
        return found
    if ti.task_id not in dag.task_dict:
        add("removed", "the task is no longer in the DAG")
        return found
    recorded = recorded_checks(ti)
    if recorded:
        return found + recorded
    specs = {t.task_id: spec_from_task(t) for t in dag.task_dict.values()}
    views = [TiView(r.task_id, r.map_index, r.state, r.next_retry_at) for r in session.execute(
        select(TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state,
               TaskInstanceModel.next_retry_at).where(
            TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id == run.run_id))
        if r.task_id in specs]
    past_tasks = [s.task_id for s in specs.values() if s.depends_on_past]
    past = past_view(session, dag.dag_id, run.run_id, run.logical_date, past_tasks) \
        if past_tasks else None
    decision = decide(specs, views, now, past)
    key = (ti.task_id, ti.map_index)
    waits = decision.waiting.get(key)
    if waits and ti.state != "scheduled":
        add("dependencies", waits)
        return found
    # Ready (or scheduled): what dispatch checks before it queues a try.
    task = dag.task_dict[ti.task_id]
    pool = session.scalar(select(PoolModel).where(PoolModel.pool == ti.pool))
    active = [str(s) for s in ("queued", "running")]
    if pool is None:
        add("pool", f"pool {ti.pool!r} does not exist: create it on the Pools page")
    else:
        used = session.scalar(select(func.coalesce(func.sum(TaskInstanceModel.pool_slots), 0))
                              .where(TaskInstanceModel.pool == ti.pool,
                                     TaskInstanceModel.state.in_(
                                         active + (["deferred"] if pool.include_deferred
                                                   else [])))) or 0
        if pool.slots == 0:
            add("pool", f"pool {ti.pool!r} has 0 slots: nothing in it can run (give it slots "
                "on the Pools page)")
        elif pool.slots >= 0 and used + ti.pool_slots > pool.slots:
            add("pool", f"pool {ti.pool!r} is full: {used} of {pool.slots} slots in use, this "
                f"task needs {ti.pool_slots}")
    dag_active = session.scalar(select(func.count()).select_from(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.state.in_(active))) or 0
    if dag_active >= (dag.max_active_tasks or 16):
        add("max_active_tasks", f"the DAG's max_active_tasks ({dag.max_active_tasks}) is "
            f"reached: {dag_active} of its task instances are queued or running")
    for limit_name, scope in (("max_active_tis_per_dag", None),
                              ("max_active_tis_per_dagrun", run.run_id)):
        limit = getattr(task, limit_name, None)
        if not limit:
            continue
        query = select(func.count()).select_from(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.task_id == ti.task_id,
            TaskInstanceModel.state.in_(active))
        if scope is not None:
            query = query.where(TaskInstanceModel.run_id == scope)
        count = session.scalar(query) or 0
        if count >= limit:
            add(limit_name, f"the task's {limit_name} ({limit}) is reached: {count} running "
                "or queued")
    if not found:
        add("ready", "its dependencies are met and a slot is free: the scheduler queues it "
            "on its next pass" if ti.state == "scheduled" else
            "its dependencies are met: the scheduler schedules it on its next pass")
    return found
