"""Jinja rendering of operator fields and the context a task try gets, as Airflow does it.

The runner calls ``build_context`` once per try, then ``render_template_fields(task, context)``
before ``execute``. Templates see the Airflow names (``ds``, ``ts``, ``logical_date``,
``params``, ``var.value.KEY``, ``conn.ID.host``, ``macros.ds_add(...)``, ``dag_run.conf``...),
the filters ``ds``, ``ds_nodash``, ``ts``, ``ts_nodash``, ``ts_nodash_with_tz``, and the DAG's
``user_defined_macros`` and ``user_defined_filters``. Template files (a field value ending in
one of the operator's ``template_ext``) are looked up next to the DAG file, then in the DAG's
``template_searchpath``.

Variables and connections are read only when a template touches them, through
``updraft.models.variable`` and ``updraft.models.connection``, imported at that moment so that
importing this module stays cheap.
"""

from __future__ import annotations

import math
import os
import sys
import weakref
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import jinja2
import jinja2.nativetypes
import jinja2.sandbox

from updraft import macros as _macros

Context = dict[str, Any]


class UpdraftTemplateError(Exception):
    """A templated field that could not be rendered; the message names the field and task."""

    def __init__(self, message: str, *, task_id: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.field = field


# -- filters and environments -------------------------------------------------------------------


def ds_filter(value: date | None) -> str | None:
    """``{{ logical_date | ds }}``: YYYY-MM-DD."""
    return None if value is None else value.strftime("%Y-%m-%d")


def ds_nodash_filter(value: date | None) -> str | None:
    """``{{ logical_date | ds_nodash }}``: YYYYMMDD."""
    return None if value is None else value.strftime("%Y%m%d")


def ts_filter(value: date | time | None) -> str | None:
    """``{{ logical_date | ts }}``: ISO 8601."""
    return None if value is None else value.isoformat()


def ts_nodash_filter(value: date | None) -> str | None:
    """``{{ logical_date | ts_nodash }}``: YYYYMMDDTHHMMSS."""
    return None if value is None else value.strftime("%Y%m%dT%H%M%S")


def ts_nodash_with_tz_filter(value: date | None) -> str | None:
    """``{{ logical_date | ts_nodash_with_tz }}``: ISO 8601 without dashes and colons."""
    return None if value is None else value.isoformat().replace("-", "").replace(":", "")


FILTERS: dict[str, Any] = {
    "ds": ds_filter,
    "ds_nodash": ds_nodash_filter,
    "ts": ts_filter,
    "ts_nodash": ts_nodash_filter,
    "ts_nodash_with_tz": ts_nodash_with_tz_filter,
}


class _UpdraftEnvironmentMixin:
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[call-arg]
        self.filters.update(FILTERS)  # type: ignore[attr-defined]

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        # As Airflow: "_private" attributes are reachable, only "__dunder__" and interpreter
        # internals are not.
        return not jinja2.sandbox.is_internal_attribute(obj, attr)


class SandboxedEnvironment(_UpdraftEnvironmentMixin, jinja2.sandbox.SandboxedEnvironment):
    """The default environment of task templates (Airflow's is sandboxed too)."""


class NativeEnvironment(_UpdraftEnvironmentMixin, jinja2.nativetypes.NativeEnvironment):
    """The environment of ``render_template_as_native_obj=True`` DAGs: renders Python objects."""


def template_searchpath(dag: Any) -> list[str]:
    """Where template files of ``dag`` are looked up: its folder, then template_searchpath."""
    paths: list[str] = []
    fileloc = getattr(dag, "fileloc", None)
    if fileloc:
        paths.append(os.path.dirname(os.path.abspath(fileloc)))
    extra = getattr(dag, "template_searchpath", None)
    if isinstance(extra, (str, os.PathLike)):
        extra = [extra]
    paths.extend(os.fspath(path) for path in extra or ())
    return paths


# id(dag) -> (weak reference to the dag, {native: (fingerprint, env)})
_ENV_CACHE: dict[int, tuple[weakref.ref, dict[bool, tuple[tuple, jinja2.Environment]]]] = {}


def _items_fingerprint(mapping: Any) -> tuple:
    return tuple((key, id(value)) for key, value in dict(mapping or {}).items())


def get_jinja_env(dag: Any = None, native: bool = False) -> jinja2.Environment:
    """The Jinja environment for rendering templates of ``dag``'s tasks (cached per DAG)."""
    native = bool(native or getattr(dag, "render_template_as_native_obj", False))
    searchpath = template_searchpath(dag)
    undefined = getattr(dag, "template_undefined", None) or jinja2.StrictUndefined
    user_macros = getattr(dag, "user_defined_macros", None) or {}
    user_filters = getattr(dag, "user_defined_filters", None) or {}
    env_kwargs = getattr(dag, "jinja_environment_kwargs", None) or {}
    # The DAG's settings can change after the first render (tests, DAG factories): the
    # fingerprint makes a changed DAG get a fresh environment instead of a stale one.
    fingerprint = (tuple(searchpath), undefined, _items_fingerprint(user_macros),
                   _items_fingerprint(user_filters), _items_fingerprint(env_kwargs))
    entry = _ENV_CACHE.get(id(dag)) if dag is not None else None
    if entry is not None and entry[0]() is dag:
        cached = entry[1].get(native)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]

    options: dict[str, Any] = {
        "loader": jinja2.FileSystemLoader(searchpath),
        "undefined": undefined,
        "extensions": ["jinja2.ext.do"],
    }
    options.update(env_kwargs)
    env: jinja2.Environment = (NativeEnvironment if native else SandboxedEnvironment)(**options)
    env.globals.update(user_macros)
    env.filters.update(user_filters)

    if dag is not None:
        key = id(dag)
        if entry is None or entry[0]() is not dag:
            try:
                ref = weakref.ref(dag, lambda _ref, key=key: _ENV_CACHE.pop(key, None))
            except TypeError:
                return env  # not weak-referenceable: no cache rather than a leak
            entry = (ref, {})
            _ENV_CACHE[key] = entry
        entry[1][native] = (fingerprint, env)
    return env


