"""Variables, connections and pools as the web node reads and writes them: one module for the
REST API (``web/api/resources.py``) and the UI pages (``web/ui/admin.py``), so the two
cannot drift apart in what they accept, what they show and how they write.

- Validation: names by the rule the OpenAPI document states (``NAME_PATTERN``, a length),
  ports and slots in range, a JSON extra that parses.
- Masking: what either answers is made here: values of secret-looking variable keys are
  ``***``, a connection's password never leaves the store (only whether it has one), and
  whatever sits under a secret-looking key of its extra is ``***``.
- Writing: each function takes the caller's session and never commits; the caller audits.

A request that cannot be applied raises ResourceError with the HTTP status it means.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from updraft.state import IN_FLIGHT_STATES, TaskInstanceState as TI, state_values
from updraft.store.models import ConnectionModel, PoolModel, TaskInstanceModel, VariableModel

MASK = "***"
#: Longest variable key, connection id and pool name (the columns' lengths).
KEY_LENGTH, CONN_ID_LENGTH, CONN_TYPE_LENGTH, POOL_LENGTH = 250, 250, 500, 256
MAX_SLOTS = 2**31 - 1


class ResourceError(ValueError):
    """A request on a variable, connection or pool that cannot be applied."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- validation ----------------------------------------------------------------------------

def name_problem(name: Any, what: str, max_length: int) -> str | None:
    """Why ``name`` cannot be a variable key, connection id or pool name (the API's rule)."""
    from web.api.openapi import NAME_PATTERN

    if not isinstance(name, str) or not name:
        return f"{what} must not be empty"
    if len(name) > max_length:
        return f"{what} must have at most {max_length} characters, got {len(name)}"
    if not re.fullmatch(NAME_PATTERN[1:-1], name):
        return f"{what} must be printable ASCII characters"
    return None


def port_problem(raw: Any) -> str | None:
    """Why ``raw`` (a form field or a JSON value) cannot be a port; None if empty."""
    if raw is None or isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 65535:
        return None
    text = str(raw).strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 65535:
        return f"the port must be a whole number from 0 to 65535, got {text[:20]!r}"
    return None


def slots_problem(raw: Any) -> str | None:
    """Why ``raw`` cannot be a pool's number of slots."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        text = str(raw)
    else:
        text = str(raw or "").strip()
    if not (text.isascii() and text.isdigit() and int(text) <= MAX_SLOTS):
        return f"slots must be a whole number from 0 to {MAX_SLOTS}, got {text[:20]!r}"
    return None


def _check(problem: str | None) -> None:
    if problem:
        raise ResourceError(400, problem)


def same_name(body: dict, field: str, url_value: str, what: str) -> None:
    """409 when a body names another resource than the URL (nothing is ever renamed)."""
    if field in body and body[field] != url_value:
        raise ResourceError(409, f"the {field} in the body ({body[field]!r}) differs from the "
                                 f"URL ({url_value!r}): {what} cannot be renamed")


def _page(session: Session, model, order, limit: int | None, offset: int):
    total = session.scalar(select(func.count()).select_from(model)) or 0
    query = select(model).order_by(order).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query)), total


# -- variables -----------------------------------------------------------------------------

def variable_json(row: VariableModel) -> dict[str, Any]:
    """A variable as shown: decrypted, its value masked if its key looks secret."""
    from updraft.secrets import decrypt, should_hide_value_for_key

    value = row.val
    if value is not None and row.is_encrypted:
        value = decrypt(value, what=f"variable {row.key}")
    if value is not None and should_hide_value_for_key(row.key):
        value = MASK
    return {"key": row.key, "value": value, "description": row.description}


def variable_row(session: Session, key: str) -> VariableModel | None:
    return session.scalar(select(VariableModel).where(VariableModel.key == key))


def list_variables(session: Session, limit: int | None = None,
                   offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of variables by key, as shown, and how many there are."""
    rows, total = _page(session, VariableModel, VariableModel.key, limit, offset)
    return [variable_json(r) for r in rows], total


def get_variable(session: Session, key: str) -> dict[str, Any]:
    row = variable_row(session, key)
    if row is None:
        raise ResourceError(404, f"variable {key!r} not found")
    return variable_json(row)


def set_variable(session: Session, key: str, value: Any, description: str | None = None, *,
                 create: bool = True, replace: bool = True) -> dict[str, Any]:
    """Store ``value`` (encrypted) under ``key``; ``description`` None keeps the one stored.
    409 if it exists and not ``replace``, 404 if it does not and not ``create``."""
    from updraft.models.variable import Variable

    exists = variable_row(session, key) is not None
    if not exists:
        _check(name_problem(key, "the key", KEY_LENGTH))
    if exists and not replace:
        raise ResourceError(409, f"variable {key!r} already exists")
    if not exists and not create:
        raise ResourceError(404, f"variable {key!r} not found")
    try:
        Variable.set(key, value, description=description, session=session)
    except (ValueError, TypeError) as exc:
        raise ResourceError(400, str(exc)) from None
    return variable_json(variable_row(session, key))


