"""ExternalTaskSensor: waits for a task, a task group or a whole run of another DAG.

The sensor asks the try's task services (``context["task_services"]``,
``updraft.task_services``) about the other DAG's runs at the logical date(s) it waits for
(this run's logical date, shifted by ``execution_delta`` or computed by
``execution_date_fn``) and their task instances. ``ExternalTaskMarker`` marks the other side
of such a dependency, so clearing can follow it.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Collection, Sequence
from typing import Any

from updraft.exceptions import UpdraftException, UpdraftSkipException
from updraft.operators.empty import EmptyOperator
from updraft.sensors.base import BaseSensorOperator
from updraft.state import DagRunState, TaskInstanceState
from updraft.task_services import TaskServices, task_services

TASK_STATES: tuple = (None, *(str(s) for s in TaskInstanceState))
DAG_STATES: tuple = tuple(str(s) for s in DagRunState)


def _state_name(state: Any) -> str:
    return "none" if state is None else str(state.value if hasattr(state, "value") else state)


class ExternalTaskSensor(BaseSensorOperator):
    """Waits until tasks (or a task group, or the run) of another DAG reach allowed states.

    ``failed_states`` fail the sensor (skip it with soft_fail), ``skipped_states`` skip it.
    """

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id",
                                      "external_task_ids", "external_task_group_id")
    ui_color = "#4db7db"

    def __init__(self, *, external_dag_id: str, external_task_id: str | None = None,
                 external_task_ids: Collection[str] | None = None,
                 external_task_group_id: str | None = None,
                 allowed_states: Collection[str] | None = None,
                 skipped_states: Collection[str] | None = None,
                 failed_states: Collection[str] | None = None,
                 execution_delta: datetime.timedelta | None = None,
                 execution_date_fn: Callable | None = None, check_existence: bool = False,
                 poll_interval: float = 2.0, deferrable: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.allowed_states = ([_state_name(s) for s in allowed_states] if allowed_states
                               else [str(TaskInstanceState.SUCCESS)])
        self.skipped_states = [_state_name(s) for s in skipped_states or []]
        self.failed_states = [_state_name(s) for s in failed_states or []]
        total = set(self.allowed_states + self.skipped_states + self.failed_states)
        if len(total) != (len(self.allowed_states) + len(self.skipped_states)
                          + len(self.failed_states)):
            raise UpdraftException("Duplicate values provided across allowed_states, "
                                   "skipped_states and failed_states.")
        if not external_task_ids:
            external_task_ids = None
        if external_task_id is not None and external_task_ids is not None:
            raise ValueError("Only one of `external_task_id` or `external_task_ids` may be "
                             "provided to ExternalTaskSensor; use external_task_id or "
                             "external_task_ids or external_task_group_id.")
        if external_task_id is not None:
            external_task_ids = [external_task_id]
        if external_task_group_id is not None and external_task_ids is not None:
            raise ValueError("Only one of `external_task_group_id` or `external_task_ids` may "
                             "be provided to ExternalTaskSensor; use external_task_id or "
                             "external_task_ids or external_task_group_id.")
        if external_task_ids or external_task_group_id:
            valid = {_state_name(s) for s in TASK_STATES}
            if not total <= valid:
                raise ValueError(
                    "Valid values for `allowed_states`, `skipped_states` and `failed_states` "
                    "when `external_task_id` or `external_task_ids` or `external_task_group_id` "
                    f"is not `None`: {list(TASK_STATES)}")
        elif not total <= set(DAG_STATES):
            raise ValueError(
                "Valid values for `allowed_states`, `skipped_states` and `failed_states` when "
                f"`external_task_id` and `external_task_group_id` is `None`: {list(DAG_STATES)}")
        if execution_delta is not None and execution_date_fn is not None:
            raise ValueError("Only one of `execution_delta` or `execution_date_fn` may be "
                             "provided to ExternalTaskSensor; not both.")
        self.execution_delta = execution_delta
        self.execution_date_fn = execution_date_fn
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        self.external_task_ids = list(external_task_ids) if external_task_ids else None
        self.external_task_group_id = external_task_group_id
        self.check_existence = check_existence
        self.poll_interval = poll_interval
        self._has_checked_existence = False

    # -- which dates ------------------------------------------------------------------------

    def _get_dttm_filter(self, context: dict) -> list[datetime.datetime]:
        if self.execution_delta:
            dttm = context["logical_date"] - self.execution_delta
        elif self.execution_date_fn:
            dttm = self._handle_execution_date_fn(context)
        else:
            dttm = context["logical_date"]
        return dttm if isinstance(dttm, list) else [dttm]

    def _handle_execution_date_fn(self, context: dict) -> Any:
        """Call execution_date_fn with the logical date and the context keys it names."""
        from updraft.operators.python import determine_kwargs

        logical_date = context["logical_date"]
        # The date is the positional argument, whatever the function calls it; "context"
        # is accepted too, as older Airflow versions passed it.
        available = {k: v for k, v in context.items()
                     if k not in ("execution_date", "logical_date")}
        available["context"] = context
        kwargs = determine_kwargs(self.execution_date_fn, [logical_date], available)
        return self.execution_date_fn(logical_date, **kwargs)

    # -- deferring (ADR 11) ------------------------------------------------------------------

    def execute(self, context: dict):
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):  # done already: no need to wait in a triggerer
            return None
        from updraft.triggers.external import WorkflowTrigger

        dates = [d.astimezone(datetime.UTC) for d in self._get_dttm_filter(context)]
        self.defer(trigger=WorkflowTrigger(
            external_dag_id=self.external_dag_id, logical_dates=dates,
            external_task_ids=self.external_task_ids,
            external_task_group_id=self.external_task_group_id,
            allowed_states=self.allowed_states, failed_states=self.failed_states,
            skipped_states=self.skipped_states, poll_interval=self.poll_interval),
            method_name="execute_complete", timeout=datetime.timedelta(seconds=self.timeout))

    def execute_complete(self, context: dict, event=None) -> None:
        """The trigger saw the external tasks (or run) reach a final answer."""
        status = (event or {}).get("status")
        if status == "success":
            self.log.info("External tasks %s have executed successfully.",
                          self.external_task_ids or self.external_dag_id)
            return None
        if status == "skipped":
            self._skip()
        if status == "failed":
            self._fail()
        raise UpdraftException(f"Error occurred while trying to retrieve task status: {event}")

    # -- poking -----------------------------------------------------------------------------

    def poke(self, context: dict) -> bool:
        if self.external_task_ids and len(self.external_task_ids) > len(
                set(self.external_task_ids)):
            raise ValueError("Duplicate task_ids passed in external_task_ids parameter")
        dttm_filter = [d.astimezone(datetime.UTC) for d in
                       self._get_dttm_filter(context)]
        shown = ",".join(d.isoformat() for d in dttm_filter)
        if self.external_task_ids:
            self.log.info("Poking for tasks %s in dag %s on %s ... ", self.external_task_ids,
                          self.external_dag_id, shown)
        elif self.external_task_group_id:
            self.log.info("Poking for task_group '%s' in dag '%s' on %s ... ",
                          self.external_task_group_id, self.external_dag_id, shown)
        else:
            self.log.info("Poking for DAG '%s' on %s ... ", self.external_dag_id, shown)
        services = task_services(context)
        if self.check_existence and not self._has_checked_existence:
            self._check_for_existence(services)
        if self.failed_states and self.get_count(dttm_filter, services,
                                                 self.failed_states) > 0:
            self._fail()
        if self.skipped_states and self.get_count(dttm_filter, services,
                                                  self.skipped_states) > 0:
            self._skip()
        count_allowed = self.get_count(dttm_filter, services, self.allowed_states)
        return count_allowed == len(dttm_filter)

    def _fail(self) -> None:
        if self.external_task_ids:
            what = (f"Some of the external tasks {self.external_task_ids} in DAG "
                    f"{self.external_dag_id} failed.")
        elif self.external_task_group_id:
            what = (f"The external task_group '{self.external_task_group_id}' in DAG "
                    f"'{self.external_dag_id}' failed.")
        else:
            what = f"The external DAG {self.external_dag_id} failed."
        if self.soft_fail:
            raise UpdraftSkipException(f"{what} Skipping due to soft_fail.")
        raise UpdraftException(what)

    def _skip(self) -> None:
        if self.external_task_ids:
            what = (f"Some of the external tasks {self.external_task_ids} in DAG "
                    f"{self.external_dag_id} reached a state in our states-to-skip-on list.")
        elif self.external_task_group_id:
            what = (f"The external task_group '{self.external_task_group_id}' in DAG "
                    f"{self.external_dag_id} reached a state in our states-to-skip-on list.")
        else:
            what = (f"The external DAG {self.external_dag_id} reached a state in our "
                    "states-to-skip-on list.")
        raise UpdraftSkipException(f"{what} Skipping.")

    def get_count(self, dttm_filter: list[datetime.datetime], services: TaskServices,
                  states) -> float:
        """How many of the awaited things are in ``states``, per task (or group) waited on.

        Airflow passes a session as the second argument; Updraft passes the task services.
        """
        if not dttm_filter:
            return 0
        states = [str(s) for s in states]
        if self.external_task_ids:
            count = services.count_task_instances(self.external_dag_id, dttm_filter, states,
                                                  task_ids=self.external_task_ids)
            return count / len(self.external_task_ids)
        if self.external_task_group_id:
            prefix = f"{self.external_task_group_id}."
            group_tis = services.task_instance_keys(self.external_dag_id, dttm_filter[0],
                                                    prefix)
            if not group_tis:
                self._fail_if_group_missing(services)
                return 0
            count = services.count_task_instances(self.external_dag_id, dttm_filter, states,
                                                  task_id_prefix=prefix)
            return count / len(group_tis) * len(dttm_filter)
        return services.count_dag_runs(self.external_dag_id, dttm_filter, states)

    def _fail_if_group_missing(self, services: TaskServices) -> None:
        """A group the other DAG does not have fails the sensor at once, as in Airflow 3 (a
        DAG not known yet, or not run yet, may still bring it: keep waiting then)."""
        info = services.dag_info(self.external_dag_id)
        task_ids: set[str] | None = None
        if info.fileloc and os.path.exists(info.fileloc):
            from updraft.dagbag import DagBag

            dag = DagBag(dag_folder=info.fileloc, include_examples=False).dags.get(
                self.external_dag_id)
            if dag is not None:
                task_ids = set(dag.task_dict)
        if task_ids is None and info.has_runs:
            task_ids = services.stored_task_ids(self.external_dag_id)
        if task_ids is not None and not any(
                t.startswith(f"{self.external_task_group_id}.") for t in task_ids):
            raise UpdraftException(f"The external task group '{self.external_task_group_id}' "
                                   f"in DAG '{self.external_dag_id}' does not exist.")

    def _check_for_existence(self, services: TaskServices) -> None:
        """Fail at once if the other DAG (or the tasks or group waited on) does not exist."""
        info = services.dag_info(self.external_dag_id)
        if not info.stored and not info.has_runs:
            raise UpdraftException(f"The external DAG {self.external_dag_id} does not exist.")
        task_ids: set[str] | None = None
        if info.fileloc:
            if not os.path.exists(info.fileloc):
                raise UpdraftException(f"The external DAG {self.external_dag_id} was deleted.")
            if self.external_task_ids or self.external_task_group_id:
                from updraft.dagbag import DagBag

                dag = DagBag(dag_folder=info.fileloc, include_examples=False).dags.get(
                    self.external_dag_id)
                if dag is not None:
                    task_ids = set(dag.task_dict)
        if task_ids is None:
            task_ids = services.stored_task_ids(self.external_dag_id)
        for task_id in self.external_task_ids or []:
            if task_id not in task_ids:
                raise UpdraftException(f"The external task {task_id} in DAG "
                                       f"{self.external_dag_id} does not exist.")
        if self.external_task_group_id and not any(
                t.startswith(f"{self.external_task_group_id}.") for t in task_ids):
            raise UpdraftException(f"The external task group '{self.external_task_group_id}' "
                                   f"in DAG '{self.external_dag_id}' does not exist.")
        self._has_checked_existence = True


class ExternalTaskMarker(EmptyOperator):
    """Marks that a task of another DAG depends on this one (for clearing across DAGs)."""

    template_fields: Sequence[str] = ("external_dag_id", "external_task_id", "logical_date")
    ui_color = "#4db7db"

    def __init__(self, *, external_dag_id: str, external_task_id: str,
                 logical_date: str | datetime.datetime | None = "{{ logical_date.isoformat() }}",
                 recursion_depth: int = 10, execution_date: Any = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.external_dag_id = external_dag_id
        self.external_task_id = external_task_id
        if execution_date is not None:  # Airflow 2's name for it
            logical_date = execution_date
        if isinstance(logical_date, datetime.datetime):
            self.logical_date = logical_date.isoformat()
        elif isinstance(logical_date, str):
            self.logical_date = logical_date
        else:
            raise TypeError(f"Expected str or datetime.datetime type for logical_date. Got "
                            f"{type(logical_date)}")
        if recursion_depth <= 0:
            raise ValueError("recursion_depth should be a positive integer")
        self.recursion_depth = recursion_depth

    @property
    def execution_date(self) -> str:
        return self.logical_date


__all__ = ["ExternalTaskMarker", "ExternalTaskSensor"]
