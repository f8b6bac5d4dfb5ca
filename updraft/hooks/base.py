"""``BaseHook``: what every hook shares, with Airflow's API.

A hook is a client for one kind of outside system. It names its connection id argument in
``conn_name_attr`` and its default in ``default_conn_name``, and declares the ``conn_type`` it
serves; ``Connection.get_hook()`` then finds the hook class for a connection's type.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from updraft.models.connection import Connection

# Modules that define the hooks of these connection types; imported on first use.
HOOK_MODULES = {
    "postgres": "updraft.hooks.sql",
    "mysql": "updraft.hooks.sql",
    "mariadb": "updraft.hooks.sql",
    "sqlite": "updraft.hooks.sql",
    "http": "updraft.hooks.http",
    "https": "updraft.hooks.http",
    "smtp": "updraft.hooks.smtp",
    "email": "updraft.hooks.smtp",
    "fs": "updraft.hooks.filesystem",
}

_hooks_by_conn_type: dict[str, type[BaseHook]] = {}


class BaseHook:
    """Base class of hooks: connection lookup and a logger."""

    conn_name_attr: str = "conn_id"
    default_conn_name: str = "default_conn_id"
    conn_type: str = ""
    hook_name: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The most derived class that declares a type wins, so subclasses may specialise it.
        if cls.__dict__.get("conn_type"):
            _hooks_by_conn_type[cls.conn_type] = cls

    def __init__(self, logger_name: str | None = None) -> None:
        self._logger_name = logger_name

    @property
    def log(self) -> logging.Logger:
        """A logger named after the hook's class."""
        name = self._logger_name if getattr(self, "_logger_name", None) else (
            f"{type(self).__module__}.{type(self).__name__}")
        return logging.getLogger(name)

    @classmethod
    def get_connection(cls, conn_id: str) -> Connection:
        """The connection ``conn_id`` (environment first, then the store)."""
        from updraft.models.connection import Connection

        conn = Connection.get_connection_from_secrets(conn_id)
        logging.getLogger(f"{cls.__module__}.{cls.__name__}").info(
            "Using connection ID '%s' for task execution.", conn.conn_id)
        return conn

    @classmethod
    def get_hook(cls, conn_id: str, hook_params: dict | None = None) -> BaseHook:
        """The hook for the type of connection ``conn_id``, built for that connection."""
        return cls.get_connection(conn_id).get_hook(hook_params=hook_params)

    def get_conn(self) -> Any:
        """The client object of the outside system (each hook implements it)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement get_conn()")

    def get_conn_id(self) -> str:
        """The connection id this hook was built with."""
        return getattr(self, self.conn_name_attr, None) or self.default_conn_name


def hook_class_for_conn_type(conn_type: str | None) -> type[BaseHook]:
    """The hook class registered for ``conn_type``; ValueError if there is none."""
    if not conn_type:
        raise ValueError("the connection has no conn_type, so no hook can be chosen")
    if conn_type not in _hooks_by_conn_type and conn_type in HOOK_MODULES:
        try:
            importlib.import_module(HOOK_MODULES[conn_type])
        except ModuleNotFoundError:
            pass
    try:
        return _hooks_by_conn_type[conn_type]
    except KeyError:
        known = ", ".join(sorted(_hooks_by_conn_type)) or "none loaded"
        raise ValueError(f"no hook for connection type {conn_type!r} (known: {known})") from None
