"""Failing a try that its runner can no longer record: the one place that does it.

A try is *lost* when the process that supervised it is gone: its worker died (a Dask
worker removed, an ``updraft worker`` silent, a redelivered message whose runner stopped
heartbeating), its heartbeat stopped (a zombie), or the scheduler that owned its local
workers crashed. The scheduler (``scheduler.zombies``) and the NATS worker
(``bus.worker``) both call ``fail_lost_try``.

A node failure is not the task's failure: a lost try does not use one of the task's
retries (``up_for_retry`` due now, with one more try allowed), so no node failure fails a
run that would have succeeded. Only ``[scheduler] max_lost_tries`` tries of one task
instance are forgiven that way; after that the retry policy applies, so a task that kills
its worker every time (possible with ``task_isolation = thread``) still ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from updraft.retries import RetryPolicy, decide_failure
from updraft.state import TaskInstanceState as TI
from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry
from updraft.store.runs import add_event
from updraft.store.ti_state import write_state

LOST_PREFIX = "lost: "
"""How the error of a forgiven lost try begins (they are counted by it)."""


def fail_lost_try(session: Session, *, dag_id: str, run_id: str, task_id: str,
                  map_index: int, try_number: int, reason: str, task, now: datetime,
                  node: str | None = None, from_states: Iterable = (TI.RUNNING,),
                  stale_before: datetime | None = None, executor: str | None = None) -> TI | None:
    """End a lost try (compare-and-set on its state, and on ``heartbeat_at < stale_before``
    if given); returns the state it left the task instance in, or None if the CAS lost.

    ``task`` is the operator (or None if unknown: the task instance's ``max_tries`` then
    decides alone)."""
    from updraft.config import conf

    key = (TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
           TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index,
           TaskInstanceModel.try_number == try_number)
    row = session.execute(select(TaskInstanceModel.max_tries, TaskInstanceModel.start_date,
                                 TaskInstanceModel.state).where(*key)).first()
    if row is None or row.state not in [str(s) for s in from_states]:
        return None
    forgiven = session.scalar(select(func.count()).select_from(TaskInstanceTry).where(
        TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
        TaskInstanceTry.task_id == task_id, TaskInstanceTry.map_index == map_index,
        TaskInstanceTry.error.like(f"{LOST_PREFIX}%"))) or 0
    values: dict = {"end_date": now, "updated_at": now}
    if forgiven < conf.getint("scheduler", "max_lost_tries"):
        state, next_retry_at = TI.UP_FOR_RETRY, now
        values["max_tries"] = TaskInstanceModel.max_tries + 1
        reason = f"{LOST_PREFIX}{reason}; it runs again without using one of its retries"
    else:
        logical = session.scalar(select(DagRunModel.logical_date).where(
            DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))
        state, next_retry_at = decide_failure(
            RetryPolicy.of(task) if task is not None else None, dag_id=dag_id,
            task_id=task_id, logical_date=logical, try_number=try_number,
            max_tries=row.max_tries, failed_at=now)
    conditions = list(key)
    if stale_before is not None:
        conditions.append(TaskInstanceModel.heartbeat_at < stale_before)
    if not write_state(session, row.state, state, *conditions, writer="fail_lost_try",
                       next_retry_at=next_retry_at, **values):
        return None
    try:
        with session.begin_nested():
            session.execute(insert(TaskInstanceTry).values(
                dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                try_number=try_number, state=str(state), start_date=row.start_date,
                end_date=now, executor=executor, error=reason[:4000]))
    except IntegrityError:
        pass
    add_event(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
              try_number=try_number, old=row.state, new=str(state), cause=reason, node=node,
              when=now)
    return state


__all__ = ["LOST_PREFIX", "fail_lost_try"]
