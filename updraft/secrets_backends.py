"""Secrets backends: where variables and connections come from besides the store.

``Variable.get`` and ``Connection.get_connection_from_secrets`` (and so ``var.value.X`` and
``conn.X`` in templates) look in the environment (``UPDRAFT_VAR_*``/``AIRFLOW_VAR_*``...), then
in each backend of ``[secrets] backends`` in order, then in the store. What a backend returns
is masked in logs and rendered fields like a stored secret: a connection's password and
extra always, a variable when its key looks sensitive (``password``, ``secret``, ``token``...).

A backend is a class with Airflow's interface (``airflow.secrets.BaseSecretsBackend`` is served
as :class:`BaseSecretsBackend`): ``get_conn_value(conn_id)`` or ``get_connection(conn_id)``,
``get_variable(key)`` and ``get_config(key)``, each returning None when it has no such secret.
It is registered in the entry-point group ``updraft.secrets_backends`` (Updraft registers
:class:`LocalFilesystemBackend` as ``local_filesystem``) and configured by name with its
keyword arguments (Airflow's ``backend_kwargs``)::

    [secrets]
    backends = [{backend = "local_filesystem", kwargs = {variables_file_path = "/etc/vars.json"}}]

A backend that fails to load or raises is logged (and listed by ``updraft plugins``) and the
lookup goes on with the next one, as in Airflow.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GROUP = "secrets_backends"
#: Airflow class paths DAG deployments configure, and the registered name serving each.
AIRFLOW_BACKENDS = {
    "airflow.secrets.local_filesystem.LocalFilesystemBackend": "local_filesystem",
}


class BaseSecretsBackend:
    """Base class of secrets backends (Airflow's ``BaseSecretsBackend``)."""

    @staticmethod
    def build_path(path_prefix: str, secret_id: str, sep: str = "/") -> str:
        """``<path_prefix><sep><secret_id>``: where a secret lives in a path-based store."""
        return f"{path_prefix}{sep}{secret_id}"

    def get_conn_value(self, conn_id: str) -> str | None:
        """The connection ``conn_id`` as a URI or a JSON object text, or None."""
        raise NotImplementedError

    def deserialize_connection(self, conn_id: str, value: str):
        """A Connection from what ``get_conn_value`` returned (URI or JSON)."""
        from updraft.models.connection import Connection

        value = value.strip()
        if value.startswith("{"):
            return Connection.from_json(value, conn_id=conn_id)
        return Connection(conn_id=conn_id, uri=value)

    def get_connection(self, conn_id: str):
        """The Connection ``conn_id``, or None (default: from ``get_conn_value``)."""
        value = self.get_conn_value(conn_id)
        return self.deserialize_connection(conn_id, value) if value else None

    def get_variable(self, key: str) -> str | None:
        """The value of variable ``key`` as text, or None."""
        raise NotImplementedError

    def get_config(self, key: str) -> str | None:
        """A configuration value (Airflow's ``*_secret`` options); Updraft does not ask yet."""
        return None


# -- the local-filesystem backend ----------------------------------------------------------------


class SecretsFileError(ValueError):
    """A secrets file that cannot be read; the message names the file and the line."""


def _parse_env(path: Path, text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key or not value:
            problem = ("no '=' in the line" if not sep else
                       "the key is empty" if not key else "the value is empty")
            raise SecretsFileError(f"{path}:{number}: invalid line ({problem}); expected "
                                   "KEY=VALUE")
        found.setdefault(key, []).append(value)
    return found


def _parse_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    suffix = path.suffix.lower()
    if suffix == ".env":
        return _parse_env(path, text)
    if not text.strip():
        raise SecretsFileError(f"{path}: the file is empty")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SecretsFileError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SecretsFileError(f"{path}: YAML files need PyYAML (pip install "
                                   "updraft[yaml])") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise SecretsFileError(f"{path}{line}: invalid YAML: {exc}") from None
    else:
        raise SecretsFileError(f"{path}: unsupported file type; use .env, .json, .yaml or .yml")
    if not isinstance(data, dict):
        raise SecretsFileError(f"{path}: the file must hold an object (key: value)")
    return data


def _single(path: Path, key: str, value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise SecretsFileError(f"{path}: {key!r} has {len(value)} values; give it one")
        return value[0]
    return value


_CONNECTION_FIELDS = frozenset({"conn_id", "conn_type", "description", "host", "login",
                                "password", "schema", "port", "extra", "extra_dejson", "uri"})


def _connection(path: Path, conn_id: str, value: Any):
    from updraft.models.connection import Connection

    value = _single(path, conn_id, value)
    if isinstance(value, str):
        return Connection(conn_id=conn_id, uri=value)
    if not isinstance(value, dict):
        raise SecretsFileError(f"{path}: connection {conn_id!r} must be a URI or an object, "
                               f"got {type(value).__name__}")
    fields = dict(value)
    unknown = sorted(set(fields) - _CONNECTION_FIELDS)
    if unknown:
        raise SecretsFileError(f"{path}: connection {conn_id!r} has unknown fields "
                               f"{', '.join(unknown)}")
    if "extra" in fields and "extra_dejson" in fields:
        raise SecretsFileError(f"{path}: connection {conn_id!r} has both extra and "
                               "extra_dejson; give one")
    if "extra_dejson" in fields:
        fields["extra"] = fields.pop("extra_dejson")
    if fields.get("conn_id", conn_id) != conn_id:
        raise SecretsFileError(f"{path}: connection {conn_id!r} says conn_id "
                               f"{fields['conn_id']!r}")
    fields["conn_id"] = conn_id
    return Connection(**fields)


class LocalFilesystemBackend(BaseSecretsBackend):
    """Variables, connections and configuration from local files (Airflow's
    ``LocalFilesystemBackend``): ``.json``, ``.yaml``/``.yml`` (with PyYAML) or ``.env``.

    Variables map keys to values; connections map ids to a URI or an object of Connection
    fields (``extra`` or ``extra_dejson``). A file is read again when it changes.
    """

    def __init__(self, variables_file_path: str | None = None,
                 connections_file_path: str | None = None,
                 configs_file_path: str | None = None) -> None:
        self.variables_file = variables_file_path
        self.connections_file = connections_file_path
        self.configs_file = configs_file_path
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def _read(self, file: str | None) -> dict[str, Any]:
        if not file:
            return {}
        path = Path(os.path.expanduser(file))
        try:
            mtime = path.stat().st_mtime
        except OSError as exc:
            raise SecretsFileError(f"{path}: cannot read the secrets file: {exc.strerror}") \
                from None
        with self._lock:
            cached = self._cache.get(str(path))
            if cached is not None and cached[0] == mtime:
                return cached[1]
        data = _parse_file(path)
        with self._lock:
            self._cache[str(path)] = (mtime, data)
        return data

    def get_connection(self, conn_id: str):
        data = self._read(self.connections_file)
        if conn_id not in data:
            return None
        return _connection(Path(str(self.connections_file)), conn_id, data[conn_id])

    def get_conn_value(self, conn_id: str) -> str | None:
        conn = self.get_connection(conn_id)
        return conn.get_uri() if conn is not None else None

    def get_variable(self, key: str) -> str | None:
        data = self._read(self.variables_file)
        if key not in data:
            return None
        value = _single(Path(str(self.variables_file)), key, data[key])
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value)  # an object in a JSON/YAML file reads back with deserialize_json

    def get_config(self, key: str) -> str | None:
        data = self._read(self.configs_file)
        value = _single(Path(str(self.configs_file)), key, data[key]) if key in data else None
        return None if value is None else str(value)

    def __repr__(self) -> str:
        return (f"LocalFilesystemBackend(variables_file_path={self.variables_file!r}, "
                f"connections_file_path={self.connections_file!r})")


# -- configured backends and lookups -------------------------------------------------------------


def _entries(raw: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name or path, kwargs) of each configured backend."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith(("[", "{")):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"[secrets] backends is not valid JSON: {exc.msg}") from None
        else:
            raw = [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        raise TypeError(f"[secrets] backends must be a list, got {type(raw).__name__}")
    entries: list[tuple[str, dict[str, Any]]] = []
    for item in raw:
        if isinstance(item, str):
            entries.append((item, {}))
            continue
        if not isinstance(item, dict):
            raise TypeError(f"[secrets] backends: each backend is a name or a table, got {item!r}")
        name = item.get("backend") or item.get("name") or item.get("class")
        kwargs = item.get("kwargs", item.get("backend_kwargs", {})) or {}
        if isinstance(kwargs, str):
            kwargs = json.loads(kwargs)
        unknown = set(item) - {"backend", "name", "class", "kwargs", "backend_kwargs"}
        if not isinstance(name, str) or not isinstance(kwargs, dict) or unknown:
            raise ValueError(f"[secrets] backends: expected {{backend = \"name\", kwargs = "
                             f"{{...}}}}, got {item!r}")
        entries.append((name, kwargs))
    return entries


def backend_class(name: str) -> type:
    """The class of a backend named in ``[secrets] backends``: a registered name, Airflow's
    class path of a backend Updraft serves, or a ``module:Class`` path."""
    from updraft.plugins import registry

    name = AIRFLOW_BACKENDS.get(name, name)
    if ":" not in name:
        return registry.load(GROUP, name)
    import importlib

    module_name, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise registry.ExtensionError(f"secrets backend {name!r} cannot be loaded: "
                                      f"{type(exc).__name__}: {exc}") from exc


_configured: dict[str, list[Any]] = {}
_configured_lock = threading.Lock()


def configured_backends() -> list[Any]:
    """The backends of ``[secrets] backends``, built once per configuration and process; one
    that cannot be built is logged and listed by ``updraft plugins``, and left out."""
    from updraft.config import conf

    raw = conf.get("secrets", "backends", None)
    if raw is None or raw == "" or raw == []:
        return []
    # Per process: a backend's client (a socket, a session) must not be shared with a fork.
    key = f"{os.getpid()}:{json.dumps(raw, sort_keys=True, default=str)}"
    with _configured_lock:
        cached = _configured.get(key)
        if cached is not None:
            return cached
        from updraft.plugins.registry import LoadError, describe_exception, record_error

        backends: list[Any] = []
        try:
            entries = _entries(raw)
        except (ValueError, TypeError) as exc:
            record_error(LoadError(GROUP, "[secrets] backends", "configuration", str(exc)))
            entries = []
        for name, kwargs in entries:
            try:
                backends.append(backend_class(name)(**kwargs))
            except Exception as exc:  # noqa: BLE001  (a broken backend is skipped, not fatal)
                record_error(LoadError(GROUP, name, "[secrets] backends",
                                       describe_exception(exc)), exc)
        _configured.clear()
        _configured[key] = backends
        return backends


def _ask(backend: Any, method: str, what: str, ident: str) -> Any:
    function = getattr(backend, method, None)
    if function is None:
        return None
    try:
        return function(ident)
    except NotImplementedError:
        return None
    except Exception:  # noqa: BLE001  (as Airflow: log and ask the next backend)
        log.exception("Secrets backend %r failed to look up %s %r; asking the next one",
                      backend, what, ident)
        return None


def get_variable(key: str) -> str | None:
    """The value of variable ``key`` from the first backend that has it, or None."""
    for backend in configured_backends():
        value = _ask(backend, "get_variable", "variable", key)
        if value is not None:
            return value if isinstance(value, str) else str(value)
    return None


def get_connection(conn_id: str):
    """The Connection ``conn_id`` from the first backend that has it, or None."""
    for backend in configured_backends():
        conn = _ask(backend, "get_connection", "connection", conn_id)
        if conn is None and not callable(getattr(type(backend), "get_connection", None)):
            value = _ask(backend, "get_conn_value", "connection", conn_id)
            if value:
                conn = BaseSecretsBackend.deserialize_connection(backend, conn_id, value)
        if conn is not None:
            return conn
    return None


def get_config(key: str) -> str | None:
    """A configuration value from the first backend that has it, or None."""
    for backend in configured_backends():
        value = _ask(backend, "get_config", "config", key)
        if value is not None:
            return str(value)
    return None


__all__ = ["BaseSecretsBackend", "LocalFilesystemBackend", "SecretsFileError", "backend_class",
           "configured_backends", "get_config", "get_connection", "get_variable"]
