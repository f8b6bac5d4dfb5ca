"""Choosing which scheduled task instances start now, and queueing them.

Limits, all checked against what is queued or running right now: the executor's free slots
(global parallelism), each pool's slots (a task takes ``pool_slots``), each DAG's
max_active_tasks, and each task's max_active_tis_per_dag / per_dagrun. Among the candidates,
higher priority_weight goes first, then older runs. Candidates are claimed with
``FOR UPDATE SKIP LOCKED`` so several schedulers never queue the same try.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session

from updraft.runtime import TryRequest
from updraft.state import ACTIVE_STATES, DagRunState, TaskInstanceState as TI, state_values
from updraft.store.models import DagModel, DagRunModel, PoolModel, TaskInstanceModel
from scheduler.runs import _not_paused
from updraft.store.runs import queue_task_instances

if TYPE_CHECKING:
    from scheduler.waiting import WaitingReasons

log = logging.getLogger(__name__)
ACTIVE = state_values(ACTIVE_STATES)


# Built once (building a statement costs more than running it); the candidates take their
# limit as a parameter and, where the store can, lock their rows.
_TI = TaskInstanceModel.__table__
_RUN = DagRunModel.__table__
_POOLS = select(PoolModel.__table__.c.pool, PoolModel.__table__.c.slots)
_USAGE = select(_TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.pool,
                func.sum(_TI.c.pool_slots), func.count()).where(
    _TI.c.state.in_(ACTIVE)).group_by(_TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.pool)
#: Deferred tasks hold slots only of the pools that say so (``include_deferred``); they
#: never count against max_active_tasks or a task's limits (ADR 11).
_POOL = PoolModel.__table__
_DEFERRED_USAGE = select(_TI.c.pool, func.sum(_TI.c.pool_slots)).join(
    _POOL, _POOL.c.pool == _TI.c.pool).where(
    _TI.c.state == str(TI.DEFERRED), _POOL.c.include_deferred.is_(True)).group_by(_TI.c.pool)
_CANDIDATES = select(
    _TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.map_index, _TI.c.pool, _TI.c.pool_slots,
    _TI.c.queue, _TI.c.state, _TI.c.try_number, _TI.c.next_method,
).join(_RUN, and_(_RUN.c.dag_id == _TI.c.dag_id, _RUN.c.run_id == _TI.c.run_id)).join(
    DagModel.__table__, DagModel.__table__.c.dag_id == _TI.c.dag_id).where(
    _TI.c.state == str(TI.SCHEDULED),
    _RUN.c.state == str(DagRunState.RUNNING),
    _not_paused(),  # a paused DAG starts no new task, except in backfills (Airflow)
).order_by(_TI.c.priority_weight.desc(), _RUN.c.logical_date, _TI.c.dag_id, _TI.c.task_id,
           _TI.c.map_index).limit(bindparam("limit"))
_CANDIDATES_LOCKED = _CANDIDATES.with_for_update(skip_locked=True, of=_TI)


def _usage(session: Session):
    pools: Counter = Counter()
    dags: Counter = Counter()
    tasks: Counter = Counter()
    task_runs: Counter = Counter()
    for dag_id, run_id, task_id, pool, slots, count in session.execute(_USAGE):
        pools[pool] += int(slots or 0)
        dags[dag_id] += count
        tasks[(dag_id, task_id)] += count
        task_runs[(dag_id, run_id, task_id)] += count
    for pool, slots in session.execute(_DEFERRED_USAGE):
        pools[pool] += int(slots or 0)
    return pools, dags, tasks, task_runs


def _held_back(row, dag, task, size: int | None, pool_used: int, dag_used: int,
               task_used: int, task_run_used: int) -> tuple[str, str] | None:
    """The first limit that keeps this candidate from being queued now, as (check, reason)
    (the checks are named as ``updraft.store.waiting`` names them); None: none does."""
    if size is None:
        return "pool", (f"pool {row.pool!r} does not exist: create it on the Pools page or "
                        "with `updraft pools set`")
    if size >= 0 and pool_used + row.pool_slots > size:
        if size == 0:
            return "pool", (f"pool {row.pool!r} has 0 slots: nothing in it can run (give "
                            "it slots on the Pools page)")
        return "pool", (f"pool {row.pool!r} is full: {pool_used} of {size} slots in use, "
                        f"this task needs {row.pool_slots}")
    limit = dag.max_active_tasks or 16
    if dag_used >= limit:
        return "max_active_tasks", (f"the DAG's max_active_tasks ({limit}) is reached: "
                                    f"{dag_used} of its task instances are queued or running")
    for name, used in (("max_active_tis_per_dag", task_used),
                       ("max_active_tis_per_dagrun", task_run_used)):
        limit = getattr(task, name, None) if task is not None else None
        if limit and used >= limit:
            return name, f"the task's {name} ({limit}) is reached: {used} running or queued"
    return None


def pick_and_queue(session: Session, now: datetime, *, free_slots: int, read_dag,
                   executor_name: str, node: str | None, store_url: str | None,
                   waiting: WaitingReasons | None = None, explain: bool = False,
                   parallelism: int | None = None,
                   dags_folder: str | None = None) -> list[TryRequest]:
    """Queue as many scheduled task instances as the limits allow; return their requests.

    ``waiting`` records why each candidate left scheduled was held back (the limit that
    stopped it, or the executor's free slots). ``explain``: the executor has no free slot;
    only record why the candidates wait (nothing is locked or queued).
    """
    if free_slots <= 0 and not (explain and waiting is not None):
        return []
    locks = session.get_bind().dialect.name in ("postgresql", "mysql", "mariadb") and \
        free_slots > 0
    query = _CANDIDATES_LOCKED if locks else _CANDIDATES
    candidates = session.execute(query, {"limit": max(free_slots * 4, 64)}).all()
    if not candidates:  # most passes: the limits need not be read
        return []
    pool_sizes = dict(session.execute(_POOLS).all())
    pool_used, dag_used, task_used, task_run_used = _usage(session)
    chosen: dict[tuple[str, str], list[tuple[str, int]]] = {}
    rows: dict[tuple[str, str, str, int], Any] = {}
    queues: dict[tuple[str, str, str, int], str] = {}
    placement: dict[tuple[str, str, str, int], dict] = {}  # resources and pool, for Dask
    for row in candidates:
        if free_slots <= 0 and waiting is None:
            break
        dag = read_dag(session, row.dag_id)
        if dag is None:
            continue
        task = dag.task_dict.get(row.task_id)
        key = (row.dag_id, row.run_id, row.task_id, row.map_index)
        held = _held_back(row, dag, task, pool_sizes.get(row.pool), pool_used[row.pool],
                          dag_used[row.dag_id], task_used[(row.dag_id, row.task_id)],
                          task_run_used[(row.dag_id, row.run_id, row.task_id)])
        if held is None and free_slots <= 0:
            held = ("executor", f"the executor ({executor_name}) has no free slot: "
                    f"{parallelism or 'all'} of {parallelism or 'its'} slots are taken "
                    "(parallelism)")
        if held is not None:
            if waiting is not None:
                waiting.note_held(*key, *held, now)
            continue
        chosen.setdefault((row.dag_id, row.run_id), []).append((row.task_id, row.map_index))
        rows[key] = row
        queues[key] = row.queue or "default"
        config = getattr(task, "executor_config", None)
        resources = config.get("resources") if isinstance(config, dict) else None
        placement[key] = {"resources": dict(resources) if resources else None,
                          "pool": row.pool, "pool_slots": int(row.pool_slots or 1)}
        pool_used[row.pool] += row.pool_slots
        dag_used[row.dag_id] += 1
        task_used[(row.dag_id, row.task_id)] += 1
        task_run_used[(row.dag_id, row.run_id, row.task_id)] += 1
        free_slots -= 1
    requests: list[TryRequest] = []
    if chosen:
        from updraft.config import conf
        from scheduler.run_code import RunCode

        code = RunCode(session, chosen, dags_folder or str(conf.dags_folder()))
    for (dag_id, run_id), keys in chosen.items():
        dag = read_dag(session, dag_id)
        queued = queue_task_instances(session, dag_id, run_id, keys, node=node,
                                      executor=executor_name, now=now, current={
                                          (task_id, map_index): rows[(dag_id, run_id,
                                                                      task_id, map_index)]
                                          for task_id, map_index in keys})
        if waiting is not None:
            waiting.queued((dag_id, run_id, task_id, map_index)
                           for task_id, map_index in queued)
        for (task_id, map_index), (try_number, try_id) in queued.items():
            requests.append(TryRequest(dag_id, run_id, task_id, map_index, try_number,
                                       code.fileloc(dag_id, run_id, dag.fileloc),
                                       store_url,
                                       queue=queues[(dag_id, run_id, task_id, map_index)],
                                       try_id=try_id,
                                       **placement[(dag_id, run_id, task_id, map_index)]))
    return requests
