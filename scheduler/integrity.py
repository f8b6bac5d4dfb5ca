"""Aligning a running run with a new version of its DAG (ADR 5: runs follow the newest
version): tasks added to the DAG get task instances, unfinished task instances of tasks
that left it become ``removed``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from updraft.state import SCHEDULABLE_STATES, TaskInstanceState as TI
from updraft.store.models import DagRunModel, TaskInstanceModel
from updraft.store.runs import add_event, set_ti_states


def verify_integrity(session: Session, run: DagRunModel, dag, now: datetime,
                     node: str | None) -> None:
    """Align a run with a new version of its DAG: new tasks get task instances,
    unfinished task instances of tasks that left the DAG become removed."""
    from updraft.store.runs import row_defaults_for

    existing = {r[0] for r in session.execute(select(TaskInstanceModel.task_id).where(
        TaskInstanceModel.dag_id == run.dag_id, TaskInstanceModel.run_id == run.run_id))}
    gone = existing - set(dag.task_dict)
    if gone:
        rows = session.execute(select(TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                                      TaskInstanceModel.state).where(
            TaskInstanceModel.dag_id == run.dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id.in_(sorted(gone)))).all()
        set_ti_states(session, run.dag_id, run.run_id,
                      [(r.task_id, r.map_index, TI.REMOVED,
                        "the task is no longer in the DAG")
                       for r in rows if r.state in SCHEDULABLE_STATES],
                      node, now)
    new = [d for d in row_defaults_for(dag.task_dict) if d.task_id not in existing]
    if new:
        from sqlalchemy import insert

        session.execute(insert(TaskInstanceModel), [
            dict(dag_id=run.dag_id, run_id=run.run_id, task_id=d.task_id, map_index=-1,
                 state=str(TI.NONE), try_number=0, max_tries=d.max_tries, pool=d.pool,
                 pool_slots=d.pool_slots, queue=d.queue, priority_weight=d.priority_weight,
                 operator=d.operator, updated_at=now) for d in new])
        for d in new:
            add_event(session, dag_id=run.dag_id, run_id=run.run_id, task_id=d.task_id,
                      map_index=-1, try_number=0, old=None, new=str(TI.NONE),
                      cause="task added to the DAG", node=node, when=now)
    run.dag_hash = dag.dag_hash


__all__ = ["verify_integrity"]
