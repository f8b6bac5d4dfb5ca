"""What every API route shares: errors as problem+json, pagination, JSON bodies, and sending
commands to the scheduler over the bus."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import current_app, jsonify, request

from web.auth.permissions import current_user

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

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


def int_arg(name: str, default: int | None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    """An integer query parameter; 400 if it is not one or out of range."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name!r} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ApiError(400, f"query parameter {name!r} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ApiError(400, f"query parameter {name!r} must be at most {maximum}, got {value}")
    return value


def bool_arg(name: str, default: bool | None = None) -> bool | None:
    """A boolean query parameter (true/false/1/0); 400 otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    text = raw.strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ApiError(400, f"query parameter {name!r} must be true or false, got {raw!r}")


def list_arg(name: str) -> list[str]:
    """A repeated or comma-separated query parameter."""
    values: list[str] = []
    for raw in request.args.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


def date_arg(name: str) -> datetime | None:
    """An ISO 8601 date-time query parameter (with a timezone); 400 otherwise."""
    raw = request.args.get(name)
    if not raw:
        return None
    return parse_datetime(raw, f"query parameter {name!r}")


def parse_datetime(raw: Any, where: str) -> datetime:
    """An aware datetime from ISO 8601 text; ApiError 400 otherwise."""
    if not isinstance(raw, str):
        raise ApiError(400, f"{where} must be an ISO 8601 date-time string")
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{where} is not an ISO 8601 date-time: {raw!r}") from None
    if value.tzinfo is None:
        raise ApiError(400, f"{where} needs a timezone (for example 2024-01-01T00:00:00Z)")
    if not 1900 <= value.year <= 9000:  # schedules add intervals: keep clear of year 9999
        raise ApiError(400, f"{where} must be between the years 1900 and 9000, got {raw!r}")
    return value


def page_args() -> tuple[int, int]:
    """``limit`` (1..1000, default 100) and ``offset`` (0..) from the query."""
    limit = int_arg("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = int_arg("offset", 0, minimum=0, maximum=2**31 - 1)
    return limit, offset  # type: ignore[return-value]


def page(items_key: str, items: list[dict], total: int):
    """A JSON list answer: ``{<items_key>: [...], "total_entries": N}``."""
    return jsonify({items_key: items, "total_entries": total})


def json_body(allowed: dict[str, type | tuple[type, ...]], required: tuple[str, ...] = (),
              ) -> dict[str, Any]:
    """The request's JSON object, checked: no unknown fields, required ones present, types."""
    if not request.is_json:
        raise ApiError(415 if request.data else 400,
                       "send a JSON object with Content-Type: application/json")
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field(s) {', '.join(map(repr, unknown))}: allowed are "
                            f"{', '.join(sorted(allowed))}")
    for name in required:
        if name not in data:
            raise ApiError(400, f"field {name!r} is required")
    for name, value in data.items():
        types = allowed[name]
        if value is None and name not in required:
            continue
        # bool is an int in Python: refuse true where a number is expected
        wanted = types if isinstance(types, tuple) else (types,)
        if isinstance(value, bool) and bool not in wanted:
            raise ApiError(400, f"field {name!r} must be {_type_names(wanted)}, got a boolean")
        if not isinstance(value, wanted):
            raise ApiError(400, f"field {name!r} must be {_type_names(wanted)}, got "
                                f"{type(value).__name__}")
    return data


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", bool: "a boolean", int: "an integer", float: "a number",
             dict: "an object", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def send_command(verb: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Ask the scheduler to do ``verb`` over the bus; the reply's result, or an ApiError with
    the scheduler's reason (404/400/409/403) or 503 when the bus or scheduler is away."""
    user = current_user()
    payload = {k: v for k, v in payload.items() if v is not None}
    payload.setdefault("owner", user.username if user else None)
    timeout = float(current_app.config.get("UPDRAFT_COMMAND_TIMEOUT", 10.0))
    from bus.client import CommandError, request_command

    try:
        result = request_command(verb, payload, timeout=timeout)
    except CommandError as exc:
        status = COMMAND_STATUS.get(exc.code, 400)
        if status == 503:
            raise ApiError(503, f"the bus is down: {exc.message}") from None
        if status == 502:
            raise ApiError(502, f"the scheduler failed to {verb}: {exc.message}") from None
        raise ApiError(status, exc.message) from None
    except Exception as exc:  # noqa: BLE001  (anything else: the command did not get through)
        log.warning("command %s not delivered: %s", verb, exc)
        raise ApiError(503, f"the bus is down: {type(exc).__name__}: {exc}".rstrip(": ")
                       ) from None
    return result if isinstance(result, dict) else {"result": result}
