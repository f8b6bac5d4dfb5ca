"""The trigger form, generated from a DAG's params (JSON Schemas), and reading it back.

Each param becomes one field: integer/number -> number input with min/max, enum -> select,
boolean -> checkbox, string -> text (date/date-time formats -> date inputs), array/object ->
a JSON textarea. The form also has a free JSON ``conf`` box; fields win over it key by key.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from updraft.params import ParamsDict


@dataclass
class ParamField:
    """One input of the trigger form."""

    name: str
    kind: str  # number, integer, select, checkbox, text, date, datetime, json
    value: Any
    description: str | None
    required: bool
    nullable: bool
    minimum: Any = None
    maximum: Any = None
    options: tuple = ()
    error: str | None = None

    @property
    def input_value(self) -> str:
        if self.value is None:
            return ""
        if self.kind == "json":
            return json.dumps(self.value, indent=2)
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


def _types(schema: dict) -> tuple[list[str], bool]:
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else ([declared] if declared else [])
    nullable = "null" in types
    return [t for t in types if t != "null"], nullable


def param_fields(params: ParamsDict, values: dict | None = None) -> list[ParamField]:
    """The form fields of ``params``, filled with ``values`` (else the defaults)."""
    values = values or {}
    fields = []
    for name, param in params.items_params():
        schema = param.schema or {}
        types, nullable = _types(schema)
        kind = "text"
        if "enum" in schema:
            kind = "select"
        elif types[:1] == ["integer"]:
            kind = "integer"
        elif types[:1] == ["number"]:
            kind = "number"
        elif types[:1] == ["boolean"]:
            kind = "checkbox"
        elif types[:1] in (["array"], ["object"]):
            kind = "json"
        elif schema.get("format") == "date":
            kind = "date"
        elif schema.get("format") == "date-time":
            kind = "datetime"
        elif not types and isinstance(param.value, (dict, list)):
            kind = "json"
        value = values.get(name, param.value if param.has_value() else None)
        fields.append(ParamField(
            name=name, kind=kind, value=value, description=param.description,
            required=not param.has_value() and not nullable, nullable=nullable,
            minimum=schema.get("minimum"), maximum=schema.get("maximum"),
            options=tuple(schema.get("enum", ()))))
    return fields


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use null or a string)")


def load_json(text: str, what: str) -> tuple[Any, str | None]:
    """``text`` parsed as strict JSON (no NaN or Infinity, at most 64 levels deep), or None and
    a sentence saying why not."""
    from web.api.common import json_depth_error
    from web.api.openapi import MAX_JSON_DEPTH

    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        return None, (f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                      f"{exc.colno}")
    except RecursionError:
        return None, f"{what} is nested deeper than {MAX_JSON_DEPTH} levels"
    except ValueError as exc:
        return None, f"{what}: {exc}"
    problem = json_depth_error(value)
    if problem is not None:
        return None, f"{what} cannot be taken: {problem}"
    return value, None


def read_conf(params: ParamsDict, form) -> tuple[dict, dict[str, str]]:
    """The conf a submitted trigger form asks for, and the errors per field name."""
    errors: dict[str, str] = {}
    conf: dict[str, Any] = {}
    raw_conf = (form.get("conf") or "").strip()
    if raw_conf:
        loaded, problem = load_json(raw_conf, "conf")
        if problem is not None:
            errors["conf"] = problem
            loaded = {}
        if not isinstance(loaded, dict):
            errors["conf"] = f"conf must be a JSON object, got {type(loaded).__name__}"
            loaded = {}
        conf.update(loaded)
    for field in param_fields(params):
        key = f"param.{field.name}"
        if field.kind == "checkbox":
            if f"{key}.present" in form:
                conf[field.name] = key in form
            continue
        if key not in form:
            continue
        text = form.get(key, "")
        if text == "" and raw_conf and field.name in conf:
            continue  # the JSON box gave it
        if text == "":
            if field.nullable or field.kind == "text":
                conf[field.name] = None if field.nullable else ""
            continue
        if field.kind == "integer":
            if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
                errors[field.name] = f"{field.name}: {text[:40]!r} is not a whole number"
            else:
                conf[field.name] = int(text)
        elif field.kind == "number":
            try:
                number = float(text) if any(c in text for c in ".eE") else int(text)
            except ValueError:
                number = None
            if number is None or (isinstance(number, float) and not math.isfinite(number)):
                errors[field.name] = f"{field.name}: {text[:40]!r} is not a number"
            else:
                conf[field.name] = number
        elif field.kind == "json":
            value, problem = load_json(text, field.name)
            if problem is not None:
                errors[field.name] = problem
            else:
                conf[field.name] = value
        elif field.kind == "select":
            options = {str(o): o for o in field.options}
            conf[field.name] = options.get(text, text)
        else:
            conf[field.name] = text
    if not errors:
        for name, param in params.items_params():
            from updraft.exceptions import ParamValidationError
            from updraft.params import NO_VALUE

            try:
                param.resolve(conf.get(name, NO_VALUE), name=name)
            except ParamValidationError as exc:
                errors[name] = str(exc)
    return conf, errors


__all__ = ["ParamField", "param_fields", "read_conf"]
