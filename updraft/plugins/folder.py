"""The plugins folder: Airflow-style plugin files, loaded by the nodes that use them.

``[core] plugins_folder`` (default ``$UPDRAFT_HOME/plugins``) holds Python files and packages.
As in Airflow, each top-level file is imported as a module named after it (``workday.py`` is
``workday``; files in plain subfolders too), the folder is put on ``sys.path`` so plugin files
and DAG files can import them, and every ``AirflowPlugin`` (``UpdraftPlugin``) subclass found
contributes what its attributes list. The Airflow import hook is installed first, so plugin
files written for Airflow import unchanged. ``airflow.example_dags.plugins.<name>`` is served
as the plugins-folder module ``<name>`` (see :func:`import_plugin_module`), which is how
Airflow's own example DAGs find their plugins.

A file that fails to import, or a plugin that cannot be registered, becomes a ``LoadError``
naming the file; the other files still load.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from updraft.plugins.base import UNSUPPORTED_PLUGIN_ATTRIBUTES, MenuLink, UpdraftPlugin
from updraft.plugins.registry import Extension, LoadError, describe_exception

_import_lock = threading.RLock()


def plugins_folder() -> Path:
    """``[core] plugins_folder``, or ``$UPDRAFT_HOME/plugins``."""
    from updraft.config import conf, updraft_home

    configured = conf.get("core", "plugins_folder", "")
    return Path(configured or updraft_home() / "plugins").expanduser().absolute()


@dataclass
class PluginRecord:
    """One plugin found in the folder."""

    name: str
    cls: type
    source: str


@dataclass
class FolderContents:
    """What the folder registered, and what failed."""

    path: Path
    plugins: list[PluginRecord] = field(default_factory=list)
    extensions: dict[str, dict[str, Extension]] = field(default_factory=dict)
    errors: list[tuple[LoadError, BaseException | None]] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)

    def unload(self) -> None:
        """Drop the folder's modules from ``sys.modules`` and the folder from ``sys.path``."""
        with _import_lock:
            for name in self.modules:
                module = sys.modules.get(name)
                if module is not None and _is_from(module, self.path):
                    del sys.modules[name]
                sys.modules.pop(f"{EXAMPLE_PLUGINS_PACKAGE}.{name}", None)
            if str(self.path) in sys.path:
                sys.path.remove(str(self.path))


#: Airflow's example DAGs import their plugins from here; served from the plugins folder.
EXAMPLE_PLUGINS_PACKAGE = "airflow.example_dags.plugins"


def _is_from(module: ModuleType, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return bool(file) and Path(file).absolute().is_relative_to(folder)


def module_files(folder: Path) -> list[tuple[str, Path]]:
    """(module name, file) of every module the folder holds, sorted: top-level files and
    packages, and the files of plain subfolders (named after the file, as in Airflow)."""
    found: list[tuple[str, Path]] = []
    if not folder.is_dir():
        return found
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "__")):
            continue
        if entry.is_dir():
            init = entry / "__init__.py"
            if init.is_file():
                found.append((entry.name, init))
            else:
                found.extend(module_files(entry))
        elif entry.suffix == ".py" and entry.stem.isidentifier():
            found.append((entry.stem, entry))
    return found


def _ensure_on_path(folder: Path) -> None:
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.append(str(folder))


def _import_file(name: str, file: Path) -> ModuleType:
    with _import_lock:
        existing = sys.modules.get(name)
        if existing is not None:
            loaded_from = getattr(existing, "__file__", None)
            if loaded_from and Path(loaded_from).absolute() == file.absolute():
                return existing
            raise ImportError(f"a module named {name!r} is already imported from "
                              f"{loaded_from or 'a built-in'}; rename {file.name}")
        is_package = file.name == "__init__.py"
        spec = importlib.util.spec_from_file_location(
            name, file, submodule_search_locations=[str(file.parent)] if is_package else None)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


def import_plugin_module(name: str) -> ModuleType | None:
    """The plugins-folder module ``name`` (imported now if it was not), or None if the folder
    has no such module. Used to serve ``airflow.example_dags.plugins.<name>``."""
    folder = plugins_folder()
    for module_name, file in module_files(folder):
        if module_name == name:
            _ensure_on_path(folder)
            return _import_file(name, file)
    return None