# -- rendering ----------------------------------------------------------------------------------


class LiteralValue:
    """A templated field value that is used as is, never rendered (``literal("{{ x }}")``)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"literal({self.value!r})"


def literal(value: Any) -> LiteralValue:
    """Wrap a templated field value so that it is not rendered, as Airflow's ``literal``."""
    return LiteralValue(value)


def _resolvable(value: Any) -> bool:
    # XComArg and dag params only exist if their module was imported by the DAG file.
    module = sys.modules.get("updraft.xcom_arg")
    if module is None:
        return False
    kinds = tuple(getattr(module, name) for name in ("XComArg", "DagParamArg")
                  if hasattr(module, name))
    return bool(kinds) and isinstance(value, kinds)


def render_template(content: Any, context: Context, env: jinja2.Environment | None = None,
                    template_ext: Iterable[str] = (), seen: set[int] | None = None) -> Any:
    """Render ``content``: strings (file names ending in ``template_ext`` load that file),
    lists, tuples, sets and dict values recursively, and objects with ``template_fields``."""
    if env is None:
        env = get_jinja_env(None)
    if seen is None:
        seen = set()
    extensions = tuple(template_ext or ())
    value = content
    if isinstance(value, str):
        if extensions and value.endswith(extensions):
            template = env.get_template(value)
        else:
            template = env.from_string(value)
        return template.render(context)
    if isinstance(value, LiteralValue):
        return value.value
    if _resolvable(value):
        return value.resolve(context)
    if id(value) in seen:
        return value

    def again(item: Any) -> Any:
        return render_template(item, context, env, extensions, seen)

    if value.__class__ is tuple:
        return tuple(again(item) for item in value)
    if isinstance(value, tuple):  # a namedtuple keeps its class
        return value.__class__(*(again(item) for item in value))
    if isinstance(value, list):
        return [again(item) for item in value]
    if isinstance(value, dict):
        return {key: again(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return value.__class__(again(item) for item in value)
    nested_fields = getattr(value, "template_fields", None)
    if nested_fields is not None and not isinstance(value, type):
        seen.add(id(value))
        _render_fields(value, nested_fields, context, env, extensions, seen)
    return value


def _render_fields(target: Any, fields: Iterable[str], context: Context, env: jinja2.Environment,
                   extensions: tuple[str, ...], seen: set[int]) -> None:
    for name in fields:
        value = _field_value(target, name)
        if value is None or (callable(value) and not _resolvable(value)):
            continue
        setattr(target, name, render_template(value, context, env, extensions, seen))


def _field_value(target: Any, name: str) -> Any:
    try:
        return getattr(target, name)
    except AttributeError:
        raise AttributeError(f"{name!r} is configured as a template field but "
                             f"{type(target).__name__} does not have this attribute") from None


def _describe_error(exc: BaseException, env: jinja2.Environment) -> str:
    if isinstance(exc, jinja2.TemplateNotFound):
        paths = getattr(env.loader, "searchpath", None) or []
        where = ", ".join(paths) if paths else "no template folders"
        return f"template file {exc.name!r} not found in {where}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f"{exc.name or exc.filename}, " if (exc.name or exc.filename) else ""
        return f"syntax error ({where}line {exc.lineno}): {exc.message}"
    if isinstance(exc, jinja2.TemplateError):
        return str(exc.message or exc)
    return f"{type(exc).__name__}: {exc}"


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key if isinstance(key, str) else repr(key): _json_safe(item)
                for key, item in value.items()}
    return repr(value)


def _task_dag(task: Any) -> Any:
    try:
        return task.dag
    except Exception:  # noqa: BLE001 - operators raise when not assigned to a DAG
        return None


def render_template_fields(task: Any, context: Context,
                           env: jinja2.Environment | None = None) -> dict[str, Any]:
    """Render each of ``task.template_fields`` in place; return the rendered values JSON-safe.

    Raises UpdraftTemplateError naming the field and the task when one cannot be rendered.
    """
    if env is None:
        env = get_jinja_env(_task_dag(task))
    extensions = tuple(getattr(task, "template_ext", ()) or ())
    task_id = getattr(task, "task_id", "?")
    seen: set[int] = {id(task)}
    shown: dict[str, Any] = {}
    for name in getattr(task, "template_fields", ()) or ():
        value = _field_value(task, name)
        if value is None or (callable(value) and not _resolvable(value)):
            shown[name] = _json_safe(value)
            continue
        try:
            rendered = render_template(value, context, env, extensions, seen)
        except Exception as exc:
            raise UpdraftTemplateError(
                f"cannot render template field {name!r} of task {task_id!r}: "
                f"{_describe_error(exc, env)}", task_id=task_id, field=name) from exc
        setattr(task, name, rendered)
        shown[name] = _json_safe(rendered)
    return shown


# -- the context --------------------------------------------------------------------------------

_NOTSET: Any = object()


class _AttrDict(dict):
    """A dict whose keys are also attributes (``var.value`` in Python as in Jinja)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class VariableAccessor:
    """``var.value.KEY`` / ``var.json.KEY``: reads a variable when a template touches it."""

    def __init__(self, *, deserialize_json: bool) -> None:
        self._deserialize_json = deserialize_json

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        from updraft.models.variable import Variable

        return _masked_variable(key, Variable.get(key, deserialize_json=self._deserialize_json))

    def get(self, key: str, default: Any = _NOTSET) -> Any:
        """The variable ``key``; ``default`` if given and it does not exist (else KeyError)."""
        from updraft.models.variable import Variable

        if default is _NOTSET:
            return _masked_variable(
                key, Variable.get(key, deserialize_json=self._deserialize_json))
        value = Variable.get(key, default_var=default, deserialize_json=self._deserialize_json)
        return value if value is default else _masked_variable(key, value)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, VariableAccessor)
                and other._deserialize_json == self._deserialize_json)

    def __hash__(self) -> int:
        return hash((VariableAccessor, self._deserialize_json))

    def __repr__(self) -> str:
        return "<VariableAccessor (dynamic access)>"


def _masked_variable(key: str, value: Any) -> Any:
    """``value`` of variable ``key``, registered with the masker whole when the key looks
    secret: a JSON variable's every string and number too, so that ``var.json.db_password.pw``
    is masked in the rendered fields and the log like ``var.value.db_password``."""
    from updraft.secrets import mask_secret, should_hide_value_for_key

    if should_hide_value_for_key(key):
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
            else:
                mask_secret(item)
    return value


def _masked_connection(conn: Any) -> Any:
    """``conn``, with its password also registered as it appears inside ``get_uri()`` (percent
    encoded), so a URI rendered into a template field is masked too."""
    from urllib.parse import quote, quote_plus

    from updraft.secrets import mask_secret

    password = getattr(conn, "password", None)
    if isinstance(password, str) and password:
        mask_secret(password)
        mask_secret(quote(password, safe=""))
        mask_secret(quote_plus(password))
    return conn


class ConnectionAccessor:
    """``conn.MY_ID.host`` / ``conn.get('MY_ID')``: reads a connection when touched."""

    def __getattr__(self, conn_id: str) -> Any:
        if conn_id.startswith("__"):
            raise AttributeError(conn_id)
        from updraft.models.connection import Connection

        return _masked_connection(Connection.get_connection_from_secrets(conn_id))

    def get(self, conn_id: str, default_conn: Any = None) -> Any:
        """The connection ``conn_id``, or ``default_conn`` if it does not exist."""
        from updraft.exceptions import UpdraftNotFoundException
        from updraft.models.connection import Connection

        try:
            return _masked_connection(Connection.get_connection_from_secrets(conn_id))
        except UpdraftNotFoundException:
            return default_conn

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConnectionAccessor)

    def __hash__(self) -> int:
        return hash(ConnectionAccessor)

    def __repr__(self) -> str:
        return "<ConnectionAccessor (dynamic access)>"


def _aware_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        # Stored dates are UTC; a naive one lost its zone on the way, not its meaning.
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _lazy_dask_client() -> Any:
    from updraft.dask_support import LazyDaskClient

    return LazyDaskClient()


def build_context(*, dag: Any, task: Any, ti: Any, dag_run: Any, params: dict | None,
                  conf_value: Any = None,
                  prev_data_interval_start_success: datetime | None = None,
                  prev_data_interval_end_success: datetime | None = None,
                  prev_start_date_success: datetime | None = None,
                  prev_end_date_success: datetime | None = None,
                  triggering_asset_events: Any = None,
                  extra: dict[str, Any] | None = None) -> Context:
    """The context dict a task try gets, with Airflow's keys (see KNOWN_CONTEXT_KEYS)."""
    start = _aware_utc(getattr(dag_run, "data_interval_start", None))
    end = _aware_utc(getattr(dag_run, "data_interval_end", None))
    logical_date = (_aware_utc(getattr(dag_run, "logical_date", None)) or start
                    or _aware_utc(getattr(dag_run, "run_after", None))
                    or _aware_utc(getattr(dag_run, "start_date", None)))
    if logical_date is None:
        raise ValueError(f"dag run {getattr(dag_run, 'run_id', '?')!r} has no logical date")
    if start is None or end is None:
        timetable = getattr(dag, "timetable", None)
        if timetable is not None:
            interval = timetable.infer_manual_data_interval(run_after=logical_date)
            start, end = start or interval.start, end or interval.end
        else:
            start, end = start or logical_date, end or logical_date

    ds = logical_date.strftime("%Y-%m-%d")
    ds_nodash = ds.replace("-", "")
    ts = logical_date.isoformat()
    dag_id = getattr(dag, "dag_id", None) or getattr(ti, "dag_id", "")
    task_id = getattr(task, "task_id", None) or getattr(ti, "task_id", "")
    if conf_value is None:
        from updraft.config import conf as conf_value
    services = getattr(ti, "task_services", None)
    events = triggering_asset_events
    if events is None:
        # The events that started this run, read on first use (updraft.assets).
        from updraft.assets import triggering_events_accessor

        events = triggering_events_accessor(services, getattr(dag_run, "dag_id", dag_id),
                                            getattr(dag_run, "run_id", None))
    yesterday = logical_date - timedelta(days=1)
    tomorrow = logical_date + timedelta(days=1)

    context: Context = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "run_id": getattr(dag_run, "run_id", None),
        "logical_date": logical_date,
        "execution_date": logical_date,
        "data_interval_start": start,
        "data_interval_end": end,
        "ds": ds,
        "ds_nodash": ds_nodash,
        "ts": ts,
        "ts_nodash": logical_date.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
        # Deprecated in Airflow 2 yet still common in DAG files.
        "next_ds": end.strftime("%Y-%m-%d"),
        "next_ds_nodash": end.strftime("%Y%m%d"),
        "next_execution_date": end,
        "yesterday_ds": yesterday.strftime("%Y-%m-%d"),
        "yesterday_ds_nodash": yesterday.strftime("%Y%m%d"),
        "tomorrow_ds": tomorrow.strftime("%Y-%m-%d"),
        "tomorrow_ds_nodash": tomorrow.strftime("%Y%m%d"),
        "prev_data_interval_start_success": _aware_utc(prev_data_interval_start_success),
        "prev_data_interval_end_success": _aware_utc(prev_data_interval_end_success),
        "prev_start_date_success": _aware_utc(prev_start_date_success),
        "prev_end_date_success": _aware_utc(prev_end_date_success),
        "params": params if params is not None else {},
        "conf": conf_value,
        "var": _AttrDict(value=VariableAccessor(deserialize_json=False),
                         json=VariableAccessor(deserialize_json=True)),
        "conn": ConnectionAccessor(),
        "macros": _macros,
        "map_index_template": None,
        "inlets": list(getattr(task, "inlets", None) or []),
        "outlets": list(getattr(task, "outlets", None) or []),
        # Asset events: annotate this try's (outlet_events), read the inlets' (inlet_events).
        "outlet_events": _outlet_events(task),
        "inlet_events": _inlet_events(task, services),
        "test_mode": False,
        "expanded_ti_count": None,
        "templates_dict": None,
        "task_instance_key_str": f"{dag_id}__{task_id}__{ds_nodash}",
        "triggering_asset_events": events,
        "triggering_dataset_events": events,
        # What operators and sensors may ask about other runs (updraft.task_services).
        "task_services": getattr(ti, "task_services", None),
        # The Dask cluster the try runs on; connects on first use (updraft.dask_support).
        "dask_client": _lazy_dask_client(),
    }
    if extra:
        context.update(extra)
    return context


