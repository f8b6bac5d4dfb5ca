"""TriggerDagRunOperator: creates a run of another DAG, optionally waiting for its end.

It asks the try's task services (``context["task_services"]``, ``updraft.task_services``) to
create the run, so the scheduler starts it like any triggered run; a target DAG the store
does not know yet is loaded from ``[core] dags_folder`` and stored first. With
``wait_for_completion`` the task polls the run's state; when no scheduler is alive (as in
``dag.test()``) nobody else would run it, so the task has it run here, in this process.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from updraft.exceptions import (
    DagRunAlreadyExists,
    UpdraftException,
    UpdraftSkipException,
)
from updraft.operators.base import BaseOperator
from updraft.state import DagRunState
from updraft.task_services import TaskServices, task_services

XCOM_RUN_ID = "trigger_run_id"
XCOM_LOGICAL_DATE_ISO = "trigger_logical_date_iso"


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
        # With wait_for_completion, deferrable=True waits in a triggerer, woken by the run's
        # state events (ADR 11), holding no worker slot.
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
        services = task_services(context)
        run_id = self._trigger(services, run_id, logical_date)
        context["ti"].xcom_push(key=XCOM_RUN_ID, value=run_id)
        if self.wait_for_completion and self.deferrable and services.scheduler_alive():
            from updraft.triggers.external import DagStateTrigger

            self.defer(trigger=DagStateTrigger(
                dag_id=self.trigger_dag_id, run_ids=[run_id],
                states=[str(s) for s in self.allowed_states + self.failed_states],
                poll_interval=self.poke_interval),
                method_name="execute_complete", kwargs={"run_id": run_id})
        if self.wait_for_completion:
            self._wait(services, run_id)

    def execute_complete(self, context: dict, event=None, run_id: str | None = None) -> None:
        """The triggered run reached an allowed or failed state (deferrable=True)."""
        states = (event or {}).get("states") or {}
        state = DagRunState(states.get(run_id) or next(iter(states.values()), "failed"))
        if state in self.failed_states:
            raise UpdraftException(f"{self.trigger_dag_id} failed with failed state {state}")
        self.log.info("%s finished with allowed state %s", self.trigger_dag_id, state)

    # -- creating the run ---------------------------------------------------------------

    def _trigger(self, services: TaskServices, run_id: str,
                 logical_date: datetime.datetime) -> str:
        try:
            created = services.trigger_dag_run(self.trigger_dag_id, run_id=run_id,
                                               logical_date=logical_date, conf=self.conf,
                                               owner=self.owner,
                                               replace_existing=self.reset_dag_run)
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

    # -- waiting ------------------------------------------------------------------------

    def _wait(self, services: TaskServices, run_id: str) -> None:
        ran_here = False
        while True:
            run = services.get_dag_run(self.trigger_dag_id, run_id)
            if run is None:
                raise UpdraftException(f"run {run_id} of {self.trigger_dag_id} is gone from "
                                       "the store (deleted while waiting?)")
            state = DagRunState(run.state)
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
            if not ran_here and state == DagRunState.QUEUED and not services.scheduler_alive():
                self.log.info("No scheduler is alive: running %s run %s in this task",
                              self.trigger_dag_id, run_id)
                services.run_dag_run_here(self.trigger_dag_id, run_id)
                ran_here = True
                continue
            self.log.info("Waiting for %s on %s to become allowed state %s ...",
                          self.trigger_dag_id, run.logical_date,
                          [str(s) for s in self.allowed_states])
            time.sleep(self.poke_interval)


__all__ = ["XCOM_LOGICAL_DATE_ISO", "XCOM_RUN_ID", "TriggerDagRunOperator"]
