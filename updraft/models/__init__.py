"""Airflow's ``models`` names, imported lazily so that ``import updraft.models`` costs nothing.

``from updraft.models import Variable`` loads only the module that defines ``Variable``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DAG": ("updraft.dag", "DAG"),
    "BaseOperator": ("updraft.operators.base", "BaseOperator"),
    "Variable": ("updraft.models.variable", "Variable"),
    "Connection": ("updraft.models.connection", "Connection"),
    "DagBag": ("updraft.dagbag", "DagBag"),
    "XCom": ("updraft.models.xcom", "XCom"),
    "DagRun": ("updraft.runtime_models", "DagRun"),
    "TaskInstance": ("updraft.runtime_models", "TaskInstance"),
}

__all__ = [
    "DAG",
    "BaseOperator",
    "Connection",
    "DagBag",
    "DagRun",
    "TaskInstance",
    "Variable",
    "XCom",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
