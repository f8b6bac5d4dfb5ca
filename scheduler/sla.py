"""SLA misses: a task that has not finished ``sla`` after its run's data interval ended.

Each miss is recorded once in ``sla_miss`` and, if the DAG has an ``sla_miss_callback``,
passed to it (in a child process: it is user code).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from updraft.state import DagRunState, TaskInstanceState as TI
from updraft.store.models import DagRunModel, SlaMiss, TaskInstanceModel


def check_slas(session: Session, now: datetime, read_dag, store_url: str | None) -> list[dict]:
    """Record new SLA misses among unfinished or late-finished tasks of recent runs."""
    found: list[dict] = []
    runs = session.execute(select(DagRunModel.dag_id, DagRunModel.run_id,
                                  DagRunModel.logical_date, DagRunModel.data_interval_end)
                           .where(DagRunModel.state.in_([str(DagRunState.RUNNING),
                                                         str(DagRunState.QUEUED)]))).all()
    by_dag: dict[str, list[dict]] = {}
    for run in runs:
        dag = read_dag(session, run.dag_id)
        if dag is None:
            continue
        sla_tasks = {t.task_id: t.sla for t in dag.tasks if t.sla}
        if not sla_tasks:
            continue
        anchor = run.data_interval_end or run.logical_date
        if anchor is None:
            continue
        rows = session.execute(select(TaskInstanceModel.task_id, TaskInstanceModel.state,
                                      TaskInstanceModel.end_date).where(
            TaskInstanceModel.dag_id == run.dag_id, TaskInstanceModel.run_id == run.run_id,
            TaskInstanceModel.task_id.in_(list(sla_tasks)))).all()
        seen: set[str] = set()
        for row in rows:
            if row.task_id in seen:
                continue
            deadline = anchor + sla_tasks[row.task_id]
            finished_late = row.state == str(TI.SUCCESS) and row.end_date and \
                row.end_date > deadline
            unfinished = row.state != str(TI.SUCCESS) and now > deadline
            if not (finished_late or unfinished):
                continue
            seen.add(row.task_id)
            if session.get(SlaMiss, (run.dag_id, run.run_id, row.task_id)) is not None:
                continue
            session.add(SlaMiss(dag_id=run.dag_id, run_id=run.run_id, task_id=row.task_id,
                                logical_date=run.logical_date, timestamp=now,
                                description=f"{row.task_id} was not done by "
                                            f"{deadline.isoformat()}"))
            miss = {"dag_id": run.dag_id, "run_id": run.run_id, "task_id": row.task_id,
                    "logical_date": run.logical_date.isoformat() if run.logical_date else None,
                    "deadline": deadline.isoformat()}
            found.append(miss)
            if dag.has_sla_miss_callback:
                by_dag.setdefault(run.dag_id, []).append(miss)
    if by_dag:
        session.flush()
        from scheduler.callbacks import submit_sla_callback

        for dag_id, misses in by_dag.items():
            dag = read_dag(session, dag_id)
            submit_sla_callback(dag.fileloc, dag_id, misses, store_url)
            for miss in misses:
                row = session.get(SlaMiss, (dag_id, miss["run_id"], miss["task_id"]))
                if row is not None:
                    row.notification_sent = True
    return found
