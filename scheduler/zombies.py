"""Tries whose worker died, and tries that never reached a worker.

- A running try whose heartbeat is older than ``[scheduler] zombie_threshold`` is failed
  (``running -> up_for_retry/failed`` compare-and-set on its try number), so the retry
  policy applies. The running tries of a worker the executor reports lost are failed the
  same way at once, without waiting for the threshold.
- A try that never reached a worker (still ``queued``: the executor lost the submission, or
  the scheduler that queued it died) is not a try: it goes back to ``scheduled`` with its
  try number lowered, so it counts nothing. Its identity (``try_id``) is cleared, so a late
  worker that still holds the old request is refused by the claim even though the try
  number will be used again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from updraft.retries import RetryPolicy, decide_failure
from updraft.state import TaskInstanceState as TI
from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry
from updraft.store.runs import add_event

log = logging.getLogger(__name__)


def fail_try(session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int,
             try_number: int, reason: str, read_dag, now: datetime,
             node: str | None = None, from_states=(TI.RUNNING,)) -> TI | None:
    """Record a try as failed by the scheduler (lost worker); None if the CAS lost."""
    row = session.execute(select(TaskInstanceModel.max_tries, TaskInstanceModel.start_date,
                                 TaskInstanceModel.state).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index,
        TaskInstanceModel.try_number == try_number)).first()
    if row is None or row.state not in [str(s) for s in from_states]:
        return None
    dag = read_dag(session, dag_id)
    task = dag.task_dict.get(task_id) if dag is not None else None
    logical = session.scalar(select(DagRunModel.logical_date).where(
        DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))
    state, next_retry_at = decide_failure(
        RetryPolicy.of(task) if task is not None else None, dag_id=dag_id, task_id=task_id,
        logical_date=logical, try_number=try_number, max_tries=row.max_tries, failed_at=now)
    result = session.execute(update(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index,
        TaskInstanceModel.try_number == try_number, TaskInstanceModel.state == row.state,
    ).values(state=str(state), end_date=now, next_retry_at=next_retry_at, updated_at=now))
    if not result.rowcount:
        return None
    try:
        with session.begin_nested():
            session.execute(insert(TaskInstanceTry).values(
                dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                try_number=try_number, state=str(state), start_date=row.start_date,
                end_date=now, error=reason[:4000]))
    except IntegrityError:
        pass
    add_event(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
              try_number=try_number, old=row.state, new=str(state), cause=reason, node=node,
              when=now)
    return state


def fail_zombies(session: Session, now: datetime, threshold: float, read_dag,
                 node: str | None = None) -> list[tuple[str, str, str, int]]:
    """Fail running tries whose worker stopped heartbeating; return their keys."""
    limit = now - timedelta(seconds=threshold)
    rows = session.execute(select(
        TaskInstanceModel.dag_id, TaskInstanceModel.run_id, TaskInstanceModel.task_id,
        TaskInstanceModel.map_index, TaskInstanceModel.try_number,
        TaskInstanceModel.heartbeat_at, TaskInstanceModel.hostname).where(
        TaskInstanceModel.state == str(TI.RUNNING),
        TaskInstanceModel.heartbeat_at < limit)).all()
    failed = []
    for r in rows:
        reason = (f"zombie: no heartbeat from the worker on {r.hostname} since "
                  f"{r.heartbeat_at.isoformat()} (threshold {threshold:g}s); the worker died")
        if fail_try(session, dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id,
                    map_index=r.map_index, try_number=r.try_number, reason=reason,
                    read_dag=read_dag, now=now, node=node) is not None:
            log.warning("%s.%s[%s] %s: %s", r.dag_id, r.task_id, r.map_index, r.run_id, reason)
            failed.append((r.dag_id, r.run_id, r.task_id, r.map_index))
    return failed


def fail_worker_tries(session: Session, *, worker: str, detail: str, read_dag,
                      now: datetime, node: str | None = None,
                      stale_before: datetime | None = None) -> list[tuple[str, str, str, int]]:
    """Fail the running tries of a worker node that is gone (those whose heartbeat is
    older than ``stale_before``, if given); return their keys."""
    query = select(
        TaskInstanceModel.dag_id, TaskInstanceModel.run_id, TaskInstanceModel.task_id,
        TaskInstanceModel.map_index, TaskInstanceModel.try_number).where(
        TaskInstanceModel.state == str(TI.RUNNING), TaskInstanceModel.worker == worker)
    if stale_before is not None:
        query = query.where(TaskInstanceModel.heartbeat_at < stale_before)
    rows = session.execute(query).all()
    failed = []
    for r in rows:
        reason = f"the worker running it was lost: {worker} ({detail})"
        if fail_try(session, dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id,
                    map_index=r.map_index, try_number=r.try_number, reason=reason,
                    read_dag=read_dag, now=now, node=node) is not None:
            failed.append((r.dag_id, r.run_id, r.task_id, r.map_index))
    return failed


def requeue_unstarted(session: Session, *, dag_id: str, run_id: str, task_id: str,
                      map_index: int, try_number: int, try_id: str | None, reason: str,
                      now: datetime, node: str | None = None) -> bool:
    """Put a try that never reached a worker back to ``scheduled``, counting nothing
    (compare-and-set on ``queued``, its try number and its identity)."""
    result = session.execute(update(TaskInstanceModel).where(
        TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
        TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index,
        TaskInstanceModel.try_number == try_number,
        TaskInstanceModel.try_id.is_not_distinct_from(try_id),
        TaskInstanceModel.state == str(TI.QUEUED),
    ).values(state=str(TI.SCHEDULED), try_number=max(try_number - 1, 0), try_id=None,
             queued_dttm=None, updated_at=now))
    if not result.rowcount:
        return False
    add_event(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
              try_number=try_number, old=str(TI.QUEUED), new=str(TI.SCHEDULED),
              cause=f"the try never reached a worker ({reason}); queued again, counting "
                    "nothing", node=node, when=now)
    return True


def reset_stale_queued(session: Session, now: datetime, older_than: float | None = None,
                       keep: set | None = None, node: str | None = None) -> list[tuple]:
    """Put queued tries that no executor will run back to scheduled (same try number next)."""
    query = select(TaskInstanceModel.dag_id, TaskInstanceModel.run_id,
                   TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                   TaskInstanceModel.try_number).where(
        TaskInstanceModel.state == str(TI.QUEUED))
    if older_than is not None:
        query = query.where(TaskInstanceModel.queued_dttm < now - timedelta(seconds=older_than))
    reset = []
    for r in session.execute(query).all():
        key = (r.dag_id, r.run_id, r.task_id, r.map_index)
        if keep and key in keep:
            continue
        result = session.execute(update(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == r.dag_id, TaskInstanceModel.run_id == r.run_id,
            TaskInstanceModel.task_id == r.task_id, TaskInstanceModel.map_index == r.map_index,
            TaskInstanceModel.try_number == r.try_number,
            TaskInstanceModel.state == str(TI.QUEUED),
        ).values(state=str(TI.SCHEDULED), try_number=max(r.try_number - 1, 0),
                 try_id=None, queued_dttm=None, updated_at=now))
        if result.rowcount:
            add_event(session, dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id,
                      map_index=r.map_index, try_number=r.try_number, old=str(TI.QUEUED),
                      new=str(TI.SCHEDULED),
                      cause="queued try was never started (scheduler restarted); queued again",
                      node=node, when=now)
            reset.append(key)
    return reset
