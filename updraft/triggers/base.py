"""The trigger contract: ``BaseTrigger`` (``serialize()`` and ``async run()``), the events a
trigger yields, and ``StartTriggerArgs`` for operators that defer before running any code.

A trigger runs in a triggerer's event loop beside thousands of others, so its ``run`` must
never block: it awaits (``asyncio.sleep``, an async client, ``asyncio.to_thread`` for a
blocking call). A trigger that blocks the loop is named in the triggerer's log.
"""

from __future__ import annotations

import abc
import importlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any


class BaseTrigger(abc.ABC):
    """An async wait that wakes a deferred task.

    Subclasses take JSON-friendly keyword arguments (str, numbers, bool, None, lists, dicts,
    datetimes, timedeltas), return them from ``serialize()`` with their class path, and
    yield at least one ``TriggerEvent`` from ``run()``: the first wakes the task.
    """

    def __init__(self, **kwargs: Any) -> None:
        #: Set by the triggerer: the trigger's row id and the task instance it wakes.
        self.trigger_id: int | None = None
        self.task_instance: Any = None
        self.log = logging.getLogger(f"updraft.triggers.{type(self).__name__}")

    @abc.abstractmethod
    def serialize(self) -> tuple[str, dict[str, Any]]:
        """``(classpath, kwargs)``: the triggerer rebuilds the trigger as
        ``import(classpath)(**kwargs)``."""

    @abc.abstractmethod
    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Wait for the condition, then ``yield TriggerEvent(payload)``."""
        if False:  # pragma: no cover  (makes this an async generator)
            yield

    async def cleanup(self) -> None:
        """Called when the trigger stops (fired, cancelled or moved to another triggerer)."""

    def __repr__(self) -> str:
        classpath, kwargs = self.serialize()
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        return f"<{classpath} {shown}>"


@dataclass(frozen=True)
class TriggerEvent:
    """What a trigger yields when its condition holds; ``payload`` reaches the resumed task
    as ``event`` (JSON-friendly, like the trigger's kwargs)."""

    payload: Any = None

    def __repr__(self) -> str:
        return f"TriggerEvent<{self.payload!r}>"


@dataclass(frozen=True)
class BaseTaskEndEvent(TriggerEvent):
    """An event that ends the task from the trigger, without resuming it on a worker
    (Airflow's ``end_from_trigger``): the task instance goes to ``task_instance_state``."""

    task_instance_state: str = "success"
    xcoms: dict[str, Any] | None = None


@dataclass(frozen=True)
class TaskSuccessEvent(BaseTaskEndEvent):
    """End the task as successful from the trigger."""

    task_instance_state: str = "success"


@dataclass(frozen=True)
class TaskFailedEvent(BaseTaskEndEvent):
    """End the task as failed from the trigger."""

    task_instance_state: str = "failed"


@dataclass(frozen=True)
class TaskSkippedEvent(BaseTaskEndEvent):
    """End the task as skipped from the trigger."""

    task_instance_state: str = "skipped"


@dataclass
class StartTriggerArgs:
    """How an operator with ``start_from_trigger = True`` defers before any of its code
    runs: the trigger's class path and kwargs, the method to resume in, and a timeout."""

    trigger_cls: str
    next_method: str = "execute_complete"
    trigger_kwargs: dict[str, Any] | None = None
    next_kwargs: dict[str, Any] | None = None
    timeout: timedelta | None = None


def classpath_of(trigger: BaseTrigger) -> str:
    """The class path ``serialize()`` should return for ``trigger``."""
    cls = type(trigger)
    return f"{cls.__module__}.{cls.__qualname__}"


#: Airflow's class paths of the triggers Updraft has, for triggers serialized by Airflow
#: code (a DAG file's own trigger classes are imported as they are named).
AIRFLOW_CLASSPATHS = {
    "airflow.triggers.temporal.DateTimeTrigger": "updraft.triggers.temporal.DateTimeTrigger",
    "airflow.triggers.temporal.TimeDeltaTrigger": "updraft.triggers.temporal.TimeDeltaTrigger",
    "airflow.providers.standard.triggers.temporal.DateTimeTrigger":
        "updraft.triggers.temporal.DateTimeTrigger",
    "airflow.providers.standard.triggers.temporal.TimeDeltaTrigger":
        "updraft.triggers.temporal.TimeDeltaTrigger",
    "airflow.triggers.file.FileTrigger": "updraft.triggers.file.FileTrigger",
    "airflow.providers.http.triggers.http.HttpSensorTrigger":
        "updraft.triggers.http.HttpSensorTrigger",
    "airflow.triggers.external_task.DagStateTrigger":
        "updraft.triggers.external.DagStateTrigger",
    "airflow.triggers.external_task.WorkflowTrigger":
        "updraft.triggers.external.WorkflowTrigger",
    "airflow.providers.standard.triggers.file.FileTrigger": "updraft.triggers.file.FileTrigger",
}


def import_trigger_class(classpath: str) -> type[BaseTrigger]:
    """The trigger class at ``classpath`` (``package.module.Class``)."""
    classpath = AIRFLOW_CLASSPATHS.get(classpath, classpath)
    module_name, _, name = classpath.rpartition(".")
    if not module_name:
        raise ImportError(f"not a class path: {classpath!r}")
    if module_name.startswith("airflow."):
        from updraft.compat import install_if_enabled

        install_if_enabled()
    cls = getattr(importlib.import_module(module_name), name, None)
    if not isinstance(cls, type) or not issubclass(cls, BaseTrigger):
        raise ImportError(f"{classpath} is not a trigger class")
    return cls


def build_trigger(classpath: str, kwargs: dict[str, Any]) -> BaseTrigger:
    """Rebuild a serialized trigger."""
    return import_trigger_class(classpath)(**kwargs)


__all__ = ["BaseTaskEndEvent", "BaseTrigger", "StartTriggerArgs", "TaskFailedEvent",
           "TaskSkippedEvent", "TaskSuccessEvent", "TriggerEvent", "build_trigger",
           "classpath_of", "import_trigger_class"]
