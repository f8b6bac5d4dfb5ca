"""The ``macros`` namespace of task templates, as Airflow's ``airflow.macros``.

``{{ macros.ds_add(ds, 7) }}``, ``{{ macros.datetime.now() }}``, ``{{ macros.uuid.uuid4() }}``,
``{{ macros.random() }}``... Everything here is importable from a DAG file too. Macros of
plugins appear as ``macros.<plugin name>.<macro>`` (entry points ``updraft.macros`` and
``AirflowPlugin.macros``, as in Airflow).
"""

from __future__ import annotations

import json
import random as _random_module
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dateutil
import dateutil.parser
import dateutil.relativedelta
import dateutil.tz

__all__ = [
    "datetime",
    "datetime_diff_for_humans",
    "dateutil",
    "ds_add",
    "ds_format",
    "json",
    "random",
    "time",
    "timedelta",
    "uuid",
]


class _RandomMacro:
    """``macros.random``: Airflow's is the function ``random.random``; callers who expect the
    module (``macros.random.randint(1, 6)``) get its functions as attributes."""

    def __call__(self) -> float:
        return _random_module.random()

    def __getattr__(self, name: str) -> Any:
        return getattr(_random_module, name)

    def __repr__(self) -> str:
        return "<macros.random: random.random() and the random module>"


random = _RandomMacro()


def ds_add(ds: str, days: int) -> str:
    """Add (or subtract) ``days`` to a YYYY-MM-DD date string."""
    if not days:
        return str(ds)
    moved = datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)
    return moved.strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """Reformat a date string: ``ds_format('2015-01-05', '%Y-%m-%d', '%m-%d-%y')``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


_UNITS = (("year", "years"), ("month", "months"), ("week", None), ("day", "days"),
          ("hour", "hours"), ("minute", "minutes"), ("second", "seconds"))


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    """How far ``dt`` is from ``since`` (default: now) in words, as pendulum says it:
    "2 days ago", "in 3 hours", or with ``since`` "1 week before" / "5 minutes after"."""
    dt = _aware(dt)
    other = _aware(since) if since is not None else datetime.now(UTC)
    later, earlier = (dt, other) if dt > other else (other, dt)
    diff = dateutil.relativedelta.relativedelta(later, earlier)
    count, unit = 0, "second"
    for name, attr in _UNITS:
        value = diff.days // 7 if name == "week" else getattr(diff, attr)
        if value:
            count, unit = value, name
            break
    if unit == "second" and count < 10:
        amount = "a few seconds"
    else:
        amount = f"{count} {unit}{'s' if count != 1 else ''}"
    if since is None:
        return f"in {amount}" if dt > other else f"{amount} ago"
    return f"{amount} after" if dt > other else f"{amount} before"


def __getattr__(name: str) -> Any:
    """``macros.<plugin name>``: the macros a plugin registered (loaded on first use)."""
    if name.startswith("__"):
        raise AttributeError(name)
    from updraft.plugins.registry import ExtensionError, load

    try:
        return load("macros", name)
    except ExtensionError as exc:
        raise AttributeError(f"module 'updraft.macros' has no attribute {name!r} ({exc})") \
            from None
