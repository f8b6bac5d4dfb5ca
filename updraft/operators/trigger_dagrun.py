"""TriggerDagRunOperator: creates a run of another DAG, optionally waiting for its end.

The run is created in the store with ``updraft.store.commands.trigger_dag_run``, so the
scheduler starts it like any triggered run. A target DAG the store does not know yet is
loaded from ``[core] dags_folder`` and written to the store first. With
``wait_for_completion`` the task polls the run's state; when no scheduler is alive (as in
``dag.test()``) nobody else would run it, so the task runs it itself, in a thread of its
own, with ``run_dag_locally``.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from updraft.exceptions import (
    DagNotFound,
    DagRunAlreadyExists,
    UpdraftException,
    UpdraftSkipException,
)
from updraft.operators.base import BaseOperator
from updraft.state import DagRunState

XCOM_RUN_ID = "trigger_run_id"
XCOM_LOGICAL_DATE_ISO = "trigger_logical_date_iso"
#: A scheduler whose heartbeat is older than this is taken as gone.
SCHEDULER_ALIVE_WITHIN = 30.0


def _scheduler_alive(session, now: datetime.datetime) -> bool:
    from sqlalchemy import func, select

    from updraft.store.models import NodeModel

    return (session.scalar(select(func.count()).select_from(NodeModel).where(
        NodeModel.kind == "scheduler", NodeModel.state == "running",
        NodeModel.heartbeat_at >= now - datetime.timedelta(seconds=SCHEDULER_ALIVE_WITHIN)))
        or 0) > 0


def _load_dag(dag_id: str, fileloc: str | None):
    """The DAG object ``dag_id`` from its file (if known) or from the DAGs folder."""
    from updraft.dagbag import DagBag

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


class TriggerDagRunOperator(BaseOperator):
    """Triggers a run of ``trigger_dag_id`` with ``conf``; pushes its run id as XCom
    ``trigger_run_id``."""

    template_fields: Sequence[str] = ("trigger_dag_id", "trigger_run_id", "logical_date",
                                      "conf", "wait_for_completion",
                                      "skip_when_already_exists")
    template_fields_renderers: ClassVar[dict[str, str]] = {"conf": "py"}
    ui_color = "#ffefeb"

    def __init__(self, *, trigger_dag_id: str, trigger_run_id: str | None = None,
                 conf: dict | None = None,
                 logical_date: str | datetime.datetime | None = None,
                 reset_dag_run: bool = False, wait_for_completion: bool = False,
                 poke_interval: float = 60, allowed_states: Iterable[str] | None = None,
                 failed_states: Iterable[str] | None = None,
                 skip_when_already_exists: bool = False, deferrable: bool = False,
                 execution_date: str | datetime.datetime | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trigger_dag_id = trigger_dag_id
        self.trigger_run_id = trigger_run_id
        self.conf = conf
        self.reset_dag_run = reset_dag_run
        self.wait_for_completion = wait_for_completion
        self.poke_interval = poke_interval
        self.allowed_states = ([DagRunState(str(s)) for s in allowed_states]
                               if allowed_states else [DagRunState.SUCCESS])
        self.failed_states = ([DagRunState(str(s)) for s in failed_states]
                              if failed_states is not None else [DagRunState.FAILED])
        self.skip_when_already_exists = skip_when_already_exists
        # Waiting happens in the task either way; deferral would only free the worker slot.
        self.deferrable = deferrable
        self.logical_date = logical_date if logical_date is not None else execution_date
        if self.logical_date is not None and not isinstance(
                self.logical_date, (str, datetime.datetime)):
            raise TypeError(f"Expected str or datetime.datetime type for logical_date. Got "
                            f"{type(self.logical_date)}")

    @property
    def execution_date(self):
        return self.logical_date

    def _parsed_logical_date(self) -> datetime.datetime:
        from updraft.utils import timezone

        if isinstance(self.logical_date, datetime.datetime):
            return timezone.convert_to_utc(self.logical_date)
        if isinstance(self.logical_date, str) and self.logical_date.strip():
            return timezone.parse(self.logical_date)
        return timezone.utcnow()

    def execute(self, context: dict) -> None:
        try:
            json.dumps(self.conf)
        except TypeError:
            raise UpdraftException("conf parameter should be JSON Serializable") from None
        from updraft.state import DagRunType

        logical_date = self._parsed_logical_date()
        run_id = str(self.trigger_run_id) if self.trigger_run_id else \
            DagRunType.MANUAL.generate_run_id(logical_date)
        store_url = getattr(context.get("ti"), "store_url", None)
        run_id = self._trigger(run_id, logical_date, store_url)
        context["ti"].xcom_push(key=XCOM_RUN_ID, value=run_id)
        if self.wait_for_completion:
            self._wait(run_id, store_url)

    # -- creating the run ---------------------------------------------------------------

    def _trigger(self, run_id: str, logical_date: datetime.datetime,
                 store_url: str | None) -> str:
        from updraft.store.commands import trigger_dag_run
        from updraft.store.engine import session_scope

        self._ensure_stored(store_url)
        try:
            with session_scope(store_url) as session:
                run = trigger_dag_run(session, self.trigger_dag_id, conf=self.conf,
                                      run_id=run_id, logical_date=logical_date,
                                      triggered_by="operator", owner=self.owner,
                                      replace_existing=self.reset_dag_run)
                created = run.run_id
        except DagRunAlreadyExists:
            if self.skip_when_already_exists:
                raise UpdraftSkipException("Skipping due to skip_when_already_exists is set to "
                                           "True and DagRunAlreadyExists") from None
            raise
        if self.reset_dag_run:
            self.log.info("Triggered %s run %s (an earlier run there was replaced, if any)",
                          self.trigger_dag_id, created)
        else:
            self.log.info("Triggered %s run %s", self.trigger_dag_id, created)
        return created

    def _ensure_stored(self, store_url: str | None) -> None:
        """Write the target DAG to the store if the DAG processor has not yet."""
        from updraft.schedules import utcnow
        from updraft.store.dags import write_dag
        from updraft.store.engine import session_scope
        from updraft.store.models import DagModel

        with session_scope(store_url) as session:
            row = session.get(DagModel, self.trigger_dag_id)
            if row is not None and row.is_active:
                return
        dag = _load_dag(self.trigger_dag_id, None)
        with session_scope(store_url) as session:
            write_dag(session, dag, file_hash=None, now=utcnow())

    # -- waiting ------------------------------------------------------------------------

    def _wait(self, run_id: str, store_url: str | None) -> None:
        from updraft.schedules import utcnow
        from updraft.store.engine import session_scope
        from updraft.store.models import DagModel
        from updraft.store.runs import get_run

        ran_here = False
        while True:
            with session_scope(store_url) as session:
                run = get_run(session, self.trigger_dag_id, run_id)
                if run is None:
                    raise UpdraftException(f"run {run_id} of {self.trigger_dag_id} is gone from "
                                           "the store (deleted while waiting?)")
                state = DagRunState(run.state)
                logical_date, conf = run.logical_date, run.conf
                alive = _scheduler_alive(session, utcnow())
                dag_row = session.get(DagModel, self.trigger_dag_id)
                fileloc = dag_row.fileloc if dag_row is not None else None
            if state in self.failed_states:
                raise UpdraftException(f"{self.trigger_dag_id} failed with failed states "
                                       f"{state}")
            if state in self.allowed_states:
                self.log.info("%s finished with allowed state %s", self.trigger_dag_id, state)
                return
            if ran_here and state in (DagRunState.SUCCESS, DagRunState.FAILED):
                raise UpdraftException(
                    f"{self.trigger_dag_id} finished with state {state}, which is in neither "
                    f"allowed_states {[str(s) for s in self.allowed_states]} nor failed_states "
                    f"{[str(s) for s in self.failed_states]}")
            if not ran_here and not alive and state == DagRunState.QUEUED:
                self.log.info("No scheduler is alive: running %s run %s in this task",
                              self.trigger_dag_id, run_id)
                self._run_here(fileloc, run_id, logical_date, conf, store_url)
                ran_here = True
                continue
            self.log.info("Waiting for %s on %s to become allowed state %s ...",
                          self.trigger_dag_id, logical_date,
                          [str(s) for s in self.allowed_states])
            time.sleep(self.poke_interval)

    def _run_here(self, fileloc: str | None, run_id: str, logical_date, conf,
                  store_url: str | None) -> None:
        """Run the triggered run in-process, in its own thread (own task logs and context)."""
        from updraft.local_run import run_dag_locally

        dag = _load_dag(self.trigger_dag_id, fileloc)
        failure: list[BaseException] = []

        def target() -> None:
            try:
                run_dag_locally(dag, logical_date=logical_date, conf=conf or {}, run_id=run_id,
                                store_url=store_url)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the task's thread)
                failure.append(exc)

        thread = threading.Thread(target=target, name=f"trigger-{self.trigger_dag_id}")
        thread.start()
        thread.join()
        if failure:
            raise UpdraftException(f"running {self.trigger_dag_id} run {run_id} here failed: "
                                   f"{failure[0]}") from failure[0]


__all__ = ["XCOM_LOGICAL_DATE_ISO", "XCOM_RUN_ID", "TriggerDagRunOperator"]
