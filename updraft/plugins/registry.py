"""The registry of extensions: entry points ``updraft.<kind>`` plus the plugins folder.

Every node asks this module for the extensions of a kind it needs, by name:
``load("executors", "dask")``, ``load_all("listeners")``, ``find_name("timetables", cls)``.
Entry points are read once per process (Updraft's own first, so a third party cannot replace
them), objects are imported on first use and kept, and the plugins folder is loaded the first
time a kind it contributes to is asked for.

A broken extension never takes a node down: it becomes a :class:`LoadError` naming the
distribution, the entry point (or plugins-folder file) and the cause; it is logged once,
listed by ``updraft plugins``, and ``load`` raises :class:`ExtensionError` with that text
for callers that needed that one extension.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("updraft.plugins")

KINDS: tuple[str, ...] = ("executors", "cli", "timetables", "priority_weight_strategies",
                          "macros", "listeners", "web", "secrets_backends", "notifiers")
#: Kinds an ``AirflowPlugin`` in the plugins folder can contribute to.
FOLDER_KINDS = frozenset({"timetables", "priority_weight_strategies", "macros", "listeners",
                          "web"})
#: The distribution whose entry points win a name clash.
OWN_DISTRIBUTION = "updraft"


def group_name(kind: str) -> str:
    """The entry-point group of ``kind`` (``updraft.<kind>``); ValueError for unknown kinds."""
    if kind not in KINDS:
        raise ValueError(f"unknown extension kind {kind!r}; the kinds are {', '.join(KINDS)}")
    return f"updraft.{kind}"


@dataclass(frozen=True)
class Extension:
    """One registered extension: where it is and where it was registered."""

    kind: str
    name: str
    #: What it points at: ``module:attr`` (entry points) or ``module.QualName`` (plugins).
    target: str
    #: Where it was registered, for people: the entry point and its distribution, or the
    #: plugins-folder file and plugin.
    source: str
    distribution: str | None = None
    loader: Callable[[], Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LoadError:
    """An extension (or a plugins-folder file) that could not be registered or loaded."""

    kind: str | None
    name: str
    source: str
    error: str

    def __str__(self) -> str:
        what = f"{self.kind} extension {self.name!r}" if self.kind else repr(self.name)
        return f"cannot load {what} from {self.source}: {self.error}"


class ExtensionError(LookupError):
    """An extension that is not registered here or cannot be loaded; the message says which,
    from where, and why."""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` plus the innermost frame outside the import machinery."""
    import traceback

    text = f"{type(exc).__name__}: {exc}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<frozen") and "importlib" not in f.filename
              and not f.filename.endswith("updraft/plugins/registry.py")]
    if frames:
        text += f" (at {frames[-1].filename}:{frames[-1].lineno})"
    return text


def _own_first(entry_point) -> tuple[int, str, str]:
    dist = _dist_name(entry_point)
    return (0 if dist == OWN_DISTRIBUTION else 1, dist or "", entry_point.name)


_dist_labels: dict[str, tuple[str | None, str]] = {}