def _contributions(plugin: type[UpdraftPlugin], source: str) -> tuple[list[Extension],
                                                                      list[LoadError]]:
    from updraft.plugins.base import MacroNamespace, WebExtension

    name = str(plugin.name)
    found: list[Extension] = []
    errors: list[LoadError] = []

    def add(kind: str, ext_name: str, target: str, value: Any) -> None:
        found.append(Extension(kind, ext_name, target, source, None, lambda v=value: v))

    for kind in ("timetables", "priority_weight_strategies"):
        for cls in getattr(plugin, kind, None) or ():
            target = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', cls)}"
            add(kind, target, target, cls)
    macros = list(getattr(plugin, "macros", None) or ())
    if macros:
        add("macros", name, f"{plugin.__module__}.{plugin.__qualname__}.macros",
            MacroNamespace.of(name, macros))
    for listener in getattr(plugin, "listeners", None) or ():
        label = getattr(listener, "__name__", None) or type(listener).__qualname__
        add("listeners", f"{name}.{label}", f"{plugin.__module__}.{plugin.__qualname__}"
            f".listeners", listener)
    blueprints = tuple(getattr(plugin, "flask_blueprints", None) or ())
    links: list[MenuLink] = []
    for item in [*(getattr(plugin, "appbuilder_menu_items", None) or ()),
                 *(getattr(plugin, "external_views", None) or ())]:
        try:
            links.append(MenuLink.from_airflow(item))
        except (ValueError, TypeError, AttributeError) as exc:
            errors.append(LoadError("web", name, source, f"menu item {item!r}: {exc}"))
    if blueprints or links:
        add("web", name, f"{plugin.__module__}.{plugin.__qualname__}",
            WebExtension(name, blueprints, tuple(links)))
    for attr, reason in UNSUPPORTED_PLUGIN_ATTRIBUTES.items():
        if getattr(plugin, attr, None):
            errors.append(LoadError(None, name, source, f"AirflowPlugin.{attr} is not "
                                    f"supported by Updraft ({reason}); the rest of the plugin "
                                    "is loaded"))
    return found, errors


def _plugin_classes(module: ModuleType) -> list[type[UpdraftPlugin]]:
    return [value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, UpdraftPlugin)
            and value is not UpdraftPlugin]


def load_folder(folder: Path) -> FolderContents:
    """Import every module of ``folder`` and register the plugins they define."""
    contents = FolderContents(path=folder)
    files = module_files(folder)
    if not files:
        return contents
    from updraft.compat import install_if_enabled

    install_if_enabled()
    _ensure_on_path(folder)
    seen: dict[type, str] = {}
    names: dict[str, str] = {}
    for module_name, file in files:
        source = f"plugins folder: {file}"
        try:
            module = _import_file(module_name, file)
        except (Exception, SystemExit) as exc:  # noqa: BLE001  (reported, never fatal)
            contents.errors.append((LoadError(None, module_name, source,
                                              describe_exception(exc)), exc))
            continue
        contents.modules.append(module_name)
        for plugin in _plugin_classes(module):
            if plugin in seen:
                continue
            seen[plugin] = source
            plugin_source = f"plugins folder: {file} (plugin {plugin.name!r})"
            try:
                plugin.validate()
                if plugin.name in names:
                    raise ValueError(f"a plugin named {plugin.name!r} is already registered "
                                     f"from {names[plugin.name]}")
                plugin.source = str(file)
                plugin.on_load()
            except (Exception, SystemExit) as exc:  # noqa: BLE001
                contents.errors.append((LoadError(None, str(plugin.name or plugin.__qualname__),
                                                  plugin_source, describe_exception(exc)), exc))
                continue
            names[str(plugin.name)] = str(file)
            contents.plugins.append(PluginRecord(str(plugin.name), plugin, plugin_source))
            found, errors = _contributions(plugin, plugin_source)
            contents.errors.extend((error, None) for error in errors)
            for ext in found:
                kind = contents.extensions.setdefault(ext.kind, {})
                if ext.name in kind:
                    contents.errors.append((LoadError(ext.kind, ext.name, ext.source,
                                                      f"already registered by "
                                                      f"{kind[ext.name].source}"), None))
                    continue
                kind[ext.name] = ext
    return contents


__all__ = ["EXAMPLE_PLUGINS_PACKAGE", "FolderContents", "PluginRecord", "import_plugin_module",
           "load_folder", "module_files", "plugins_folder"]
