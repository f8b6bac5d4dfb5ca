"""The import hook that serves ``airflow`` and its submodules from Updraft's own classes.

A ``sys.meta_path`` finder claims every module named ``airflow`` or ``airflow.*``. A module
listed in :mod:`updraft.compat.airflow_map` is created empty and fills itself on attribute
access: ``from airflow.operators.python import PythonOperator`` imports
``updraft.operators.python`` only then. Any other module or name raises
:class:`NotSupportedImport` (``not supported by Updraft: <what>, in <file>:<line>``) naming
the line of the DAG file that asked for it; it is an ``ImportError`` too, so a DAG file that
guards an optional import with ``except ImportError`` behaves as on an Airflow without that
provider.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from typing import Any

from updraft.compat import airflow_map
from updraft.compat.airflow_map import Unsupported
from updraft.exceptions import NotSupportedByUpdraft, user_code_location


class NotSupportedImport(NotSupportedByUpdraft, ImportError):
    """An Airflow module or name that Updraft does not have, asked for by a DAG file."""


def not_supported(what: str, reason: str | None = None) -> NotSupportedImport:
    """The error for an Airflow feature Updraft lacks, located at the DAG file's line."""
    detail = f" ({reason})" if reason else ""
    location = user_code_location(2) or "<unknown>"
    return NotSupportedImport(f"not supported by Updraft: {what}{detail}, in {location}")


def _requested_module(default: str) -> str:
    """The full module name of the import statement under way (``a.b.c`` while ``a.b`` is
    being found), read from importlib's frames; ``default`` if it cannot be told."""
    frame = sys._getframe(1)
    found = default
    while frame is not None:
        if frame.f_code.co_name == "_find_and_load" and \
                frame.f_code.co_filename.startswith("<frozen importlib"):
            name = frame.f_locals.get("name")
            if isinstance(name, str) and name.startswith(default):
                found = name
        elif not frame.f_code.co_filename.startswith("<frozen") and \
                frame.f_globals.get("__name__") != __name__:
            break
        frame = frame.f_back
    return found


class AirflowCompatModule(types.ModuleType):
    """An ``airflow...`` module whose names resolve to Updraft objects on first access."""

    __updraft_compat__ = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = resolve(self.__name__, name)
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(supported_names(self.__name__)))


def supported_names(module: str) -> list[str]:
    """The names the Airflow module ``module`` serves (what ``import *`` gives)."""
    names = {n for n, target in airflow_map.MODULES.get(module, {}).items()
             if not isinstance(target, Unsupported)}
    alias = airflow_map.ALIASES.get(module)
    if alias is not None:
        try:
            target = importlib.import_module(alias)
        except ImportError:
            pass
        else:
            names |= set(getattr(target, "__all__", None) or
                         [n for n in vars(target) if not n.startswith("_")])
    return sorted(names)


def resolve(module: str, name: str) -> Any:
    """The Updraft object served as ``module.name``; NotSupportedImport if there is none."""
    qualified = f"{module}.{name}"
    if airflow_map.is_known_module(qualified):
        return importlib.import_module(qualified)
    target = airflow_map.lookup(module, name)
    if target is None:
        raise not_supported(qualified, airflow_map.unsupported_module_reason(qualified)
                            if qualified.startswith("airflow.providers.") and
                            module not in airflow_map.MODULES else None)
    if isinstance(target, Unsupported):
        raise not_supported(qualified, target.reason)
    source, _, attr = target.partition(":")
    try:
        updraft_module = importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name != source:
            raise  # a dependency of the Updraft module is missing: say so as it is
        raise not_supported(qualified, f"{source} is not available in this Updraft") from None
    if not attr:
        return updraft_module
    try:
        return getattr(updraft_module, attr)
    except AttributeError:
        raise not_supported(qualified, f"{source} has no {attr}") from None


class _PluginModuleLoader(importlib.abc.Loader):
    """Serves ``airflow.example_dags.plugins.<name>`` as the plugins-folder module ``<name>``:
    the same module object, so a class a DAG file imports that way is the registered one."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.original_spec = getattr(module, "__spec__", None)

    def create_module(self, spec):
        return self.module

    def exec_module(self, module) -> None:
        """Nothing to run: the plugins folder imported the module already. The import system
        gave it the alias's spec; give back its own (its name stays the plugin module's)."""
        module.__spec__ = self.original_spec


class AirflowCompatFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads ``airflow`` modules from :mod:`updraft.compat.airflow_map`."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != "airflow" and not fullname.startswith("airflow."):
            return None
        plugin = airflow_map.plugin_alias(fullname)
        if plugin is not None:
            from updraft.plugins.folder import import_plugin_module, plugins_folder

            module = import_plugin_module(plugin)
            if module is None:
                raise not_supported(fullname, f"Airflow's example plugin module; put "
                                              f"{plugin}.py in the plugins folder "
                                              f"({plugins_folder()})")
            return importlib.machinery.ModuleSpec(fullname, _PluginModuleLoader(module))
        if not airflow_map.is_known_module(fullname):
            requested = _requested_module(fullname)
            raise not_supported(requested, airflow_map.unsupported_module_reason(requested))
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return AirflowCompatModule(spec.name)

    def exec_module(self, module) -> None:
        module.__path__ = []
        module.__all__ = supported_names(module.__name__)
        if module.__name__ == "airflow":
            from updraft.compat.shims import AIRFLOW_VERSION

            module.__version__ = AIRFLOW_VERSION
