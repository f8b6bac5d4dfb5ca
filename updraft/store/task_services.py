"""The task services (``updraft.task_services``) on the store: what the runtime gives a try.

Each method opens one short session on the try's store (``store_url``) in the calling
process, so a try in a process of its own (ADR 7) reads and writes the store itself, as its
``xcom_pull`` does. This is the only place operators' and sensors' questions about other runs
turn into SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from updraft.task_services import DagInfo, RunInfo, TaskServices

#: A scheduler whose heartbeat is older than this is taken as gone.
SCHEDULER_ALIVE_WITHIN = 30.0


def load_dag(dag_id: str, fileloc: str | None = None):
    """The DAG ``dag_id`` from its file (if known) or from the DAGs folder; DagNotFound
    naming the folder and its import errors if it is in neither."""
    from updraft.dagbag import DagBag
    from updraft.exceptions import DagNotFound

    if fileloc:
        bag = DagBag(dag_folder=fileloc, include_examples=False)
        if bag.get_dag(dag_id) is not None:
            return bag.get_dag(dag_id)
    bag = DagBag()
    dag = bag.get_dag(dag_id)
    if dag is None:
        errors = "; ".join(f"{path}: {err.strip().splitlines()[-1]}"
                           for path, err in bag.import_errors.items() if err.strip())
        raise DagNotFound(f"Dag id {dag_id} not found in the DAGs folder {bag.dag_folder}"
                          + (f" (import errors: {errors})" if errors else ""))
    return dag


class StoreTaskServices(TaskServices):
    """Task services reading and writing the store at ``store_url`` (default: configured)."""

    def __init__(self, store_url: str | None = None) -> None:
        self.store_url = store_url

    def _session(self):
        from updraft.store.engine import session_scope

        return session_scope(self.store_url)

    # -- asset events ----------------------------------------------------------------------

    def triggering_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        from updraft.store.assets import run_triggering_events

        with self._session() as session:
            return run_triggering_events(session, dag_id, run_id)

    def asset_events(self, **query: Any) -> list[dict[str, Any]]:
        from updraft.store.assets import list_events

        with self._session() as session:
            return list_events(session, **query)

    def get_asset(self, *, name: str) -> dict[str, Any] | None:
        from updraft.store.assets import asset_json, find_asset

        with self._session() as session:
            row = find_asset(session, name=name)
            return asset_json(row) if row is not None else None

    def count_asset_events(self, **query: Any) -> int:
        from updraft.store.assets import count_events

        with self._session() as session:
            return count_events(session, **query)

    # -- runs ----------------------------------------------------------------------------

    def trigger_dag_run(self, dag_id: str, *, run_id: str, logical_date: datetime,
                        conf: Mapping[str, Any] | None, owner: str | None,
                        replace_existing: bool = False) -> str:
        from updraft.store.commands import trigger_dag_run

        self._ensure_stored(dag_id)
        with self._session() as session:
            run = trigger_dag_run(session, dag_id, conf=dict(conf) if conf is not None else None,
                                  run_id=run_id, logical_date=logical_date,
                                  triggered_by="operator", owner=owner,
                                  replace_existing=replace_existing)
            return run.run_id

    def _ensure_stored(self, dag_id: str) -> None:
        """Write ``dag_id`` to the store from the DAGs folder if the DAG processor has not."""
        from updraft.schedules import utcnow
        from updraft.store.dags import write_dag
        from updraft.store.models import DagModel

        with self._session() as session:
            row = session.get(DagModel, dag_id)
            if row is not None and row.is_active:
                return
        dag = load_dag(dag_id)
        with self._session() as session:
            write_dag(session, dag, file_hash=None, now=utcnow())

    def get_dag_run(self, dag_id: str, run_id: str) -> RunInfo | None:
        from updraft.store.runs import get_run

        with self._session() as session:
            run = get_run(session, dag_id, run_id)
            if run is None:
                return None
            return RunInfo(run.dag_id, run.run_id, str(run.state), run.logical_date,
                           dict(run.conf or {}))

    def has_listener(self, hook: str) -> bool:
        from updraft.listeners import has_listeners

        return has_listeners(hook)

    def scheduler_alive(self) -> bool:
        from sqlalchemy import func, select

        from updraft.schedules import utcnow
        from updraft.store.models import NodeModel

        since = utcnow() - timedelta(seconds=SCHEDULER_ALIVE_WITHIN)
        with self._session() as session:
            return (session.scalar(select(func.count()).select_from(NodeModel).where(
                NodeModel.kind == "scheduler", NodeModel.state == "running",
                NodeModel.heartbeat_at >= since)) or 0) > 0

    def run_dag_run_here(self, dag_id: str, run_id: str) -> None:
        """Run it with ``run_dag_locally`` in a thread of its own (its tasks get their own
        logs and contexts), and wait for it."""
        from updraft.exceptions import UpdraftException
        from updraft.local_run import run_dag_locally
        from updraft.store.models import DagModel

        run = self.get_dag_run(dag_id, run_id)
        if run is None:
            raise UpdraftException(f"run {run_id} of {dag_id} is not in the store")
        with self._session() as session:
            row = session.get(DagModel, dag_id)
            fileloc = row.fileloc if row is not None else None
        dag = load_dag(dag_id, fileloc)
        failure: list[BaseException] = []

        def target() -> None:
            try:
                run_dag_locally(dag, logical_date=run.logical_date, conf=dict(run.conf),
                                run_id=run_id, store_url=self.store_url)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the caller's thread)
                failure.append(exc)

        thread = threading.Thread(target=target, name=f"trigger-{dag_id}")
        thread.start()
        thread.join()
        if failure:
            raise UpdraftException(f"running {dag_id} run {run_id} here failed: "
                                   f"{failure[0]}") from failure[0]

    def count_dag_runs(self, dag_id: str, logical_dates: Collection[datetime],
                       states: Collection[str]) -> int:
        from sqlalchemy import func, select

        from updraft.store.models import DagRunModel

        if not logical_dates:
            return 0
        with self._session() as session:
            return session.scalar(select(func.count()).select_from(DagRunModel).where(
                DagRunModel.dag_id == dag_id, DagRunModel.state.in_(list(states)),
                DagRunModel.logical_date.in_(list(logical_dates)))) or 0

    # -- task instances ------------------------------------------------------------------

    def count_task_instances(self, dag_id: str, logical_dates: Collection[datetime],
                             states: Collection[str], *,
                             task_ids: Collection[str] | None = None,
                             task_id_prefix: str | None = None) -> int:
        from sqlalchemy import func, select

        from updraft.store.models import DagRunModel, TaskInstanceModel

        if not logical_dates:
            return 0
        query = select(func.count()).select_from(TaskInstanceModel).join(
            DagRunModel, (DagRunModel.dag_id == TaskInstanceModel.dag_id)
            & (DagRunModel.run_id == TaskInstanceModel.run_id)).where(
            TaskInstanceModel.dag_id == dag_id,
            TaskInstanceModel.state.in_(list(states)),
            DagRunModel.logical_date.in_(list(logical_dates)))
        if task_ids is not None:
            query = query.where(TaskInstanceModel.task_id.in_(list(task_ids)))
        if task_id_prefix is not None:
            query = query.where(TaskInstanceModel.task_id.startswith(task_id_prefix,
                                                                     autoescape=True))
        with self._session() as session:
            return session.scalar(query) or 0

    def task_instance_keys(self, dag_id: str, logical_date: datetime,
                           task_id_prefix: str) -> list[tuple[str, int]]:
        from sqlalchemy import select

        from updraft.store.models import DagRunModel, TaskInstanceModel

        with self._session() as session:
            rows = session.execute(
                select(TaskInstanceModel.task_id, TaskInstanceModel.map_index)
                .join(DagRunModel, (DagRunModel.dag_id == TaskInstanceModel.dag_id)
                      & (DagRunModel.run_id == TaskInstanceModel.run_id))
                .where(TaskInstanceModel.dag_id == dag_id,
                       DagRunModel.logical_date == logical_date,
                       TaskInstanceModel.task_id.startswith(task_id_prefix, autoescape=True))
            ).all()
        return [(r.task_id, r.map_index) for r in rows]

    def dag_info(self, dag_id: str) -> DagInfo:
        from sqlalchemy import select

        from updraft.store.models import DagModel, DagRunModel

        with self._session() as session:
            row = session.get(DagModel, dag_id)
            has_runs = session.scalar(select(DagRunModel.id).where(
                DagRunModel.dag_id == dag_id).limit(1)) is not None
            return DagInfo(dag_id, row is not None, row.fileloc if row is not None else None,
                           has_runs)

    def stored_task_ids(self, dag_id: str) -> set[str]:
        from sqlalchemy import select

        from updraft.store.models import TaskInstanceModel

        with self._session() as session:
            return set(session.scalars(select(TaskInstanceModel.task_id).where(
                TaskInstanceModel.dag_id == dag_id).distinct()))

    # -- this task's own history ----------------------------------------------------------

    def first_reschedule_at(self, dag_id: str, run_id: str, task_id: str, map_index: int,
                            try_number: int) -> datetime | None:
        from sqlalchemy import select

        from updraft.store.models import TaskReschedule

        with self._session() as session:
            return session.scalar(select(TaskReschedule.start_date).where(
                TaskReschedule.dag_id == dag_id, TaskReschedule.run_id == run_id,
                TaskReschedule.task_id == task_id, TaskReschedule.map_index == map_index,
                TaskReschedule.try_number == try_number,
            ).order_by(TaskReschedule.id).limit(1))


__all__ = ["SCHEDULER_ALIVE_WITHIN", "StoreTaskServices", "load_dag"]
