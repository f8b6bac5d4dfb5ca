"""The executors node package: where queued task tries run.

``get_executor()`` builds the executor named by ``[core] executor``: a name registered in the
entry-point group ``updraft.executors`` (Updraft's own dask, local, sequential and nats_queue
are registered there like anyone else's) or a ``"module:Class"`` path. Implementations are
imported only when chosen, so picking ``local`` never imports Dask. See ``executors.base``
for the interface and the meaning of events.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from executors.base import BaseExecutor


class _RegisteredExecutors(Mapping[str, str]):
    """Executor names (as in ``[core] executor``) and where their classes live, read from
    the ``updraft.executors`` entry points when first asked."""

    def _targets(self) -> dict[str, str]:
        from updraft.plugins.registry import extensions

        return {name: ext.target for name, ext in extensions("executors").items()}

    def __getitem__(self, name: str) -> str:
        return self._targets()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets())

    def __len__(self) -> int:
        return len(self._targets())


EXECUTORS: Mapping[str, str] = _RegisteredExecutors()
"""Executor names (as in ``[core] executor``) and where their classes live."""


def executor_class(name: str) -> type[BaseExecutor]:
    """The class for ``name``: a registered executor name or a ``"module:Class"`` path."""
    from updraft.plugins.registry import ExtensionError, load

    key = name.strip()
    key = key if key in EXECUTORS else key.lower()
    if key in EXECUTORS:
        try:
            return load("executors", key)
        except ExtensionError as exc:
            raise ValueError(f"executor {name!r} cannot be loaded: {exc}") from exc
    if ":" not in name:
        known = ", ".join(sorted(EXECUTORS))
        raise ValueError(f"unknown executor {name!r}: use one of {known} or 'module:Class'")
    module_name, _, class_name = name.partition(":")
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
