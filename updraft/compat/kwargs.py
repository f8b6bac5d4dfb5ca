"""Operator arguments Airflow has and Updraft does not: refused precisely, never ignored."""

from __future__ import annotations

from typing import Any

from updraft.compat.airflow_map import UNSUPPORTED_OPERATOR_KWARGS
from updraft.exceptions import NotSupportedByUpdraft


def check_airflow_kwargs(operator: str, task_id: str, kwargs: dict[str, Any]) -> None:
    """Drop the known Airflow arguments that are set to their harmless value from ``kwargs``;
    raise NotSupportedByUpdraft for one that asks for a feature Updraft does not have."""
    for name, (harmless, what) in UNSUPPORTED_OPERATOR_KWARGS.items():
        if name not in kwargs:
            continue
        if kwargs[name] == harmless or (harmless is False and not kwargs[name]):
            del kwargs[name]
            continue
        raise NotSupportedByUpdraft(f"not supported by Updraft: {name}={kwargs[name]!r} on "
                                    f"{operator} {task_id!r} ({what})")
