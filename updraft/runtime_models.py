"""DagRun and TaskInstance as DAG authors and tests see them.

They are snapshots of store rows with Airflow's most used methods (``xcom_pull``,
``xcom_push``, ``get_task_instances``); each method that reads the store opens its own short
session. The ORM classes stay in ``updraft.store.models``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from updraft.state import DagRunState, TaskInstanceState
from updraft.xcom_arg import NOTSET, XCOM_RETURN_KEY

_TI_FIELDS = ("dag_id", "run_id", "task_id", "map_index", "state", "try_number", "max_tries",
              "start_date", "end_date", "duration", "hostname", "pid", "executor", "queue",
              "pool", "pool_slots", "priority_weight", "operator", "rendered_fields",
              "queued_dttm", "next_retry_at", "note", "external_executor_id")
_RUN_FIELDS = ("id", "dag_id", "run_id", "state", "run_type", "logical_date",
               "data_interval_start", "data_interval_end", "queued_at", "start_date",
               "end_date", "conf", "external_trigger", "triggered_by", "dag_hash", "note",
               "clear_number")


class DagRun:
    """One run of a DAG, as read from the store."""

    def __init__(self, **values: Any) -> None:
        for name in _RUN_FIELDS:
            setattr(self, name, values.get(name))
        self.state = DagRunState(self.state) if self.state else None
        self.conf = self.conf or {}
        self.dag = values.get("dag")
        self.store_url: str | None = values.get("store_url")

    @classmethod
    def from_row(cls, row, dag=None, store_url: str | None = None) -> "DagRun":
        return cls(**{n: getattr(row, n) for n in _RUN_FIELDS}, dag=dag, store_url=store_url)

    def __repr__(self) -> str:
        return f"<DagRun {self.dag_id} @ {self.logical_date}: {self.run_id}, state:{self.state}>"

    @property
    def execution_date(self) -> datetime | None:
        return self.logical_date

    def get_task_instances(self, state: Iterable[str] | str | None = None) -> list["TaskInstance"]:
        """This run's task instances (optionally only those in ``state``), by task and index."""
        from sqlalchemy import select

        from updraft.store.engine import session_scope
        from updraft.store.models import TaskInstanceModel

        with session_scope(self.store_url) as session:
            query = select(TaskInstanceModel).where(TaskInstanceModel.dag_id == self.dag_id,
                                                    TaskInstanceModel.run_id == self.run_id)
            if state is not None:
                states = [state] if isinstance(state, str) else list(state)
                query = query.where(TaskInstanceModel.state.in_([str(s) for s in states]))
            rows = session.scalars(query.order_by(TaskInstanceModel.task_id,
                                                  TaskInstanceModel.map_index)).all()
            return [TaskInstance.from_row(r, run=self) for r in rows]

    def get_task_instance(self, task_id: str, map_index: int = -1) -> "TaskInstance | None":
        for ti in self.get_task_instances():
            if ti.task_id == task_id and ti.map_index == map_index:
                return ti
        return None


