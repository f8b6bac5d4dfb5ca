"""Priority-weight strategies: how a task instance's priority is computed (Airflow 3's API).

A strategy is a class with ``get_weight(ti) -> int``; ``ti`` carries ``task`` (with
``priority_weight``, ``get_dag()`` and ``get_flat_relative_ids(upstream=...)``), ``dag_id``,
``task_id``, ``run_id``, ``map_index`` and ``try_number``. The built-in ``absolute``,
``downstream`` and ``upstream`` are registered in the entry-point group
``updraft.priority_weight_strategies`` like any other; custom ones come from that group or
from an ``AirflowPlugin.priority_weight_strategies`` list in the plugins folder.

A task stores its strategy by registered name (``weight_rule``), so the serialized DAG holds
a name, and the scheduler computes weights with classes from the registry only (ADR 3).
Strategies are stateless, as in Airflow: their parameters are not serialized.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

BUILTIN_RULES = ("downstream", "upstream", "absolute")
#: Airflow's names of its built-in strategy classes, as DAG files may give them.
_AIRFLOW_BUILTINS = {
    "airflow.task.priority_strategy._AbsolutePriorityWeightStrategy": "absolute",
    "airflow.task.priority_strategy._DownstreamPriorityWeightStrategy": "downstream",
    "airflow.task.priority_strategy._UpstreamPriorityWeightStrategy": "upstream",
}
GROUP = "priority_weight_strategies"


class PriorityWeightStrategy(ABC):
    """Base class of priority-weight strategies (Airflow's ``PriorityWeightStrategy``)."""

    @abstractmethod
    def get_weight(self, ti: Any) -> int:
        """The priority weight of the task instance ``ti``."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self))

    def __hash__(self) -> int:
        return hash(type(self).__qualname__)


class AbsolutePriorityWeightStrategy(PriorityWeightStrategy):
    """The task's own ``priority_weight``."""

    def get_weight(self, ti: Any) -> int:
        return int(ti.task.priority_weight)


class DownstreamPriorityWeightStrategy(PriorityWeightStrategy):
    """The task's ``priority_weight`` plus that of every task downstream of it."""

    upstream = False

    def get_weight(self, ti: Any) -> int:
        task = ti.task
        dag = task.get_dag()
        if dag is None:
            return int(task.priority_weight)
        return int(task.priority_weight) + sum(
            int(dag.task_dict[task_id].priority_weight)
            for task_id in task.get_flat_relative_ids(upstream=self.upstream))


class UpstreamPriorityWeightStrategy(DownstreamPriorityWeightStrategy):
    """The task's ``priority_weight`` plus that of every task upstream of it."""

    upstream = True


def _alias_path(path: str) -> str:
    from updraft.plugins.folder import EXAMPLE_PLUGINS_PACKAGE

    prefix = EXAMPLE_PLUGINS_PACKAGE + "."
    return path.removeprefix(prefix)


def strategy_name(weight_rule: Any) -> str:
    """The registered name of what a task gives as ``weight_rule``: a built-in name, a
    registered name or class path (Airflow's ``"module.Class"``), a strategy class or an
    instance. ValueError, saying how to register it, if it is not registered."""
    if isinstance(weight_rule, str):
        text = str(getattr(weight_rule, "value", weight_rule))
        if text in BUILTIN_RULES:
            return text
        if text in _AIRFLOW_BUILTINS:
            return _AIRFLOW_BUILTINS[text]
        from updraft.plugins import registry

        registered = registry.extensions(GROUP)
        for candidate in (text, _alias_path(text), text.replace(":", ".")):
            if candidate in registered:
                return candidate
        for name, ext in registered.items():
            if ext.target.replace(":", ".") in (text, _alias_path(text)):
                return name
        raise ValueError(_not_registered(text))
    cls = weight_rule if isinstance(weight_rule, type) else type(weight_rule)
    if not callable(getattr(cls, "get_weight", None)):
        raise ValueError(  # noqa: TRY004  (the operator turns ValueErrors into DAG errors)
            f"weight_rule must be one of {', '.join(BUILTIN_RULES)}, a registered "
            f"priority-weight strategy or its class path; got {weight_rule!r}")
    for rule, builtin in (("absolute", AbsolutePriorityWeightStrategy),
                          ("upstream", UpstreamPriorityWeightStrategy),
                          ("downstream", DownstreamPriorityWeightStrategy)):
        if cls is builtin:
            return rule
    from updraft.plugins import registry

    name = registry.find_name(GROUP, cls)
    if name is None:
        raise ValueError(_not_registered(f"{cls.__module__}.{cls.__qualname__}"))
    return name


def _not_registered(what: str) -> str:
    from updraft.plugins.folder import plugins_folder

    return (f"priority-weight strategy {what!r} is not registered: register the class in the "
            f"entry-point group updraft.{GROUP}, or list it in an AirflowPlugin's "
            f"priority_weight_strategies in the plugins folder ({plugins_folder()})")


def load_strategy(name: str) -> PriorityWeightStrategy:
    """A strategy instance for the registered ``name`` (ExtensionError if it cannot load)."""
    from updraft.plugins import registry

    return registry.load(GROUP, name)()


# -- computing the weights of a DAG's task instances ---------------------------------------------


class _DagView:
    """``ti.task.get_dag()`` for strategies: the tasks by id, relatives cached per call."""

    def __init__(self, dag_id: str | None, tasks: Mapping[str, Any]) -> None:
        self.dag_id = dag_id
        self.task_dict = tasks
        self._relatives: dict[tuple[str, bool], set[str]] = {}

    def relatives(self, task_id: str, upstream: bool) -> set[str]:
        key = (task_id, upstream)
        found = self._relatives.get(key)
        if found is None:
            found = set()
            attr = "upstream_task_ids" if upstream else "downstream_task_ids"
            for rel in getattr(self.task_dict[task_id], attr):
                found.add(rel)
                found |= self.relatives(rel, upstream)
            self._relatives[key] = found
        return found


class _TaskView:
    """``ti.task`` for strategies: the task's own attributes plus Airflow's helpers."""

    def __init__(self, task: Any, dag: _DagView) -> None:
        self._task = task
        self._dag = dag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def get_dag(self) -> _DagView:
        return self._dag

    def get_flat_relative_ids(self, *, upstream: bool = False) -> set[str]:
        return self._dag.relatives(self._task.task_id, upstream)


class WeightTaskInstance:
    """The ``ti`` a strategy's ``get_weight`` gets when a task instance is created."""

    def __init__(self, task: Any, dag_id: str | None, run_id: str | None, map_index: int,
                 try_number: int) -> None:
        self.task = task
        self.dag_id = dag_id
        self.task_id = task.task_id
        self.run_id = run_id
        self.map_index = map_index
        self.try_number = try_number

    def __repr__(self) -> str:
        return (f"<WeightTaskInstance {self.dag_id}.{self.task_id} run={self.run_id} "
                f"map_index={self.map_index} try={self.try_number}>")


def compute_weights(tasks: Mapping[str, Any], *, run_id: str | None = None,
                    try_number: int = 0) -> dict[str, int]:
    """Each task's priority weight for a new task instance (``try_number`` 0, as Airflow).

    A strategy that cannot be loaded, raises or returns a non-integer is logged, listed by
    ``updraft plugins``, and the task falls back to its own ``priority_weight``.
    """
    from updraft.plugins.registry import ExtensionError, LoadError, describe_exception, record_error

    first = next(iter(tasks.values()), None)
    dag = _DagView(getattr(first, "dag_id", None), tasks)
    strategies: dict[str, PriorityWeightStrategy | None] = {}
    weights: dict[str, int] = {}
    for task_id, task in tasks.items():
        rule = str(getattr(task, "weight_rule", "downstream") or "downstream")
        if rule not in strategies:
            try:
                strategies[rule] = load_strategy(rule)
            except ExtensionError as exc:
                log.error("task %s: %s; its priority_weight is used as is", task_id, exc)
                strategies[rule] = None
        strategy = strategies[rule]
        if strategy is None:
            weights[task_id] = int(task.priority_weight)
            continue
        ti = WeightTaskInstance(_TaskView(task, dag), dag.dag_id, run_id, -1, try_number)
        try:
            weight = strategy.get_weight(ti)
            if isinstance(weight, bool) or not isinstance(weight, int):
                raise TypeError(f"get_weight returned {weight!r}, not an integer")
        except Exception as exc:  # noqa: BLE001  (a broken strategy must not stop run creation)
            record_error(LoadError(GROUP, rule, f"task {dag.dag_id}.{task_id}",
                                   describe_exception(exc)), exc)
            weight = int(task.priority_weight)
        weights[task_id] = weight
    return weights


__all__ = [
    "BUILTIN_RULES",
    "AbsolutePriorityWeightStrategy",
    "DownstreamPriorityWeightStrategy",
    "PriorityWeightStrategy",
    "UpstreamPriorityWeightStrategy",
    "WeightTaskInstance",
    "compute_weights",
    "load_strategy",
    "strategy_name",
]
