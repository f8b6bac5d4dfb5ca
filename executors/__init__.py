"""The executors node package: where queued task tries run.

``get_executor()`` builds the executor named by ``[core] executor``; implementations are
imported only when chosen, so picking ``local`` never imports Dask. See ``executors.base``
for the interface and the meaning of events.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from executors.base import BaseExecutor

EXECUTORS: dict[str, str] = {
    "dask": "executors.dask:DaskExecutor",
    "local": "executors.local:LocalExecutor",
    "sequential": "executors.sequential:SequentialExecutor",
    "nats_queue": "executors.nats_queue:NatsQueueExecutor",
}
"""Executor names (as in ``[core] executor``) and where their classes live."""


def executor_class(name: str) -> type[BaseExecutor]:
    """The class for ``name``: a key of EXECUTORS or a ``"module:Class"`` path."""
    path = EXECUTORS.get(name.strip().lower(), name)
    if ":" not in path:
        known = ", ".join(sorted(EXECUTORS))
        raise ValueError(f"unknown executor {name!r}: use one of {known} or 'module:Class'")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"executor {name!r} cannot be loaded from {module_name}: "
                         f"{exc}") from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"executor {name!r}: {module_name} has no {class_name}") from None


def get_executor(name: str | None = None, **options: Any) -> BaseExecutor:
    """A new, not yet started executor named ``name`` (default: ``[core] executor``)."""
    if name is None:
        from updraft.config import conf

        name = str(conf.get("core", "executor")) or "dask"
    return executor_class(name)(**options)


__all__ = ["EXECUTORS", "executor_class", "get_executor"]