def _outlet_events(task: Any) -> Any:
    from updraft.assets import OutletEventAccessors

    return OutletEventAccessors(getattr(task, "outlets", None) or [])


def _inlet_events(task: Any, services: Any) -> Any:
    from updraft.assets import InletEventsAccessors

    return InletEventsAccessors(getattr(task, "inlets", None) or [], services)


KNOWN_CONTEXT_KEYS: frozenset[str] = frozenset({
    "dag", "task", "ti", "task_instance", "dag_run", "run_id", "logical_date",
    "execution_date", "data_interval_start", "data_interval_end", "ds", "ds_nodash", "ts",
    "ts_nodash", "ts_nodash_with_tz", "next_ds", "next_ds_nodash", "next_execution_date",
    "yesterday_ds", "yesterday_ds_nodash", "tomorrow_ds", "tomorrow_ds_nodash",
    "prev_data_interval_start_success", "prev_data_interval_end_success",
    "prev_start_date_success", "prev_end_date_success", "params", "conf", "var", "conn",
    "macros", "map_index_template", "inlets", "outlets", "test_mode", "expanded_ti_count",
    "templates_dict", "task_instance_key_str", "triggering_asset_events",
    "triggering_dataset_events", "task_services", "dask_client", "outlet_events",
    "inlet_events",
})

