"""Task services: what operators and sensors may ask about other DAGs, runs and tries.

A few operators act on other runs: ``TriggerDagRunOperator`` creates one and may wait for
it, ``ExternalTaskSensor`` counts the states of another DAG's tasks, and a reschedule-mode
sensor needs to know when it began waiting. They ask these questions through the narrow
interface below, never with SQL: the authoring package does not import the store
(import-linter checks it; ADR 8). Every try gets an implementation as
``context["task_services"]``: the runtime builds one on the store
(``updraft.store.task_services``), which opens its own short sessions in the try's process.
A test, or another runtime, can give a try any other implementation.

Arguments and results are plain values (strings, datetimes, frozen dataclasses); states are
the string values of ``DagRunState`` / ``TaskInstanceState`` (``"none"`` for a task instance
without a state).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """One run of a DAG, as a task sees it."""

    dag_id: str
    run_id: str
    state: str
    logical_date: datetime | None
    conf: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DagInfo:
    """What is known of a DAG: whether the DAG processor stored it, its file, whether it has
    any run."""

    dag_id: str
    stored: bool
    fileloc: str | None
    has_runs: bool


class TaskServices(abc.ABC):
    """The questions a task may ask about other DAGs and runs. Each call is one short
    transaction of its own: nothing is held between calls."""

    # -- runs ----------------------------------------------------------------------------

    @abc.abstractmethod
    def trigger_dag_run(self, dag_id: str, *, run_id: str, logical_date: datetime,
                        conf: Mapping[str, Any] | None, owner: str | None,
                        replace_existing: bool = False) -> str:
        """Create a queued run of ``dag_id`` for the scheduler to start; its run id.

        A DAG the DAG processor has not stored yet is first loaded from the DAGs folder and
        stored. Raises ``DagNotFound`` if there is no such DAG, ``DagRunAlreadyExists`` if a
        run with that id or logical date exists (unless ``replace_existing``: then that run
        is deleted first), ``UpdraftException`` for a run the DAG refuses (its params)."""

    @abc.abstractmethod
    def get_dag_run(self, dag_id: str, run_id: str) -> RunInfo | None:
        """The run ``run_id`` of ``dag_id``, or None if there is none (any more)."""

    @abc.abstractmethod
    def scheduler_alive(self) -> bool:
        """Whether a scheduler heartbeated recently, that is, whether queued runs will start."""

    @abc.abstractmethod
    def run_dag_run_here(self, dag_id: str, run_id: str) -> None:
        """Run every task of the queued run ``run_id`` in this process (as ``dag.test()``
        does), for when no scheduler would; returns when the run ended. Raises
        ``UpdraftException`` if it could not be run."""

    @abc.abstractmethod
    def count_dag_runs(self, dag_id: str, logical_dates: Collection[datetime],
                       states: Collection[str]) -> int:
        """How many runs of ``dag_id`` at these logical dates are in one of ``states``."""

    # -- task instances ------------------------------------------------------------------

    @abc.abstractmethod
    def count_task_instances(self, dag_id: str, logical_dates: Collection[datetime],
                             states: Collection[str], *,
                             task_ids: Collection[str] | None = None,
                             task_id_prefix: str | None = None) -> int:
        """How many task instances of ``dag_id`` (of ``task_ids``, or whose task id starts with
        ``task_id_prefix``), in the runs at these logical dates, are in one of ``states``.
        Each map index counts."""

    @abc.abstractmethod
    def task_instance_keys(self, dag_id: str, logical_date: datetime,
                           task_id_prefix: str) -> list[tuple[str, int]]:
        """(task id, map index) of the task instances whose task id starts with
        ``task_id_prefix`` in the run of ``dag_id`` at ``logical_date``."""

    @abc.abstractmethod
    def dag_info(self, dag_id: str) -> DagInfo:
        """What is known of ``dag_id`` (never raises for an unknown DAG)."""

    @abc.abstractmethod
    def stored_task_ids(self, dag_id: str) -> set[str]:
        """The task ids that have task instances in any run of ``dag_id``."""

    # -- this task's own history ----------------------------------------------------------

    @abc.abstractmethod
    def first_reschedule_at(self, dag_id: str, run_id: str, task_id: str, map_index: int,
                            try_number: int) -> datetime | None:
        """When the first reschedule of try ``try_number`` of this task instance began (a
        reschedule-mode sensor's timeout counts from it), or None if it has none."""


    # -- asset events (``updraft.assets``) -------------------------------------------------

    def triggering_asset_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """The events the run consumed (ADR 10), oldest first, as plain JSON."""
        raise NotImplementedError(f"{type(self).__name__} does not serve asset events")

    def asset_events(self, *, name: str | None = None, uri: str | None = None,
                     alias: str | None = None, after: Any = None, before: Any = None,
                     ascending: bool = True, offset: int = 0,
                     limit: int = 100) -> list[dict[str, Any]]:
        """A page of the events of an asset (by name or URI) or of an alias's assets."""
        raise NotImplementedError(f"{type(self).__name__} does not serve asset events")

    def get_asset(self, *, name: str) -> dict[str, Any] | None:
        """The asset named ``name`` (name, uri, group, extra), or None if none is known."""
        raise NotImplementedError(f"{type(self).__name__} does not serve assets")

    def count_asset_events(self, *, name: str | None = None, uri: str | None = None,
                           alias: str | None = None, after: Any = None,
                           before: Any = None) -> int:
        """How many events ``asset_events`` would page through."""
        raise NotImplementedError(f"{type(self).__name__} does not serve asset events")


    def has_listener(self, hook: str) -> bool:
        """Whether a listener of this runtime implements ``hook`` (``updraft.listeners``).
        Not knowing, say yes: an operator then does what runs its listeners."""
        return True


class NoTaskServices(TaskServices):
    """What a context without a runtime behind it has: every question fails saying so."""

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        from updraft.exceptions import UpdraftException

        raise UpdraftException("this task needs the task services of a try (context["
                               "'task_services']), and this context has none: run it with "
                               "dag.test(), `updraft tasks test` or a scheduler")

    trigger_dag_run = get_dag_run = scheduler_alive = run_dag_run_here = _fail  # type: ignore
    count_dag_runs = count_task_instances = task_instance_keys = _fail  # type: ignore
    dag_info = stored_task_ids = first_reschedule_at = _fail  # type: ignore
    triggering_asset_events = asset_events = count_asset_events = get_asset = _fail  # type: ignore


def task_services(context: Mapping[str, Any]) -> TaskServices:
    """The task services of a try's ``context`` (``NoTaskServices`` if it has none)."""
    services = context.get("task_services")
    if services is None:
        services = getattr(context.get("ti"), "task_services", None)
    return services if services is not None else NoTaskServices()


__all__ = ["DagInfo", "NoTaskServices", "RunInfo", "TaskServices", "task_services"]
