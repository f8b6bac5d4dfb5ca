"""DAG <-> JSON: the form of a DAG that the store keeps and the scheduler and web read.

The scheduler and the web never import DAG files; they read this JSON. ``serialize_dag``
turns a DAG object into ``{"v": 1, "dag": {...}}`` (JSON-safe, deterministic), and
``deserialize_dag`` turns it back into a read-only :class:`SerializedDAG` whose tasks
(:class:`SerializedTask`) carry the attribute names the run logic and the store read on
operators, so ``specs_from_dag`` and ``row_defaults_for`` work on either. Deserializing
imports no DAG-file code: built-in timetables are rebuilt, a timetable class registered as an
extension (``updraft.timetables`` entry point or plugins folder) is rebuilt from the registry,
and any other custom timetable keeps its summary and data and refuses to compute, saying how
to register it (see :class:`UnresolvedTimetable`). Unknown versions and unknown fields are
rejected with a :class:`SerializationError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from updraft.params import ParamsDict
from updraft.schedules import (
    ScheduleError,
    Timetable,
    coerce_datetime,
    deserialize_timetable,
    load_registered_timetable,
    parse_timezone,
    serialize_timetable,
    timezone_name,
)
from updraft.serialized_objects import (
    ExpandInput,
    SerializationError,
    SerializedDAG,
    SerializedTask,
    UnresolvedTimetable,
)
from updraft.state import TriggerRule

FORMAT_VERSION = 1


# -- JSON-safe values ----------------------------------------------------------------------------

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _stable_repr(value: Any) -> str:
    """``repr`` without memory addresses, so two parses of one file give the same JSON."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<callable {getattr(value, '__module__', '?')}.{value.__qualname__}>"
    return _ADDRESS.sub("", repr(value))


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: dates as ISO text, XComArgs as references, else repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((json_safe(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    from updraft.xcom_arg import XComArg

    if isinstance(value, XComArg):
        return {"__xcomarg__": json_safe(value.to_json())}
    return _stable_repr(value)


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _iso(value: datetime | None, tz: Any) -> str | None:
    return None if value is None else coerce_datetime(value, tz).isoformat()


def _has_callback(value: Any) -> bool:
    return bool(value)


# -- serializing ---------------------------------------------------------------------------------


def _expand_input_json(task: Any) -> dict | None:
    if not getattr(task, "is_mapped", False):
        return None
    from updraft.xcom_arg import XComArg

    raw = task.expand_input
    if task.expand_kind == "list_of_dicts":
        names: set[str] = set()
        if isinstance(raw, (list, tuple)):
            for item in raw:
                if isinstance(item, dict):
                    names.update(item)
        value: Any = json_safe(raw)
    else:
        names = set(raw)
        value = {name: json_safe(v) for name, v in raw.items()}
        for name, v in raw.items():
            if isinstance(v, XComArg):
                continue
            value[name] = json_safe(list(v.items()) if isinstance(v, dict) else list(v))
    return {"kind": task.expand_kind, "mapped_argument_names": sorted(names),
            "upstream_task_ids": sorted(task.mapped_task_ids()), "value": value}


def _template_values(task: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if getattr(task, "is_mapped", False):
        source = task.partial_kwargs
        for name in task.template_fields or ():
            if name in source:
                values[name] = json_safe(source[name])
        return values
    for name in task.template_fields or ():
        values[name] = json_safe(getattr(task, name, None))
    return values


def _email_list(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, str):
        return [e.strip() for e in value.replace(";", ",").split(",") if e.strip()]
    return [str(e) for e in value]


def _serialize_task(task: Any, tz: Any) -> dict[str, Any]:
    cls = task.operator_class if getattr(task, "is_mapped", False) else type(task)
    group = task.task_group
    return {
        "task_id": task.task_id,
        "label": task.label,
        "task_type": task.task_type,
        "operator_name": task.operator_name,
        "task_module": cls.__module__,
        "task_group_id": group.group_id if group is not None else None,
        "ui_color": task.ui_color,
        "ui_fgcolor": task.ui_fgcolor,
        "upstream_task_ids": sorted(task.upstream_task_ids),
        "downstream_task_ids": sorted(task.downstream_task_ids),
        "trigger_rule": str(TriggerRule(str(task.trigger_rule)).value),
        "retries": int(task.retries or 0),
        "retry_delay": _seconds(task.retry_delay),
        "retry_exponential_backoff": bool(task.retry_exponential_backoff),
        "max_retry_delay": _seconds(task.max_retry_delay),
        "depends_on_past": bool(task.depends_on_past),
        "wait_for_downstream": bool(task.wait_for_downstream),
        "ignore_first_depends_on_past": bool(task.ignore_first_depends_on_past),
        "wait_for_past_depends_before_skipping": bool(task.wait_for_past_depends_before_skipping),
        "execution_timeout": _seconds(task.execution_timeout),
        "pool": task.pool,
        "pool_slots": int(task.pool_slots),
        "queue": task.queue,
        "priority_weight": int(task.priority_weight),
        "weight_rule": str(task.weight_rule),
        "sla": _seconds(task.sla),
        "owner": str(task.owner),
        "email": _email_list(task.email),
        "email_on_failure": bool(task.email_on_failure),
        "email_on_retry": bool(task.email_on_retry),
        "start_date": _iso(task.start_date, tz),
        "end_date": _iso(task.end_date, tz),
        "is_mapped": bool(task.is_mapped),
        "expand_input": _expand_input_json(task),
        "is_setup": bool(task.is_setup),
        "is_teardown": bool(task.is_teardown),
        "on_failure_fail_dagrun": bool(task.on_failure_fail_dagrun),
        "template_fields": list(task.template_fields or ()),
        "template_ext": list(task.template_ext or ()),
        "template_fields_renderers": dict(getattr(cls, "template_fields_renderers", None)
                                          or {}),
        "template_field_values": _template_values(task),
        "doc_md": task.doc_md,
        "task_display_name": task.task_display_name,
        "is_sensor": bool(task.is_sensor),
        "max_active_tis_per_dag": task.max_active_tis_per_dag,
        "max_active_tis_per_dagrun": task.max_active_tis_per_dagrun,
        "executor_config": json_safe(task.executor_config or {}),
        "executor": task.executor,
        "do_xcom_push": bool(task.do_xcom_push),
        "multiple_outputs": bool(task.multiple_outputs),
        "has_on_execute_callback": _has_callback(task.on_execute_callback),
        "has_on_failure_callback": _has_callback(task.on_failure_callback),
        "has_on_success_callback": _has_callback(task.on_success_callback),
        "has_on_retry_callback": _has_callback(task.on_retry_callback),
        "has_on_skipped_callback": _has_callback(task.on_skipped_callback),
        "params": json_safe(task.params.serialize()),
        **_lineage_json(task),
    }


def _lineage_json(task: Any) -> dict[str, Any]:
    """``outlets`` / ``inlets`` (assets, aliases, references), present only when the task has
    some, so DAGs without assets keep their hash."""
    from updraft.assets import lineage_to_json

    found: dict[str, Any] = {}
    for name in ("outlets", "inlets"):
        values = getattr(task, name, None) or []
        if getattr(task, "is_mapped", False):
            values = task.partial_kwargs.get(name) or []
        entries = [e for e in (lineage_to_json(v) for v in values) if e is not None]
        if entries:
            found[name] = entries
    return found


def _asset_settings_json(dag: Any) -> dict[str, Any]:
    """The DAG's asset batching settings (ADR 10), present only when not the defaults."""
    found: dict[str, Any] = {}
    size = getattr(dag, "asset_batch_size", 1)
    if size != 1:
        found["asset_batch_size"] = size
    return found


def serialize_dag(dag: Any, *, file_hash: str | None = None) -> dict[str, Any]:
    """The JSON form of ``dag``: ``{"v": 1, "dag": {...}}``, deterministic for one DAG file."""
    tz = dag.timezone
    timetable = dag.timetable
    edges = [{"upstream": up, "downstream": down, "info": json_safe(info)}
             for (up, down), info in sorted(dag.edge_info.items())]
    body = {
        "dag_id": dag.dag_id,
        "fileloc": str(dag.fileloc),
        "file_hash": file_hash,
        "description": dag.description,
        "doc_md": dag.doc_md,
        "owner": dag.owner,
        "owner_links": json_safe(dag.owner_links or {}),
        "tags": list(dag.tags),
        "timezone": timezone_name(tz),
        "start_date": _iso(dag.start_date, tz),
        "end_date": _iso(dag.end_date, tz),
        "timetable_summary": str(timetable.summary),
        "timetable_description": str(timetable.description),
        "timetable": serialize_timetable(timetable),
        "catchup": bool(dag.catchup),
        "max_active_runs": int(dag.max_active_runs),
        "max_active_tasks": int(dag.max_active_tasks),
        "max_consecutive_failed_dag_runs": int(dag.max_consecutive_failed_dag_runs or 0),
        "dagrun_timeout": _seconds(dag.dagrun_timeout),
        "is_paused_upon_creation": dag.is_paused_upon_creation,
        "fail_stop": bool(dag.fail_stop),
        "render_template_as_native_obj": bool(dag.render_template_as_native_obj),
        "default_view": dag.default_view,
        "orientation": dag.orientation,
        "dag_display_name": dag.dag_display_name,
        "has_on_success_callback": _has_callback(dag.on_success_callback),
        "has_on_failure_callback": _has_callback(dag.on_failure_callback),
        "has_sla_miss_callback": _has_callback(dag.sla_miss_callback),
        "params": json_safe(dag.params.serialize()),
        "edge_info": edges,
        "task_group": dag.task_group.to_json(),
        "tasks": [_serialize_task(t, tz) for t in dag.tasks],
        **_asset_settings_json(dag),
    }
    data = {"v": FORMAT_VERSION, "dag": body}
    _check_json(data, dag.dag_id)
    return data


def _check_json(data: dict, dag_id: str) -> None:
    try:
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"DAG {dag_id!r} cannot be serialized: {exc}") from None


def dag_hash(data: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a serialized DAG: its version."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- deserializing -------------------------------------------------------------------------------

# Each field: (check, required). A check takes the value and returns whether it is valid.
_Check = Callable[[Any], bool]


def _opt(check: _Check) -> _Check:
    return lambda v: v is None or check(v)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_dict(v: Any) -> bool:
    return isinstance(v, dict)


def _is_str_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(i, str) for i in v)


def _is_list(v: Any) -> bool:
    return isinstance(v, list)


def _is_any(_v: Any) -> bool:
    return True


_TYPE_NAMES = {_is_str: "a string", _is_bool: "a boolean", _is_int: "an integer",
               _is_num: "a number", _is_dict: "an object", _is_str_list: "a list of strings",
               _is_list: "a list"}

DAG_FIELDS: dict[str, _Check] = {
    "dag_id": _is_str, "fileloc": _is_str, "file_hash": _opt(_is_str),
    "description": _opt(_is_str), "doc_md": _opt(_is_str), "owner": _is_str,
    "owner_links": _is_dict, "tags": _is_str_list, "timezone": _is_str,
    "start_date": _opt(_is_str), "end_date": _opt(_is_str), "timetable_summary": _is_str,
    "timetable_description": _is_str, "timetable": _is_dict, "catchup": _is_bool,
    "max_active_runs": _is_int, "max_active_tasks": _is_int,
    "max_consecutive_failed_dag_runs": _is_int, "dagrun_timeout": _opt(_is_num),
    "is_paused_upon_creation": _opt(_is_bool), "fail_stop": _is_bool,
    "render_template_as_native_obj": _is_bool, "default_view": _opt(_is_str),
    "orientation": _is_str, "dag_display_name": _is_str, "has_on_success_callback": _is_bool,
    "has_on_failure_callback": _is_bool, "has_sla_miss_callback": _is_bool,
    "params": _is_dict, "edge_info": _is_list, "task_group": _is_dict, "tasks": _is_list,
}

TASK_FIELDS: dict[str, _Check] = {
    "task_id": _is_str, "label": _is_str, "task_type": _is_str, "operator_name": _is_str,
    "task_module": _is_str, "task_group_id": _opt(_is_str), "ui_color": _is_str,
    "ui_fgcolor": _is_str, "upstream_task_ids": _is_str_list,
    "downstream_task_ids": _is_str_list, "trigger_rule": _is_str, "retries": _is_int,
    "retry_delay": _is_num, "retry_exponential_backoff": _is_bool,
    "max_retry_delay": _opt(_is_num), "depends_on_past": _is_bool,
    "wait_for_downstream": _is_bool, "ignore_first_depends_on_past": _is_bool,
    "wait_for_past_depends_before_skipping": _is_bool, "execution_timeout": _opt(_is_num),
    "pool": _is_str, "pool_slots": _is_int, "queue": _is_str, "priority_weight": _is_int,
    "weight_rule": _is_str, "sla": _opt(_is_num), "owner": _is_str, "email": _is_str_list,
    "email_on_failure": _is_bool, "email_on_retry": _is_bool, "start_date": _opt(_is_str),
    "end_date": _opt(_is_str), "is_mapped": _is_bool, "expand_input": _opt(_is_dict),
    "is_setup": _is_bool, "is_teardown": _is_bool, "on_failure_fail_dagrun": _is_bool,
    "template_fields": _is_str_list, "template_ext": _is_str_list,
    "template_fields_renderers": _is_dict, "template_field_values": _is_dict,
    "doc_md": _opt(_is_str), "task_display_name": _is_str, "is_sensor": _is_bool,
    "max_active_tis_per_dag": _opt(_is_int), "max_active_tis_per_dagrun": _opt(_is_int),
    "executor_config": _is_dict, "executor": _opt(_is_str), "do_xcom_push": _is_bool,
    "multiple_outputs": _is_bool, "has_on_execute_callback": _is_bool,
    "has_on_failure_callback": _is_bool, "has_on_success_callback": _is_bool,
    "has_on_retry_callback": _is_bool, "has_on_skipped_callback": _is_bool, "params": _is_dict,
}

EXPAND_FIELDS: dict[str, _Check] = {
    "kind": _is_str, "mapped_argument_names": _is_str_list, "upstream_task_ids": _is_str_list,
    "value": _is_any,
}
EDGE_FIELDS: dict[str, _Check] = {"upstream": _is_str, "downstream": _is_str, "info": _is_dict}
GROUP_FIELDS: dict[str, _Check] = {
    "group_id": _opt(_is_str), "label": _opt(_is_str), "tooltip": _is_str, "ui_color": _is_str,
    "prefix_group_id": _is_bool, "children": _is_list,
}
#: Fields written only when they differ from their default (older DAGs lack them).
OPTIONAL_DAG_FIELDS: dict[str, _Check] = {
    "asset_batch_size": _is_int,
}
OPTIONAL_TASK_FIELDS: dict[str, _Check] = {"outlets": _is_list, "inlets": _is_list}

PARAM_FIELDS: dict[str, _Check] = {
    "value": _is_any, "has_value": _is_bool, "description": _opt(_is_str), "schema": _is_dict,
}


def _check_fields(obj: Any, fields: Mapping[str, _Check], where: str,
                  optional: Mapping[str, _Check] | None = None) -> None:
    """Reject unknown, missing and mistyped fields of ``obj`` with a message naming them."""
    if not isinstance(obj, dict):
        raise SerializationError(f"serialized DAG has {type(obj).__name__} where an object is "
                                 f"expected{where}")
    for name, check in (optional or {}).items():
        if name in obj and not check(obj[name]):
            raise SerializationError(f"serialized DAG field {name!r}{where} has an invalid "
                                     f"value {obj[name]!r}")
    unknown = sorted(set(obj) - set(fields) - set(optional or {}))
    if unknown:
        raise SerializationError(f"serialized DAG has unknown field {unknown[0]!r}{where}")
    for name, check in fields.items():
        if name not in obj:
            raise SerializationError(f"serialized DAG is missing field {name!r}{where}")
        if not check(obj[name]):
            expected = _TYPE_NAMES.get(check, "another type")
            raise SerializationError(f"serialized DAG field {name!r}{where} has an invalid "
                                     f"value {obj[name]!r} (expected {expected})")


def _td(value: float | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)


def _date(value: str | None, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        return coerce_datetime(value)
    except ScheduleError as exc:
        raise SerializationError(f"serialized DAG has an invalid date{where}: {exc}") from None


def _params(data: dict, where: str) -> ParamsDict:
    for name, param in data.items():
        _check_fields(param, PARAM_FIELDS, f" in param {name!r}{where}")
    return ParamsDict.deserialize(data)


def _check_group(group: Any, where: str) -> None:
    _check_fields(group, GROUP_FIELDS, f" in task group{where}")
    for child in group["children"]:
        if isinstance(child, dict):
            _check_group(child, where)
        elif not isinstance(child, str):
            raise SerializationError(f"serialized DAG has a task group child {child!r} that "
                                     f"is neither a task id nor a group{where}")


def _timetable(data: dict, summary: str, description: str, where: str) -> Timetable:
    if "__type" in data:
        # A registered class: rebuilt from the registry only (ADR 3). A node where it is not
        # registered keeps what the web can show and refuses to compute, saying why.
        name = data["__type"]
        if set(data) - {"__type", "data"} or not isinstance(name, str) or \
                not isinstance(data.get("data", {}), dict):
            raise SerializationError(f"serialized DAG has an invalid registered timetable"
                                     f"{where}")
        try:
            return load_registered_timetable(name, data.get("data") or {})
        except ScheduleError as exc:
            return UnresolvedTimetable(name, data.get("data") or {}, summary, description,
                                       problem=str(exc))
    if data.get("type") == "custom":
        # Rebuilding an unregistered class would import user code; keep what the web can show.
        unknown = sorted(set(data) - {"type", "class", "data"})
        if unknown or not isinstance(data.get("class"), str):
            raise SerializationError(f"serialized DAG has an invalid custom timetable{where}")
        return UnresolvedTimetable(data["class"], data.get("data") or {}, summary, description)
    try:
        return deserialize_timetable(data)
    except (ScheduleError, ValueError, TypeError, KeyError) as exc:
        raise SerializationError(f"serialized DAG has an invalid timetable{where}: "
                                 f"{exc}") from None


def _expand_input(data: dict | None, where: str) -> ExpandInput | None:
    if data is None:
        return None
    _check_fields(data, EXPAND_FIELDS, f" in the expand input{where}")
    kind = data["kind"]
    value = data["value"]
    valid = {"dict_of_lists": (dict,), "list_of_dicts": (list, dict)}
    if kind not in valid or not isinstance(value, valid[kind]):
        raise SerializationError(f"serialized DAG has an invalid expand input of kind "
                                 f"{kind!r}{where}")
    return ExpandInput(kind=kind, mapped_argument_names=tuple(data["mapped_argument_names"]),
                       upstream_task_ids=frozenset(data["upstream_task_ids"]), value=value)


def _deserialize_task(data: Any, dag_id: str) -> SerializedTask:
    task_id = data.get("task_id") if isinstance(data, dict) else None
    where = f" in task {task_id!r}" if isinstance(task_id, str) else " in a task"
    _check_fields(data, TASK_FIELDS, where, OPTIONAL_TASK_FIELDS)
    if not TriggerRule.is_valid(data["trigger_rule"]):
        raise SerializationError(f"serialized DAG has an unknown trigger rule "
                                 f"{data['trigger_rule']!r}{where}")
    values = dict(data)
    for name in ("upstream_task_ids", "downstream_task_ids"):
        values[name] = frozenset(data[name])
    for name in ("retry_delay", "max_retry_delay", "execution_timeout", "sla"):
        values[name] = _td(data[name])
    for name in ("start_date", "end_date"):
        values[name] = _date(data[name], where)
    for name in ("email", "template_fields", "template_ext"):
        values[name] = tuple(data[name])
    values["trigger_rule"] = TriggerRule(data["trigger_rule"])
    values["expand_input"] = _expand_input(data["expand_input"], where)
    values["params"] = _params(data["params"], where)
    for name in ("outlets", "inlets"):
        values[name] = _lineage(data.get(name) or [], f" in {name}{where}")
    return SerializedTask(dag_id=dag_id, **values)


def _lineage(entries: list, where: str) -> tuple:
    from updraft.assets import lineage_from_json

    try:
        return tuple(lineage_from_json(e) for e in entries)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SerializationError(f"serialized DAG has an invalid asset{where}: "
                                 f"{exc}") from None


def deserialize_dag(data: Mapping[str, Any]) -> SerializedDAG:
    """A read-only DAG from ``serialize_dag``'s JSON; SerializationError if it cannot be read."""
    if not isinstance(data, Mapping):
        raise SerializationError(f"serialized DAG must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"v", "dag"})
    if unknown:
        raise SerializationError(f"serialized DAG has unknown field {unknown[0]!r}")
    version = data.get("v")
    if version != FORMAT_VERSION:
        raise SerializationError(f"serialized DAG has unknown version {version!r}; this "
                                 f"Updraft reads version {FORMAT_VERSION}")
    body = data.get("dag")
    dag_id = body.get("dag_id") if isinstance(body, dict) else None
    where = f" in DAG {dag_id!r}" if isinstance(dag_id, str) else ""
    _check_fields(body, DAG_FIELDS, where, OPTIONAL_DAG_FIELDS)
    try:
        tz = parse_timezone(body["timezone"])
    except ScheduleError as exc:
        raise SerializationError(f"serialized DAG has an invalid timezone{where}: {exc}") from None

    tasks: dict[str, SerializedTask] = {}
    for raw in body["tasks"]:
        task = _deserialize_task(raw, body["dag_id"])
        if task.task_id in tasks:
            raise SerializationError(f"serialized DAG has task {task.task_id!r} twice{where}")
        tasks[task.task_id] = task
    for task in tasks.values():
        for rel in sorted(task.upstream_task_ids | task.downstream_task_ids):
            if rel not in tasks:
                raise SerializationError(f"serialized DAG task {task.task_id!r} refers to "
                                         f"task {rel!r}, which is not in the DAG{where}")

    edges: dict[tuple[str, str], dict] = {}
    for edge in body["edge_info"]:
        _check_fields(edge, EDGE_FIELDS, f" in edge_info{where}")
        edges[(edge["upstream"], edge["downstream"])] = dict(edge["info"])
    _check_group(body["task_group"], where)

    return SerializedDAG(
        dag_id=body["dag_id"], dag_hash=dag_hash(data), fileloc=body["fileloc"],
        file_hash=body["file_hash"], description=body["description"], doc_md=body["doc_md"],
        owner=body["owner"], owner_links=dict(body["owner_links"]), tags=tuple(body["tags"]),
        timezone=tz, start_date=_date(body["start_date"], where),
        end_date=_date(body["end_date"], where),
        timetable_summary=body["timetable_summary"],
        timetable_description=body["timetable_description"],
        timetable_json=body["timetable"],
        timetable=_timetable(body["timetable"], body["timetable_summary"],
                             body["timetable_description"], where),
        catchup=body["catchup"], max_active_runs=body["max_active_runs"],
        max_active_tasks=body["max_active_tasks"],
        max_consecutive_failed_dag_runs=body["max_consecutive_failed_dag_runs"],
        dagrun_timeout=_td(body["dagrun_timeout"]),
        is_paused_upon_creation=body["is_paused_upon_creation"],
        fail_stop=body["fail_stop"],
        render_template_as_native_obj=body["render_template_as_native_obj"],
        default_view=body["default_view"], orientation=body["orientation"],
        dag_display_name=body["dag_display_name"],
        has_on_success_callback=body["has_on_success_callback"],
        has_on_failure_callback=body["has_on_failure_callback"],
        has_sla_miss_callback=body["has_sla_miss_callback"],
        edge_info=edges, task_group_json=body["task_group"], task_dict=tasks,
        params=_params(body["params"], where),
        asset_batch_size=body.get("asset_batch_size", 1),
    )


__all__ = ["FORMAT_VERSION", "ExpandInput", "SerializationError", "SerializedDAG",
           "SerializedTask", "UnresolvedTimetable", "dag_hash", "deserialize_dag", "json_safe",
           "serialize_dag"]
