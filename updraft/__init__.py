"""Updraft: author workflows as Python DAGs.

``from updraft import DAG, dag, task`` is all a DAG file needs. Names are loaded on first use
so that ``import updraft`` stays fast for every task and every parse.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "DAG": "updraft.dag",
    "dag": "updraft.dag",
    "task": "updraft.decorators",
    "setup": "updraft.decorators",
    "teardown": "updraft.decorators",
    "task_group": "updraft.decorators",
    "TaskGroup": "updraft.taskgroup",
    "chain": "updraft.operators.base",
    "chain_linear": "updraft.operators.base",
    "cross_downstream": "updraft.operators.base",
    "BaseOperator": "updraft.operators.base",
    "Variable": "updraft.models.variable",
    "Connection": "updraft.models.connection",
    "Param": "updraft.params",
    "ParamsDict": "updraft.params",
    "XComArg": "updraft.xcom_arg",
    "Label": "updraft.utils.edgemodifier",
    "TriggerRule": "updraft.state",
    "get_current_context": "updraft.runtime_context",
    "Asset": "updraft.assets",
    "AssetAlias": "updraft.assets",
    "AssetWatcher": "updraft.assets",
    "Dataset": "updraft.assets",
    "Metadata": "updraft.assets",
    "NatsSubjectTrigger": "updraft.assets",
    "asset": "updraft.asset_decorators",
    "AssetOrTimeSchedule": "updraft.schedules",
    "AssetAndTimeSchedule": "updraft.schedules",
    "CronTriggerTimetable": "updraft.schedules",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'updraft' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
