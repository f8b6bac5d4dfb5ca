"""Macros registered as ``sample``: ``{{ macros.sample.shout('hi') }}`` in templates."""

from __future__ import annotations

__all__ = ["days_between", "shout"]


def shout(text: str) -> str:
    """``text`` in capitals, with an exclamation mark."""
    return f"{str(text).upper()}!"


def days_between(start, end) -> int:
    """Whole days from ``start`` to ``end`` (datetimes)."""
    return (end - start).days