def update_variable(session: Session, key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Change the value and/or the description of an existing variable."""
    row = variable_row(session, key)
    if row is None:
        raise ResourceError(404, f"variable {key!r} not found")
    if "value" in fields:
        set_variable(session, key, fields["value"], create=False)
    if "description" in fields:
        row.description = fields["description"]
    return variable_json(row)


def delete_variable(session: Session, key: str) -> bool:
    """Delete a variable; whether it existed."""
    from updraft.models.variable import Variable

    return bool(Variable.delete(key, session=session))


# -- connections ---------------------------------------------------------------------------

def mask_sensitive(value: Any) -> Any:
    """``value`` with whatever sits under a sensitive key (password, token...) as ***, at any
    depth."""
    from updraft.secrets import should_hide_value_for_key

    if isinstance(value, dict):
        return {k: MASK if should_hide_value_for_key(k) and v not in (None, "")
                else mask_sensitive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_sensitive(v) for v in value]
    return value


def _masked_extra(row: ConnectionModel) -> str | None:
    from updraft.secrets import decrypt

    extra = row.extra
    if extra is None:
        return None
    if row.is_extra_encrypted:
        extra = decrypt(extra, what=f"the extra of connection {row.conn_id}")
    try:
        parsed = json.loads(extra)
    except ValueError:
        return extra
    if isinstance(parsed, (dict, list)):
        return json.dumps(mask_sensitive(parsed))
    return extra


def connection_json(row: ConnectionModel) -> dict[str, Any]:
    """A connection as shown: without its password (only whether it has one), its extra
    masked."""
    return {"conn_id": row.conn_id, "conn_type": row.conn_type, "description": row.description,
            "host": row.host, "login": row.login, "schema": row.schema, "port": row.port,
            "extra": _masked_extra(row), "has_password": row.password is not None}


def connection_row(session: Session, conn_id: str) -> ConnectionModel | None:
    return session.scalar(select(ConnectionModel).where(ConnectionModel.conn_id == conn_id))


def list_connections(session: Session, limit: int | None = None,
                     offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of connections by id, as shown, and how many there are."""
    rows, total = _page(session, ConnectionModel, ConnectionModel.conn_id, limit, offset)
    return [connection_json(r) for r in rows], total


def get_connection(session: Session, conn_id: str) -> dict[str, Any]:
    row = connection_row(session, conn_id)
    if row is None:
        raise ResourceError(404, f"connection {conn_id!r} not found")
    return connection_json(row)


def _connection_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The fields checked and in the form the store keeps (extra as JSON text, port an int)."""
    fields = dict(fields)
    if "conn_type" in fields:
        _check(name_problem(fields["conn_type"], "the type", CONN_TYPE_LENGTH))
    if "port" in fields:
        _check(port_problem(fields["port"]))
        port = fields["port"]
        fields["port"] = int(port) if port is not None and str(port).strip() else None
    if isinstance(fields.get("extra"), dict):
        fields["extra"] = json.dumps(fields["extra"])
    return fields


def save_connection(session: Session, conn_id: str, fields: dict[str, Any], *,
                    create: bool = True, replace: bool = True) -> dict[str, Any]:
    """Create a connection or change the ``fields`` given (the others, the password too, keep
    their value); the password and the extra are stored encrypted. 409 if it exists and
    not ``replace``, 404 if it does not and not ``create``."""
    from updraft.models.connection import Connection, get_connection as load
    from updraft.models.connection import update_connection

    conn = load(conn_id, session=session)
    if conn is None and not create:  # an update of nothing: 404 whatever the name is
        raise ResourceError(404, f"connection {conn_id!r} not found")
    if conn is None:
        _check(name_problem(conn_id, "the conn_id", CONN_ID_LENGTH))
    fields = _connection_fields({k: v for k, v in fields.items() if k != "conn_id"})
    if conn is not None and not replace:
        raise ResourceError(409, f"connection {conn_id!r} already exists")
    if conn is None and not create:
        raise ResourceError(404, f"connection {conn_id!r} not found")
    try:
        if conn is None:
            conn = Connection(conn_id=conn_id, **fields)
        for name, value in fields.items():
            setattr(conn, name, value)
        update_connection(conn, session=session, create=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResourceError(400, str(exc)) from None
    return connection_json(connection_row(session, conn_id))


def delete_connection(session: Session, conn_id: str) -> bool:
    """Delete a connection; whether it existed."""
    from updraft.models.connection import delete_connection as delete

    return bool(delete(conn_id, session=session))


# -- pools ---------------------------------------------------------------------------------

def pool_usage(session: Session) -> dict[str, dict[str, int]]:
    """Per pool, the slots taken by task instances scheduled, queued, running and deferred."""
    usage: dict[str, dict[str, int]] = {}
    for pool, state, slots in session.execute(
            select(TaskInstanceModel.pool, TaskInstanceModel.state,
                   func.sum(TaskInstanceModel.pool_slots))
            .where(TaskInstanceModel.state.in_(state_values(IN_FLIGHT_STATES | {TI.DEFERRED})))
            .group_by(TaskInstanceModel.pool, TaskInstanceModel.state)):
        usage.setdefault(pool, {})[state] = int(slots or 0)
    return usage


def pool_json(row: PoolModel, usage: dict[str, dict[str, int]]) -> dict[str, Any]:
    """A pool as shown, with its slots in use."""
    used = usage.get(row.pool, {})
    running, queued = used.get("running", 0), used.get("queued", 0)
    # Deferred tasks hold the pool's slots only if it says so (ADR 11, Airflow's rule).
    deferred = used.get("deferred", 0)
    occupied = running + queued + (deferred if row.include_deferred else 0)
    return {"name": row.pool, "slots": row.slots, "description": row.description or "",
            "running_slots": running, "queued_slots": queued,
            "scheduled_slots": used.get("scheduled", 0), "deferred_slots": deferred,
            "include_deferred": bool(row.include_deferred),
            "occupied_slots": occupied, "open_slots": row.slots - occupied}


def pool_row(session: Session, name: str) -> PoolModel | None:
    return session.scalar(select(PoolModel).where(PoolModel.pool == name))


def list_pools(session: Session, limit: int | None = None,
               offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """A page of pools by name, as shown, and how many there are."""
    rows, total = _page(session, PoolModel, PoolModel.pool, limit, offset)
    usage = pool_usage(session) if rows else {}
    return [pool_json(r, usage) for r in rows], total


def get_pool(session: Session, name: str) -> dict[str, Any]:
    row = pool_row(session, name)
    if row is None:
        raise ResourceError(404, f"pool {name!r} not found")
    return pool_json(row, pool_usage(session))


def save_pool(session: Session, name: str, fields: dict[str, Any], *, create: bool = True,
              replace: bool = True) -> dict[str, Any]:
    """Create a pool or change the ``fields`` given (slots, description, include_deferred).
    409 if it exists and not ``replace``, 404 if it does not and not ``create``."""
    row = pool_row(session, name)
    if row is None and not create:  # an update of nothing: 404 whatever the name is
        raise ResourceError(404, f"pool {name!r} not found")
    if row is None:
        _check(name_problem(name, "the name", POOL_LENGTH))
    if "slots" in fields:
        _check(slots_problem(fields["slots"]))
    if row is not None and not replace:
        raise ResourceError(409, f"pool {name!r} already exists")
    if row is None:
        if not create:
            raise ResourceError(404, f"pool {name!r} not found")
        if "slots" not in fields:
            raise ResourceError(400, "a new pool needs its number of slots")
        row = PoolModel(pool=name)
        session.add(row)
    if "slots" in fields:
        row.slots = int(fields["slots"])
    if "description" in fields:
        row.description = fields["description"]
    if "include_deferred" in fields:
        # Deferred tasks hold this pool's slots too (Airflow's setting, ADR 11).
        row.include_deferred = bool(fields["include_deferred"])
    elif row.include_deferred is None:
        row.include_deferred = False
    session.flush()
    return pool_json(row, pool_usage(session))


def delete_pool(session: Session, name: str) -> bool:
    """Delete a pool (409 for the default pool); whether it existed."""
    from updraft.store.migrate import DEFAULT_POOL

    if name == DEFAULT_POOL:
        raise ResourceError(409, f"{DEFAULT_POOL} cannot be deleted: tasks without a pool run "
                                 "in it")
    row = pool_row(session, name)
    if row is None:
        return False
    session.delete(row)
    return True


__all__ = ["MASK", "ResourceError", "connection_json", "delete_connection", "delete_pool",
           "delete_variable", "get_connection", "get_pool", "get_variable", "list_connections",
           "list_pools", "list_variables", "mask_sensitive", "name_problem", "pool_json",
           "pool_usage", "port_problem", "same_name", "save_connection", "save_pool",
           "set_variable", "slots_problem", "update_variable", "variable_json"]
