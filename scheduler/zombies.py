"""Tries whose worker died, and tries that never reached a worker.

- A running try whose heartbeat is older than ``[scheduler] zombie_threshold`` is lost
  (``updraft.store.lost_tries``: compare-and-set on its try number; a node failure uses no
  retry, up to ``[scheduler] max_lost_tries``). So are, at once, the running tries of a
  worker the executor reports lost and those whose worker process is gone from this host.
- A try that never reached a worker (still ``queued``: the executor lost the submission, or
  the scheduler that queued it died) is not a try: it goes back to ``scheduled`` with its
  try number lowered, so it counts nothing. Every scheduler looks on its slow timer for
  tries queued by a scheduler that is no longer alive (``reset_orphaned_queued``), not only
  when it starts: a scheduler killed with tries queued leaves them to the survivors. Its identity (``try_id``) is cleared, so a late
  worker that still holds the old request is refused by the claim even though the try
  number will be used again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from updraft.store.lost_tries import fail_lost_try
from updraft.state import TaskInstanceState as TI
from updraft.store.models import TaskInstanceModel
from updraft.store.runs import add_event
from updraft.store.ti_state import write_state

log = logging.getLogger(__name__)


def fail_try(session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int,
             try_number: int, reason: str, read_dag, now: datetime,
             node: str | None = None, from_states=(TI.RUNNING,)) -> TI | None:
    """End a lost try (``updraft.store.lost_tries``); None if the CAS lost."""
    dag = read_dag(session, dag_id)
    task = dag.task_dict.get(task_id) if dag is not None else None
    return fail_lost_try(session, dag_id=dag_id, run_id=run_id, task_id=task_id,
                         map_index=map_index, try_number=try_number, reason=reason, task=task,
                         now=now, node=node, from_states=from_states)


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


def fail_orphans(session: Session, *, read_dag, now: datetime,
                 node: str | None = None) -> list[tuple[str, str, str, int]]:
    """Fail the running tries whose worker was a process of this host that no longer runs
    (workers named ``host:pid:...``: the local executor's slots, the processes of a Dask
    cluster an Updraft scheduler owned): after a crash and a restart they are known dead
    at once, without waiting for the zombie threshold."""
    import os
    import socket

    host = socket.gethostname()
    rows = session.execute(select(
        TaskInstanceModel.dag_id, TaskInstanceModel.run_id, TaskInstanceModel.task_id,
        TaskInstanceModel.map_index, TaskInstanceModel.try_number, TaskInstanceModel.worker
    ).where(TaskInstanceModel.state == str(TI.RUNNING),
            TaskInstanceModel.worker.like(f"{host}:%"))).all()
    failed = []
    for r in rows:
        try:
            pid = int(r.worker.split(":")[1])
        except (IndexError, ValueError):
            continue
        try:
            os.kill(pid, 0)
            continue  # still there
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        reason = (f"the worker running it was lost: {r.worker} (the process {pid} that "
                  "owned it no longer runs on this host)")
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
    if not write_state(
            session, TI.QUEUED, TI.SCHEDULED,
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id, TaskInstanceModel.map_index == map_index,
            TaskInstanceModel.try_number == try_number,
            TaskInstanceModel.try_id.is_not_distinct_from(try_id), writer="requeue_unstarted",
            try_number=max(try_number - 1, 0), try_id=None, queued_dttm=None, updated_at=now):
        return False
    add_event(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
              try_number=try_number, old=str(TI.QUEUED), new=str(TI.SCHEDULED),
              cause=f"the try never reached a worker ({reason}); queued again, counting "
                    "nothing", node=node, when=now)
    return True


def reset_stale_queued(session: Session, now: datetime, older_than: float | None = None,
                       keep: set | None = None, node: str | None = None,
                       live_schedulers: set[str] | None = None,
                       cause: str = "queued try was never started (scheduler restarted); "
                                    "queued again") -> list[tuple]:
    """Put queued tries that no executor will run back to scheduled (same try number next):
    all of them, or only those not queued by one of ``live_schedulers``.

    Each reset is a compare-and-set on ``queued``, the try number and the try's identity
    (``try_id``), which it clears: a worker that still holds the request is refused by the
    claim, and a try a worker claimed meanwhile (now ``running``) is left alone, so no try
    runs twice."""
    query = select(TaskInstanceModel.dag_id, TaskInstanceModel.run_id,
                   TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                   TaskInstanceModel.try_number, TaskInstanceModel.try_id,
                   TaskInstanceModel.queued_by).where(
        TaskInstanceModel.state == str(TI.QUEUED))
    if older_than is not None:
        query = query.where(TaskInstanceModel.queued_dttm < now - timedelta(seconds=older_than))
    reset = []
    for r in session.execute(query).all():
        key = (r.dag_id, r.run_id, r.task_id, r.map_index)
        if keep and key in keep:
            continue
        if live_schedulers is not None and r.queued_by in live_schedulers:
            continue
        if write_state(
                session, TI.QUEUED, TI.SCHEDULED,
                TaskInstanceModel.dag_id == r.dag_id, TaskInstanceModel.run_id == r.run_id,
                TaskInstanceModel.task_id == r.task_id,
                TaskInstanceModel.map_index == r.map_index,
                TaskInstanceModel.try_number == r.try_number,
                TaskInstanceModel.try_id.is_not_distinct_from(r.try_id),
                writer="reset_stale_queued",
                try_number=max(r.try_number - 1, 0), try_id=None, queued_dttm=None,
                queued_by=None, updated_at=now):
            add_event(session, dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id,
                      map_index=r.map_index, try_number=r.try_number, old=str(TI.QUEUED),
                      new=str(TI.SCHEDULED),
                      cause=cause if r.queued_by is None else f"{cause} (queued by {r.queued_by})",
                      node=node, when=now)
            reset.append(key)
    return reset


def live_scheduler_ids(session: Session, now: datetime, threshold: float) -> set[str]:
    """The scheduler nodes alive now: running, with a heartbeat younger than ``threshold``
    seconds, and, on this host, with a process that still exists (a scheduler restarted
    within the threshold must not take its dead predecessor for a live one)."""
    import os
    import socket

    from updraft.store.models import NodeModel

    host = socket.gethostname()
    rows = session.execute(select(NodeModel.node_id, NodeModel.hostname, NodeModel.pid).where(
        NodeModel.kind == "scheduler", NodeModel.state == "running",
        NodeModel.heartbeat_at >= now - timedelta(seconds=threshold))).all()
    live = set()
    for r in rows:
        if r.hostname == host and r.pid and r.pid != os.getpid():
            try:
                os.kill(r.pid, 0)
            except ProcessLookupError:
                continue
            except PermissionError:
                pass
        live.add(r.node_id)
    return live


def reset_orphaned_queued(session: Session, now: datetime, *, threshold: float,
                          grace: float, node: str) -> list[tuple]:
    """Put back to scheduled the tries queued (more than ``grace`` seconds ago) by a
    scheduler that is no longer alive (``live_scheduler_ids``); this scheduler counts as
    alive. Returns their keys."""
    live = live_scheduler_ids(session, now, threshold) | {node}
    return reset_stale_queued(
        session, now, older_than=grace, node=node, live_schedulers=live,
        cause="the scheduler that queued this try is gone and no worker started it; "
              "queued again")
