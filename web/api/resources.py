"""Variables, connections, pools, import errors, the audit log and users.

Variables, connections and pools are not scheduler state: the web writes them to the store
itself, and audits every change. Connection passwords are write-only: no answer holds them.
"""

from __future__ import annotations

import json
from typing import Any

from flask import jsonify, request
from sqlalchemy import func, select

from updraft.store.engine import session_scope
from updraft.store.models import ConnectionModel, ImportError_, PoolModel, VariableModel
from web import queries
from web.api import bp
from web.api.common import ApiError, json_body, not_found, page, page_args
from web.auth.audit import audit
from web.auth.permissions import (
    CONNECTION_EDIT,
    CONNECTION_READ,
    POOL_EDIT,
    READ,
    USER_EDIT,
    USER_READ,
    VARIABLE_EDIT,
    VARIABLE_READ,
    current_user,
    require,
)

MASK = "***"


def _who() -> str | None:
    user = current_user()
    return user.username if user else None


def _same_name(body: dict, field: str, url_value: str, what: str) -> None:
    """409 when the body names another resource than the URL (nothing is ever renamed)."""
    if field in body and body[field] != url_value:
        raise ApiError(409, f"the {field} in the body ({body[field]!r}) differs from the URL "
                            f"({url_value!r}): {what} cannot be renamed")


# -- variables -------------------------------------------------------------------------------

def _variable_json(row: VariableModel) -> dict[str, Any]:
    from updraft.secrets import decrypt, should_hide_value_for_key

    value = row.val
    if value is not None and row.is_encrypted:
        value = decrypt(value, what=f"variable {row.key}")
    if value is not None and should_hide_value_for_key(row.key):
        value = MASK
    return {"key": row.key, "value": value, "description": row.description}


def _variable_row(session, key: str) -> VariableModel | None:
    return session.scalar(select(VariableModel).where(VariableModel.key == key))


@bp.get("/variables")
@require(VARIABLE_READ)
def list_variables():
    """A page of variables, by key (values of sensitive keys are masked)."""
    limit, offset = page_args()
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(VariableModel)) or 0
        rows = session.scalars(select(VariableModel).order_by(VariableModel.key)
                               .limit(limit).offset(offset))
        return page("variables", [_variable_json(r) for r in rows], total)


@bp.get("/variables/<path:key>")
@require(VARIABLE_READ)
def get_variable(key: str):
    """One variable."""
    with session_scope() as session:
        row = _variable_row(session, key)
        if row is None:
            raise not_found(f"variable {key!r}")
        return jsonify(_variable_json(row))


@bp.post("/variables")
@require(VARIABLE_EDIT)
def create_variable():
    """Create a variable (409 if the key exists)."""
    from updraft.models.variable import Variable

    body = json_body("VariableCreate")
    key = body["key"]
    with session_scope() as session:
        if _variable_row(session, key) is not None:
            raise ApiError(409, f"variable {key!r} already exists")
        Variable.set(key, body["value"], description=body.get("description"), session=session)
        result = _variable_json(_variable_row(session, key))
    audit("variable.create", extra={"key": key})
    return jsonify(result), 201


