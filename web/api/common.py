"""What every API route shares: errors as problem+json, strict query parameters, JSON bodies
checked against the OpenAPI document, and sending commands to the scheduler over the bus.

Every parameter the document describes is checked here by the same rule the document states,
so a request the document calls valid is served and one it calls invalid gets a 400 that
names the parameter and the rule.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import current_app, jsonify, request

from web.api.openapi import MAX_INT, MAX_JSON_DEPTH, request_validator
from web.auth.permissions import current_user

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: What a NATS server takes in one message unless it says otherwise (its max_payload).
DEFAULT_MAX_PAYLOAD = 1024 * 1024

#: CommandError codes of the bus -> HTTP status
COMMAND_STATUS = {"not_found": 404, "bad_request": 400, "conflict": 409, "forbidden": 403,
                  "internal": 502, "unavailable": 503, "timeout": 503}


class ApiError(Exception):
    """An API request that cannot be served; becomes a problem+json answer."""

    def __init__(self, status: int, detail: str, title: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


# -- query parameters ------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]+")


def int_arg(name: str, default: int | None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    """An integer query parameter; 400 if it is empty, not an integer or out of range."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}")
    value = int(raw)
    if minimum is not None and value < minimum:
        raise ApiError(400, f"query parameter {name!r} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"query parameter {name!r} must be at most {maximum}, got {value}")
    return value


def bool_arg(name: str, default: bool | None = None) -> bool | None:
    """A boolean query parameter: ``true`` or ``false``; 400 otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")


def list_arg(name: str, choices: tuple[str, ...] | list[str] | None = None) -> list[str]:
    """A repeated query parameter (``?state=a&state=b``); each value one of ``choices``."""
    values = request.args.getlist(name)
    if choices is not None:
        bad = [v for v in values if v not in choices]
        if bad:
            raise ApiError(400, f"query parameter {name!r} must be one of "
                                f"{', '.join(choices)}; got {', '.join(map(repr, bad[:5]))}")
    return values


def str_arg(name: str, choices: tuple[str, ...] | list[str] | None = None,
            default: str | None = None) -> str | None:
    """A string query parameter, one of ``choices`` when given."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if choices is not None and raw not in choices:
        raise ApiError(400, f"query parameter {name!r} must be one of {', '.join(choices)}, "
                            f"got {raw!r}")
    return raw


def date_arg(name: str) -> datetime | None:
    """An RFC 3339 date-time query parameter (a filter: any year is fine); 400 otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        return parse_rfc3339(raw, clamp=True)
    except ValueError as exc:
        raise ApiError(400, f"query parameter {name!r}: {exc}") from None


def page_args() -> tuple[int, int]:
    """``limit`` (1..1000, default 100) and ``offset`` (0..2^31-1) from the query."""
    limit = int_arg("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = int_arg("offset", 0, minimum=0, maximum=MAX_INT)
    return limit, offset  # type: ignore[return-value]


def page(items_key: str, items: list[dict], total: int):
    """A JSON list answer: ``{<items_key>: [...], "total_entries": N}``."""
    return jsonify({items_key: items, "total_entries": total})


# -- dates -----------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})[Tt]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?"
    r"(?P<zone>[Zz]|(?P<sign>[+-])(?P<zh>[0-9]{2}):(?P<zm>[0-9]{2}))")
#: Bounds every store can compare with (MariaDB's DATETIME starts at year 1000).
_EARLIEST = datetime(1000, 1, 1, tzinfo=UTC)
_LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
#: The years a run's logical date may have: schedules add intervals, keep clear of 9999.
RUN_YEARS = (1900, 9000)


def parse_rfc3339(text: str, *, clamp: bool = False) -> datetime:
    """An aware UTC datetime from an RFC 3339 date-time; ValueError with the reason otherwise.

    A leap second (``:60``) is the last microsecond of its minute. With ``clamp`` (filters),
    times before year 1000 or after 9999 become those bounds; without it they are refused.
    """
    found = _RFC3339.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an RFC 3339 date-time with a timezone (for example "
                         "2024-01-31T06:00:00Z)")
    parts = {k: int(v) for k, v in found.groupdict().items()
             if v is not None and k not in ("zone", "sign", "fraction")}
    fraction = (found["fraction"] or "0")[:6].ljust(6, "0")
    second, leap = parts["second"], parts["second"] == 60
    if parts["hour"] > 23 or parts["minute"] > 59 or second > 60:
        raise ValueError(f"{text!r} is not a valid time of day")
    offset = timedelta(0)
    if found["sign"]:
        if parts["zh"] > 23 or parts["zm"] > 59:
            raise ValueError(f"{text!r} has an invalid timezone offset")
        offset = timedelta(hours=parts["zh"], minutes=parts["zm"])
        offset = -offset if found["sign"] == "-" else offset
    if parts["year"] == 0:
        if clamp:
            return _EARLIEST
        raise ValueError(f"{text!r}: year 0 does not exist")
    try:
        value = datetime(parts["year"], parts["month"], parts["day"], parts["hour"],
                         parts["minute"], 59 if leap else second,
                         999999 if leap else int(fraction), tzinfo=timezone(offset))
    except ValueError:
        raise ValueError(f"{text!r} is not a valid calendar date") from None
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        if not clamp:
            raise ValueError(f"{text!r} is out of range") from None
        return _EARLIEST if value.year < 5000 else _LATEST
    if clamp:
        return min(max(value, _EARLIEST), _LATEST)
    return value


def run_date(text: Any, where: str) -> datetime:
    """A run's logical date from a request: RFC 3339, years 1900 to 9000; ApiError 400."""
    if not isinstance(text, str):
        raise ApiError(400, f"{where} must be an RFC 3339 date-time string")
    try:
        value = parse_rfc3339(text)
    except ValueError as exc:
        raise ApiError(400, f"{where}: {exc}") from None
    low, high = RUN_YEARS
    if not (low <= int(text[:4]) <= high and low <= value.year <= high):
        raise ApiError(400, f"{where} must be between the years {low} and {high}, got {text!r}")
    return value


# -- JSON bodies -----------------------------------------------------------------------------

def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON (use null or a string)")


def json_depth_error(value: Any, limit: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``value`` cannot be stored as JSON (too deep, NaN or Infinity), or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{item} is not valid JSON"
        if isinstance(item, (dict, list)):
            if depth > limit:
                return f"it is nested deeper than {limit} levels"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return None


def parse_json_body() -> Any:
    """The request's JSON document; ApiError 415/400 for a wrong type or invalid JSON."""
    if not request.is_json:
        raise ApiError(415 if request.content_length or request.get_data(cache=True) else 400,
                       "send a JSON object with Content-Type: application/json")
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ApiError(400, f"the request body is nested deeper than {MAX_JSON_DEPTH} "
                            "levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    problem = json_depth_error(data)
    if problem is not None:
        raise ApiError(400, f"the request body cannot be taken: {problem}")
    return data


def json_body(schema: str) -> dict[str, Any]:
    """The request's JSON object, checked against the OpenAPI schema ``schema``: no unknown
    fields, required ones present, no null where a field is not nullable, types, lengths,
    patterns and ranges. 400 with the first problem found."""
    data = parse_json_body()
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    validator = request_validator(schema)
    errors = sorted(validator.iter_errors(data), key=_error_rank)
    if errors:
        raise ApiError(400, _describe(errors[0]))
    for name, value in list(data.items()):
        data[name] = _integral(value)
    return data


def _integral(value: Any) -> Any:
    """JSON Schema counts 2.0 as an integer: store it as 2."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


_RANK = {"type": 0, "required": 1, "additionalProperties": 2}


def _error_rank(error) -> tuple:
    # Errors about the body as a whole first, then by field; within one field the type first.
    return (len(error.absolute_path), _RANK.get(error.validator, 9),
            [str(p) for p in error.absolute_path])


def _where(error) -> str:
    path = list(error.absolute_path)
    if not path:
        return "the request body"
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"field {text!r}"


_TYPE_NAMES = {"string": "a string", "boolean": "a boolean", "integer": "an integer",
               "number": "a number", "object": "an object", "array": "a list", "null": "null"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    return {str: "a string", dict: "an object", list: "a list"}.get(type(value), "a value")


def _describe(error) -> str:
    """A precise sentence for one validation error."""
    where, kind, rule, value = _where(error), error.validator, error.validator_value, \
        error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "required":
        missing = [name for name in rule if name not in (value or {})]
        return f"field {missing[0]!r} is required"
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(value) - set(allowed))
        return (f"unknown field(s) {', '.join(map(repr, unknown))}: allowed are "
                f"{', '.join(allowed)}")
    if kind == "type":
        wanted = rule if isinstance(rule, list) else [rule]
        if value is None:
            return f"{where} must not be null"
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted if t != "null")
        return f"{where} must be {names}, got {_json_type(value)}"
    if kind == "enum":
        return f"{where} must be one of {', '.join(map(str, rule))}, got {value!r}"
    if kind == "minLength":
        return f"{where} must have at least {rule} character(s)"
    if kind == "maxLength":
        return f"{where} must have at most {rule} characters, got {len(value)}"
    if kind == "minimum":
        return f"{where} must be at least {rule}, got {value}"
    if kind == "maximum":
        return f"{where} must be at most {rule}, got {value}"
    if kind == "pattern":
        rule_text = schema.get("description") or f"the pattern {rule}"
        return f"{where} is invalid ({value!r}): it must be {rule_text}"
    if kind == "oneOf":
        return f"{where} must be a string or an object, got {_json_type(value)}"
    return f"{where}: {error.message}"


# -- commands to the scheduler ---------------------------------------------------------------

def max_payload() -> int:
    """The largest message the connected NATS server takes (its INFO ``max_payload``)."""
    try:
        from bus.connection import shared_bus

        bus = shared_bus(wait=1.0)
        limit = getattr(bus.nc, "max_payload", None) if bus.nc is not None else None
        return int(limit) if limit else DEFAULT_MAX_PAYLOAD
    except Exception:  # noqa: BLE001  (no bus: the send fails with its own reason)
        return DEFAULT_MAX_PAYLOAD


def check_payload_size(payload: dict[str, Any]) -> None:
    """413 naming the limit when ``payload`` cannot travel in one NATS message."""
    size = len(json.dumps(payload, default=str).encode("utf-8"))
    limit = max_payload()
    # The command's envelope (version, subject, headers) needs a little room too.
    if size + 512 > limit:
        raise ApiError(413, f"the request is too large for the bus: its command would be "
                            f"{size:,} bytes and NATS takes at most {limit:,} bytes per message "
                            "(the server's max_payload); send a smaller conf")


def send_command(verb: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Ask the scheduler to do ``verb`` over the bus; the reply's result, or an ApiError with
    the scheduler's reason (404/400/409/403), 413 when the command is larger than a NATS
    message may be, or 503 when the bus or scheduler is away."""
    user = current_user()
    payload = {k: v for k, v in payload.items() if v is not None}
    payload.setdefault("owner", user.username if user else None)
    check_payload_size(payload)
    timeout = float(current_app.config.get("UPDRAFT_COMMAND_TIMEOUT", 10.0))
    from bus.client import CommandError, request_command

    try:
        result = request_command(verb, payload, timeout=timeout)
    except CommandError as exc:
        from web.queries import scrub_credentials

        status = COMMAND_STATUS.get(exc.code, 400)
        message = scrub_credentials(exc.message)
        if status == 503:
            raise ApiError(503, f"the bus is down: {message}") from None
        if status == 502:
            raise ApiError(502, f"the scheduler failed to {verb}: {message}") from None
        raise ApiError(status, message) from None
    except Exception as exc:  # noqa: BLE001  (anything else: the command did not get through)
        if type(exc).__name__ == "MaxPayloadError":
            raise ApiError(413, f"the request is too large for the bus: NATS takes at most "
                                f"{max_payload():,} bytes per message (the server's "
                                "max_payload); send a smaller conf") from None
        from web.queries import scrub_credentials

        log.warning("command %s not delivered: %s", verb, exc)
        raise ApiError(503, scrub_credentials(f"the bus is down: {type(exc).__name__}: {exc}"
                                              .rstrip(": "))) from None
    return result if isinstance(result, dict) else {"result": result}