class TaskInstance:
    """One task (one map index) in one run: its state and its XComs."""

    def __init__(self, **values: Any) -> None:
        for name in _TI_FIELDS:
            setattr(self, name, values.get(name))
        self.state = TaskInstanceState(self.state) if self.state else TaskInstanceState.NONE
        self.map_index = -1 if self.map_index is None else self.map_index
        self.try_number = self.try_number or 0
        self.task = values.get("task")
        self.dag_run: DagRun | None = values.get("run")
        self.store_url: str | None = values.get("store_url") or (
            self.dag_run.store_url if self.dag_run else None)
        #: XComs pushed during a running try; written with the try's outcome.
        self.pending_xcoms: dict[str, Any] = {}
        self.skipped_downstream: list[str] = []
        self.followed_branches: list[str] | None = None

    @classmethod
    def from_row(cls, row, run: DagRun | None = None, task=None,
                 store_url: str | None = None) -> "TaskInstance":
        return cls(**{n: getattr(row, n) for n in _TI_FIELDS}, run=run, task=task,
                   store_url=store_url)

    def __repr__(self) -> str:
        index = f" map_index={self.map_index}" if self.map_index >= 0 else ""
        return (f"<TaskInstance: {self.dag_id}.{self.task_id} {self.run_id}{index} "
                f"[{self.state}]>")

    @property
    def key(self) -> tuple[str, str, str, int]:
        return self.dag_id, self.run_id, self.task_id, self.map_index

    @property
    def logical_date(self) -> datetime | None:
        return self.dag_run.logical_date if self.dag_run else None

    execution_date = logical_date

    def get_dagrun(self) -> DagRun | None:
        return self.dag_run

    # -- XComs -----------------------------------------------------------------------------

    def xcom_push(self, key: str, value: Any, execution_date: Any = None) -> None:
        """Push an XCom from this task; it is stored with the try's outcome."""
        from updraft.models.xcom import serialize_value

        serialize_value(value, task_id=self.task_id, key=key)  # fail now, not at the end
        self.pending_xcoms[key] = value

    def xcom_pull(self, task_ids: str | Iterable[str] | None = None, dag_id: str | None = None,
                  key: str = XCOM_RETURN_KEY, include_prior_dates: bool = False,
                  session: Any = None, *, map_indexes: int | Iterable[int] | None = None,
                  default: Any = None, run_id: str | None = None) -> Any:
        """Pull XComs like Airflow 3: one task id gives one value (a list for a mapped task),
        several task ids give a list in the order asked. A read that meets a store outage is
        retried with backoff for up to ``[database] connect_wait`` seconds."""
        import time

        from updraft.config import conf
        from updraft.store.engine import session_scope
        from updraft.store.outage import retry_while_unavailable

        dag_id = dag_id or self.dag_id
        run_id = run_id or self.run_id
        single_task = task_ids is None or isinstance(task_ids, str)
        ids = [task_ids or self.task_id] if single_task else list(task_ids)
        single_index = map_indexes is None or isinstance(map_indexes, int)

        def pull() -> list:
            with session_scope(self.store_url) as session:
                found = [self._pull_one(session, dag_id, run_id, task_id, key, map_indexes,
                                        include_prior_dates, single_index) for task_id in ids]
            return [default if value is NOTSET else value for value in found]

        values = retry_while_unavailable(
            pull, what=f"pulling XComs for {self.task_id}",
            deadline=time.monotonic() + conf.getfloat("database", "connect_wait"))
        if single_task:
            return values[0]
        return values

    def _pull_one(self, session, dag_id, run_id, task_id, key, map_indexes,
                  include_prior_dates, single_index):
        from updraft.models.xcom import get_xcom_rows

        own = (dag_id, run_id, task_id) == (self.dag_id, self.run_id, self.task_id)
        if own and key in self.pending_xcoms and map_indexes in (None, self.map_index):
            return self.pending_xcoms[key]
        run_ids = [run_id]
        if include_prior_dates:
            run_ids = self._prior_run_ids(session, dag_id, run_id)
        for candidate in run_ids:
            rows = get_xcom_rows(session, dag_id=dag_id, run_id=candidate, task_ids=task_id,
                                 key=key, map_indexes=map_indexes)
            if not rows:
                continue
            if not single_index:
                return [r.value for r in rows]
            if map_indexes is not None or (len(rows) == 1 and rows[0].map_index < 0):
                return rows[0].value
            return [r.value for r in rows]
        return NOTSET

    @staticmethod
    def _prior_run_ids(session, dag_id: str, run_id: str) -> list[str]:
        from sqlalchemy import select

        from updraft.store.models import DagRunModel

        current = session.scalar(select(DagRunModel.logical_date).where(
            DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))
        query = select(DagRunModel.run_id).where(DagRunModel.dag_id == dag_id)
        if current is not None:
            query = query.where(DagRunModel.logical_date <= current)
        return [run_id] + [r for r in session.scalars(
            query.order_by(DagRunModel.logical_date.desc())) if r != run_id]

    # -- used by branch and short-circuit operators ----------------------------------------

    def skip_downstream(self, task_ids: Iterable[str]) -> None:
        """Ask for these downstream tasks to be skipped when this try's outcome is stored."""
        for task_id in task_ids:
            if task_id not in self.skipped_downstream:
                self.skipped_downstream.append(task_id)

    def record_branch(self, task_ids: Iterable[str]) -> None:
        self.followed_branches = list(task_ids)

    # -- what operators and sensors may ask about other runs -------------------------------

    @property
    def task_services(self):
        """The task services of this try (``updraft.task_services``), on its store."""
        services = self.__dict__.get("_task_services")
        if services is None:
            from updraft.store.task_services import StoreTaskServices

            services = self.__dict__["_task_services"] = StoreTaskServices(self.store_url)
        return services

    # -- misc Airflow API ------------------------------------------------------------------

    def get_template_context(self) -> dict:
        from updraft.runtime_context import current_context

        return current_context()

    @property
    def log_url(self) -> str:
        return (f"/dags/{self.dag_id}/runs/{self.run_id}/tasks/{self.task_id}"
                f"?map_index={self.map_index}&try={self.try_number}")

    @property
    def prev_attempted_tries(self) -> int:
        return self.try_number