@bp.patch("/variables/<path:key>")
@require(VARIABLE_EDIT)
def update_variable(key: str):
    """Change the value and/or description of a variable."""
    from updraft.models.variable import Variable

    body = json_body("VariableUpdate")
    _same_name(body, "key", key, "variables")
    with session_scope() as session:
        row = _variable_row(session, key)
        if row is None:
            raise not_found(f"variable {key!r}")
        if "value" in body:
            Variable.set(key, body["value"], session=session)
        if "description" in body:
            row.description = body["description"]
        result = _variable_json(row)
    audit("variable.update", extra={"key": key, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/variables/<path:key>")
@require(VARIABLE_EDIT)
def delete_variable(key: str):
    """Delete a variable."""
    with session_scope() as session:
        row = _variable_row(session, key)
        if row is None:
            raise not_found(f"variable {key!r}")
        session.delete(row)
    audit("variable.delete", extra={"key": key})
    return "", 204


# -- connections -----------------------------------------------------------------------------

def _mask_sensitive(value: Any) -> Any:
    """``value`` with whatever sits under a sensitive key (password, token...) as ***, at any
    depth."""
    from updraft.secrets import should_hide_value_for_key

    if isinstance(value, dict):
        return {k: MASK if should_hide_value_for_key(k) and v not in (None, "")
                else _mask_sensitive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_sensitive(v) for v in value]
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
        return json.dumps(_mask_sensitive(parsed))
    return extra


def _connection_json(row: ConnectionModel) -> dict[str, Any]:
    """A connection without its password (only whether it has one)."""
    return {"conn_id": row.conn_id, "conn_type": row.conn_type, "description": row.description,
            "host": row.host, "login": row.login, "schema": row.schema, "port": row.port,
            "extra": _masked_extra(row), "has_password": row.password is not None}


def _connection_row(session, conn_id: str) -> ConnectionModel | None:
    return session.scalar(select(ConnectionModel).where(ConnectionModel.conn_id == conn_id))


@bp.get("/connections")
@require(CONNECTION_READ)
def list_connections():
    """A page of connections, by id (never with passwords)."""
    limit, offset = page_args()
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(ConnectionModel)) or 0
        rows = session.scalars(select(ConnectionModel).order_by(ConnectionModel.conn_id)
                               .limit(limit).offset(offset))
        return page("connections", [_connection_json(r) for r in rows], total)


@bp.get("/connections/<path:conn_id>")
@require(CONNECTION_READ)
def get_connection(conn_id: str):
    """One connection (never with its password)."""
    with session_scope() as session:
        row = _connection_row(session, conn_id)
        if row is None:
            raise not_found(f"connection {conn_id!r}")
        return jsonify(_connection_json(row))


@bp.post("/connections")
@require(CONNECTION_EDIT)
def create_connection():
    """Create a connection (409 if the id exists); the password is stored encrypted."""
    from updraft.models.connection import Connection, add_connection

    body = json_body("ConnectionCreate")
    conn_id = body["conn_id"]
    with session_scope() as session:
        if _connection_row(session, conn_id) is not None:
            raise ApiError(409, f"connection {conn_id!r} already exists")
        try:
            add_connection(Connection(**body), session=session)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        result = _connection_json(_connection_row(session, conn_id))
    audit("connection.create", extra={"conn_id": conn_id})
    return jsonify(result), 201


@bp.patch("/connections/<path:conn_id>")
@require(CONNECTION_EDIT)
def update_connection(conn_id: str):
    """Change fields of a connection; fields left out (the password too) keep their value."""
    from updraft.models.connection import get_connection as load
    from updraft.models.connection import update_connection as save

    body = json_body("ConnectionUpdate")
    _same_name(body, "conn_id", conn_id, "connections")
    with session_scope() as session:
        conn = load(conn_id, session=session)
        if conn is None:
            raise not_found(f"connection {conn_id!r}")
        for name, value in body.items():
            if name == "conn_id":
                continue
            if name == "extra" and isinstance(value, dict):
                value = json.dumps(value)
            setattr(conn, name, value)
        try:
            save(conn, session=session)
        except (ValueError, KeyError) as exc:
            raise ApiError(400, str(exc)) from None
        result = _connection_json(_connection_row(session, conn_id))
    audit("connection.update", extra={"conn_id": conn_id, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/connections/<path:conn_id>")
@require(CONNECTION_EDIT)
def delete_connection(conn_id: str):
    """Delete a connection."""
    with session_scope() as session:
        row = _connection_row(session, conn_id)
        if row is None:
            raise not_found(f"connection {conn_id!r}")
        session.delete(row)
    audit("connection.delete", extra={"conn_id": conn_id})
    return "", 204


# -- pools -----------------------------------------------------------------------------------

def pool_usage(session) -> dict[str, dict[str, int]]:
    """Per pool, the slots taken by running and queued task instances."""
    from updraft.store.models import TaskInstanceModel

    usage: dict[str, dict[str, int]] = {}
    for pool, state, slots in session.execute(
            select(TaskInstanceModel.pool, TaskInstanceModel.state,
                   func.sum(TaskInstanceModel.pool_slots))
            .where(TaskInstanceModel.state.in_(["running", "queued", "scheduled"]))
            .group_by(TaskInstanceModel.pool, TaskInstanceModel.state)):
        usage.setdefault(pool, {})[state] = int(slots or 0)
    return usage


def _pool_json(row: PoolModel, usage: dict[str, dict[str, int]]) -> dict[str, Any]:
    used = usage.get(row.pool, {})
    running, queued = used.get("running", 0), used.get("queued", 0)
    return {"name": row.pool, "slots": row.slots, "description": row.description or "",
            "running_slots": running, "queued_slots": queued,
            "scheduled_slots": used.get("scheduled", 0),
            "occupied_slots": running + queued, "open_slots": row.slots - running - queued}


def _pool_row(session, name: str) -> PoolModel | None:
    return session.scalar(select(PoolModel).where(PoolModel.pool == name))


@bp.get("/pools")
@require(READ)
def list_pools():
    """A page of pools with their slot usage."""
    limit, offset = page_args()
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(PoolModel)) or 0
        usage = pool_usage(session)
        rows = session.scalars(select(PoolModel).order_by(PoolModel.pool).limit(limit)
                               .offset(offset))
        return page("pools", [_pool_json(r, usage) for r in rows], total)


@bp.get("/pools/<path:name>")
@require(READ)
def get_pool(name: str):
    """One pool with its slot usage."""
    with session_scope() as session:
        row = _pool_row(session, name)
        if row is None:
            raise not_found(f"pool {name!r}")
        return jsonify(_pool_json(row, pool_usage(session)))


@bp.post("/pools")
@require(POOL_EDIT)
def create_pool():
    """Create a pool (409 if the name exists)."""
    body = json_body("PoolCreate")
    name = body["name"]
    with session_scope() as session:
        if _pool_row(session, name) is not None:
            raise ApiError(409, f"pool {name!r} already exists")
        session.add(PoolModel(pool=name, slots=body["slots"], description=body.get("description")))
        session.flush()
        result = _pool_json(_pool_row(session, name), pool_usage(session))
    audit("pool.create", extra={"pool": name, "slots": body["slots"]})
    return jsonify(result), 201


@bp.patch("/pools/<path:name>")
@require(POOL_EDIT)
def update_pool(name: str):
    """Change a pool's slots and/or description."""
    body = json_body("PoolUpdate")
    _same_name(body, "name", name, "pools")
    with session_scope() as session:
        row = _pool_row(session, name)
        if row is None:
            raise not_found(f"pool {name!r}")
        if "slots" in body:
            row.slots = body["slots"]
        if "description" in body:
            row.description = body["description"]
        session.flush()
        result = _pool_json(row, pool_usage(session))
    audit("pool.update", extra={"pool": name, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/pools/<path:name>")
@require(POOL_EDIT)
def delete_pool(name: str):
    """Delete a pool (never the default pool)."""
    from updraft.store.migrate import DEFAULT_POOL

    if name == DEFAULT_POOL:
        raise ApiError(409, f"{DEFAULT_POOL} cannot be deleted: tasks without a pool run in it")
    with session_scope() as session:
        row = _pool_row(session, name)
        if row is None:
            raise not_found(f"pool {name!r}")
        session.delete(row)
    audit("pool.delete", extra={"pool": name})
    return "", 204


# -- import errors and the audit log ---------------------------------------------------------

@bp.get("/importErrors")
@require(READ)
def list_import_errors():
    """A page of DAG files that failed to load."""
    limit, offset = page_args()
    with session_scope() as session:
        rows, total = queries.list_import_errors(session, limit=limit, offset=offset)
        return page("import_errors", [queries.import_error_json(r) for r in rows], total)


@bp.get("/importErrors/<int:import_error_id>")
@require(READ)
def get_import_error(import_error_id: int):
    """One import error with its traceback."""
    if import_error_id > 2**31 - 1:  # past any id the store hands out (and SQLite's range)
        raise not_found(f"import error {import_error_id}")
    with session_scope() as session:
        row = session.get(ImportError_, import_error_id)
        if row is None:
            raise not_found(f"import error {import_error_id}")
        return jsonify(queries.import_error_json(row))


@bp.get("/eventLogs")
@require(READ)
def list_event_logs():
    """A page of the audit log, newest first (filter by dag_id, event, owner)."""
    limit, offset = page_args()
    with session_scope() as session:
        rows, total = queries.list_event_logs(
            session, limit=limit, offset=offset, dag_id=request.args.get("dag_id"),
            event=request.args.get("event"), owner=request.args.get("owner"))
        return page("event_logs", [queries.event_log_json(r) for r in rows], total)


# -- users -----------------------------------------------------------------------------------

def _user_json(row) -> dict[str, Any]:
    return {"username": row.username, "email": row.email, "first_name": row.first_name,
            "last_name": row.last_name, "role": row.role, "active": row.active,
            "created_at": queries.iso(row.created_at), "last_login": queries.iso(row.last_login)}


@bp.get("/users")
@require(USER_READ)
def list_users():
    """A page of users (never with password hashes)."""
    from updraft.store.models import UserModel

    limit, offset = page_args()
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(UserModel)) or 0
        rows = session.scalars(select(UserModel).order_by(UserModel.username).limit(limit)
                               .offset(offset))
        return page("users", [_user_json(r) for r in rows], total)


@bp.get("/users/<username>")
@require(USER_READ)
def get_user(username: str):
    """One user."""
    from web.auth.users import get_user as load

    with session_scope() as session:
        row = load(session, username)
        if row is None:
            raise not_found(f"user {username!r}")
        return jsonify(_user_json(row))


def _user_error(exc: Exception) -> ApiError:
    from web.auth.users import UserConflict

    return ApiError(409 if isinstance(exc, UserConflict) else 400, str(exc))


@bp.post("/users")
@require(USER_EDIT)
def create_user():
    """Create a user with a role and a password (names are unique whatever the case)."""
    from web.auth.users import UserError
    from web.auth.users import create_user as make

    body = json_body("UserCreate")
    with session_scope() as session:
        try:
            row = make(session, body["username"], body["password"], body["role"],
                       email=body.get("email"), first_name=body.get("first_name"),
                       last_name=body.get("last_name"))
        except UserError as exc:
            raise _user_error(exc) from None
        result = _user_json(row)
    audit("user.create", extra={"username": result["username"], "role": result["role"]})
    return jsonify(result), 201


@bp.patch("/users/<username>")
@require(USER_EDIT)
def update_user(username: str):
    """Change a user's role, password, email, names or active flag (never your own role or
    active flag, and never the last active Admin's)."""
    from web.auth.users import UserError, check_lockout, hash_password
    from web.auth.users import get_user as load

    body = json_body("UserUpdate")
    with session_scope() as session:
        row = load(session, username)
        if row is None:
            raise not_found(f"user {username!r}")
        try:
            check_lockout(session, row, _who(), role=body.get("role"),
                          active=body.get("active"))
        except UserError as exc:
            raise _user_error(exc) from None
        if "role" in body:
            row.role = body["role"]
        if "password" in body:
            row.password_hash = hash_password(body["password"])
        for name in ("email", "first_name", "last_name"):
            if name in body:
                setattr(row, name, body[name])
        if "active" in body:
            row.active = body["active"]
        result = _user_json(row)
    audit("user.update", extra={"username": result["username"], "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/users/<username>")
@require(USER_EDIT)
def delete_user(username: str):
    """Delete a user and their API tokens (not yourself, not the last active Admin)."""
    from web.auth.users import UserError
    from web.auth.users import delete_user as remove
    from web.auth.users import get_user as load

    with session_scope() as session:
        row = load(session, username)
        if row is None:
            raise not_found(f"user {username!r}")
        try:
            remove(session, row.username, acting=_who())
        except UserError as exc:
            raise _user_error(exc) from None
    audit("user.delete", extra={"username": username})
    return "", 204