def _dist_info(entry_point) -> tuple[str | None, str]:
    """(name, "name version") of the distribution of ``entry_point``, its metadata parsed
    once per distribution (parsing it costs milliseconds: Updraft's holds its README)."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, "an unknown distribution"
    key = str(getattr(dist, "_path", id(dist)))
    known = _dist_labels.get(key)
    if known is None:
        try:
            metadata = dist.metadata
            name, version = metadata["Name"], metadata["Version"]
        except (KeyError, TypeError, OSError):
            name, version = getattr(dist, "_normalized_name", None), None
        known = (name, f"{name} {version}" if version else str(name))
        _dist_labels[key] = known
    return known


def _dist_name(entry_point) -> str | None:
    return _dist_info(entry_point)[0]


def _dist_label(entry_point) -> str:
    return _dist_info(entry_point)[1]


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entry_points: dict[str, dict[str, Extension]] | None = None
        self._folder: Any = None  # folder.FolderContents
        self._loaded: dict[tuple[str, str, str], Any] = {}
        self._failed: dict[tuple[str, str, str], LoadError] = {}
        self._errors: dict[tuple[str | None, str, str], LoadError] = {}

    # -- recording errors ----------------------------------------------------------------

    def record(self, error: LoadError, exc: BaseException | None = None) -> None:
        """Keep ``error`` for ``updraft plugins`` and log it, once."""
        key = (error.kind, error.name, error.source)
        with self._lock:
            if key in self._errors:
                return
            self._errors[key] = error
        log.error("%s", error, exc_info=exc if exc is not None else None)

    def errors(self) -> list[LoadError]:
        with self._lock:
            return list(self._errors.values())

    # -- reading registrations -----------------------------------------------------------

    def _entry_point_extensions(self) -> dict[str, dict[str, Extension]]:
        with self._lock:
            if self._entry_points is not None:
                return self._entry_points
            from importlib.metadata import entry_points

            found: dict[str, dict[str, Extension]] = {kind: {} for kind in KINDS}
            every = entry_points()
            for kind in KINDS:
                group = group_name(kind)
                for ep in sorted(every.select(group=group), key=_own_first):
                    source = f"entry point {ep.name!r} in group {group} of {_dist_label(ep)}"
                    ext = Extension(kind, ep.name, ep.value, source, _dist_name(ep), ep.load)
                    other = found[kind].get(ep.name)
                    if other is None:
                        found[kind][ep.name] = ext
                    elif other.target != ext.target:
                        self.record(LoadError(kind, ep.name, source,
                                              f"the name is already registered by "
                                              f"{other.source}; this one is ignored"))
            self._entry_points = found
            return found

    def _folder_contents(self):
        from updraft.plugins import folder

        path = folder.plugins_folder()
        with self._lock:
            if self._folder is not None and self._folder.path == path:
                return self._folder
            if self._folder is not None:
                self._forget_folder()
            contents = folder.load_folder(path)
            for error, exc in contents.errors:
                self.record(error, exc)
            self._folder = contents
            return contents

    def _forget_folder(self) -> None:
        folder, self._folder = self._folder, None
        folder.unload()
        self._loaded = {k: v for k, v in self._loaded.items() if not k[2].startswith("plugins")}
        self._failed = {k: v for k, v in self._failed.items() if not k[2].startswith("plugins")}

    def extensions(self, kind: str) -> dict[str, Extension]:
        group_name(kind)
        merged = dict(self._entry_point_extensions()[kind])
        if kind in FOLDER_KINDS:
            for name, ext in self._folder_contents().extensions.get(kind, {}).items():
                other = merged.get(name)
                if other is not None:
                    self.record(LoadError(kind, name, ext.source, f"the name is already "
                                          f"registered by {other.source}; this one is ignored"))
                    continue
                merged[name] = ext
        return merged

    # -- loading -------------------------------------------------------------------------

    def load(self, kind: str, name: str) -> Any:
        registered = self.extensions(kind)
        ext = registered.get(name)
        if ext is None:
            known = ", ".join(sorted(registered)) or "none"
            raise ExtensionError(f"no {kind} extension named {name!r} is registered (entry-point "
                                 f"group {group_name(kind)}"
                                 + (" or the plugins folder" if kind in FOLDER_KINDS else "")
                                 + f"); registered: {known}")
        key = (kind, name, ext.source)
        with self._lock:
            if key in self._loaded:
                return self._loaded[key]
            failed = self._failed.get(key)
            if failed is not None:
                raise ExtensionError(str(failed))
            try:
                value = _convert(kind, name, ext.loader() if ext.loader else None)
            except (Exception, SystemExit) as exc:  # noqa: BLE001  (reported, never fatal)
                error = LoadError(kind, name, ext.source, describe_exception(exc))
                self._failed[key] = error
                self.record(error, exc)
                raise ExtensionError(str(error)) from exc
            self._loaded[key] = value
            return value

    def load_all(self, kind: str) -> dict[str, Any]:
        loaded: dict[str, Any] = {}
        for name in self.extensions(kind):
            try:
                loaded[name] = self.load(kind, name)
            except ExtensionError:
                continue  # recorded and logged by load()
        return loaded

    def find_name(self, kind: str, obj: Any) -> str | None:
        registered = self.extensions(kind)
        module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
        for text in (f"{module}:{qualname}", f"{module}.{qualname}"):
            for name, ext in registered.items():
                if ext.target == text:
                    try:
                        if self.load(kind, name) is obj:
                            return name
                    except ExtensionError:
                        pass
        for name, value in self.load_all(kind).items():
            if value is obj:
                return name
        return None

    def reset(self) -> None:
        with self._lock:
            if self._folder is not None:
                self._forget_folder()
            self._entry_points = None
            self._loaded.clear()
            self._failed.clear()
            self._errors.clear()


def _convert(kind: str, name: str, value: Any) -> Any:
    """Check what an extension gave and turn it into what its consumers use."""
    if kind == "macros":
        from updraft.plugins.base import MacroNamespace

        return MacroNamespace.of(name, value)
    if kind == "web":
        from updraft.plugins.base import WebExtension

        return WebExtension.of(name, value)
    problem = None
    if kind == "timetables":
        from updraft.schedules import Timetable

        if not (isinstance(value, type) and issubclass(value, Timetable)):
            problem = ("not a Timetable subclass (updraft.schedules.Timetable, served as "
                       "airflow.timetables.base.Timetable)")
    elif kind == "priority_weight_strategies":
        if not (isinstance(value, type) and callable(getattr(value, "get_weight", None))):
            problem = "not a priority-weight strategy class (it needs get_weight(ti))"
    elif kind in ("executors", "notifiers", "secrets_backends") and not isinstance(value, type):
        problem = f"not a class (a {type(value).__name__})"
    elif kind == "secrets_backends" and not any(
            callable(getattr(value, m, None)) for m in ("get_conn_value", "get_connection",
                                                       "get_variable")):
        problem = "not a secrets backend (it needs get_conn_value, get_connection or get_variable)"
    elif kind == "cli":
        import click

        if not isinstance(value, click.Command):
            problem = f"not a click command (a {type(value).__name__})"
    if problem:
        raise TypeError(f"{getattr(value, '__module__', '?')}."
                        f"{getattr(value, '__qualname__', type(value).__name__)} is {problem}")
    return value


_registry = _Registry()


def extensions(kind: str) -> dict[str, Extension]:
    """Every extension registered for ``kind``, by name (nothing is imported)."""
    return _registry.extensions(kind)


def load(kind: str, name: str) -> Any:
    """The object registered as ``name`` for ``kind``; ExtensionError if it is not
    registered or cannot be loaded (the message names the distribution or file and why)."""
    return _registry.load(kind, name)


def load_all(kind: str) -> dict[str, Any]:
    """Every extension of ``kind`` that loads, by name; broken ones are left out (logged
    once and listed by ``load_errors``)."""
    return _registry.load_all(kind)


def find_name(kind: str, obj: Any) -> str | None:
    """The name ``obj`` (a class) is registered under for ``kind``, or None."""
    return _registry.find_name(kind, obj)


def folder_plugins() -> list[tuple[str, str]]:
    """(name, source) of each plugin the plugins folder registered (loading it if needed)."""
    return [(p.name, p.source) for p in _registry._folder_contents().plugins]


def load_errors() -> list[LoadError]:
    """Every registration or load that failed in this process so far."""
    return _registry.errors()


def record_error(error: LoadError, exc: BaseException | None = None) -> None:
    """Report a problem found while using an extension (logged once, listed by
    ``updraft plugins``)."""
    _registry.record(error, exc)


def preload_for_tries() -> None:
    """Import what every try consults (listeners, plugin macros, secrets backend classes)
    now, so processes forked from this one start with them imported instead of each paying
    for reading entry points and importing plugins. Backends are not built here: each
    process builds its own (a client must not be shared with a fork). Never raises:
    problems are recorded."""
    try:
        load_all("listeners")
        load_all("macros")
        load_all("secrets_backends")
    except Exception as exc:  # noqa: BLE001  (a warm-up must not fail the process)
        log.warning("Preloading extensions failed: %s", describe_exception(exc))


def reset() -> None:
    """Forget everything read and loaded (tests; a changed plugins folder is noticed anyway)."""
    _registry.reset()


__all__ = ["FOLDER_KINDS", "KINDS", "Extension", "ExtensionError", "LoadError",
           "describe_exception", "extensions", "find_name", "folder_plugins", "group_name",
           "load", "load_all", "load_errors", "preload_for_tries", "record_error", "reset"]
