"""The context of the task running in the current thread, for ``get_current_context()``."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

_local = threading.local()


@contextmanager
def set_current_context(context: dict[str, Any]) -> Iterator[None]:
    """Make ``context`` the current one for the duration of a task's execution."""
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    stack.append(context)
    try:
        yield
    finally:
        stack.pop()


def get_current_context() -> dict[str, Any]:
    """The context of the task running in this thread; raises outside of a task."""
    stack = getattr(_local, "stack", None)
    if not stack:
        from updraft.exceptions import UpdraftException

        raise UpdraftException("Current context was requested but no context was found! "
                               "Are you running within an Updraft task?")
    return stack[-1]


current_context = get_current_context
