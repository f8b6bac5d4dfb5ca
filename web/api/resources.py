"""Variables, connections, pools, import errors, the audit log and users.

Variables, connections and pools are not scheduler state: the web writes them to the store
itself, and audits every change. Connection passwords are write-only: no answer holds them.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from sqlalchemy import func, select

from updraft.store.engine import session_scope
from updraft.store.models import ImportError_
from web import crud, queries
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


def _who() -> str | None:
    user = current_user()
    return user.username if user else None


# -- variables, connections, pools: validated, masked and written by web.crud ----------------

@bp.get("/variables")
@require(VARIABLE_READ)
def list_variables():
    """A page of variables, by key (values of sensitive keys are masked)."""
    limit, offset = page_args()
    with session_scope() as session:
        return page("variables", *crud.list_variables(session, limit, offset))


@bp.get("/variables/<path:key>")
@require(VARIABLE_READ)
def get_variable(key: str):
    """One variable."""
    with session_scope() as session:
        return jsonify(crud.get_variable(session, key))


@bp.post("/variables")
@require(VARIABLE_EDIT)
def create_variable():
    """Create a variable (409 if the key exists)."""
    body = json_body("VariableCreate")
    key = body["key"]
    with session_scope() as session:
        result = crud.set_variable(session, key, body["value"], body.get("description"),
                                   replace=False)
    audit("variable.create", extra={"key": key})
    return jsonify(result), 201


@bp.patch("/variables/<path:key>")
@require(VARIABLE_EDIT)
def update_variable(key: str):
    """Change the value and/or description of a variable."""
    body = json_body("VariableUpdate")
    crud.same_name(body, "key", key, "variables")
    with session_scope() as session:
        result = crud.update_variable(session, key, body)
    audit("variable.update", extra={"key": key, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/variables/<path:key>")
@require(VARIABLE_EDIT)
def delete_variable(key: str):
    """Delete a variable."""
    with session_scope() as session:
        if not crud.delete_variable(session, key):
            raise not_found(f"variable {key!r}")
    audit("variable.delete", extra={"key": key})
    return "", 204


@bp.get("/connections")
@require(CONNECTION_READ)
def list_connections():
    """A page of connections, by id (never with passwords)."""
    limit, offset = page_args()
    with session_scope() as session:
        return page("connections", *crud.list_connections(session, limit, offset))


@bp.get("/connections/<path:conn_id>")
@require(CONNECTION_READ)
def get_connection(conn_id: str):
    """One connection (never with its password)."""
    with session_scope() as session:
        return jsonify(crud.get_connection(session, conn_id))


@bp.post("/connections")
@require(CONNECTION_EDIT)
def create_connection():
    """Create a connection (409 if the id exists); the password is stored encrypted."""
    body = json_body("ConnectionCreate")
    conn_id = body["conn_id"]
    with session_scope() as session:
        result = crud.save_connection(session, conn_id, body, replace=False)
    audit("connection.create", extra={"conn_id": conn_id})
    return jsonify(result), 201


@bp.patch("/connections/<path:conn_id>")
@require(CONNECTION_EDIT)
def update_connection(conn_id: str):
    """Change fields of a connection; fields left out (the password too) keep their value."""
    body = json_body("ConnectionUpdate")
    crud.same_name(body, "conn_id", conn_id, "connections")
    with session_scope() as session:
        result = crud.save_connection(session, conn_id, body, create=False)
    audit("connection.update", extra={"conn_id": conn_id, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/connections/<path:conn_id>")
@require(CONNECTION_EDIT)
def delete_connection(conn_id: str):
    """Delete a connection."""
    with session_scope() as session:
        if not crud.delete_connection(session, conn_id):
            raise not_found(f"connection {conn_id!r}")
    audit("connection.delete", extra={"conn_id": conn_id})
    return "", 204


@bp.get("/pools")
@require(READ)
def list_pools():
    """A page of pools with their slot usage."""
    limit, offset = page_args()
    with session_scope() as session:
        return page("pools", *crud.list_pools(session, limit, offset))


@bp.get("/pools/<path:name>")
@require(READ)
def get_pool(name: str):
    """One pool with its slot usage."""
    with session_scope() as session:
        return jsonify(crud.get_pool(session, name))


@bp.post("/pools")
@require(POOL_EDIT)
def create_pool():
    """Create a pool (409 if the name exists)."""
    body = json_body("PoolCreate")
    name = body["name"]
    with session_scope() as session:
        result = crud.save_pool(session, name, body, replace=False)
    audit("pool.create", extra={"pool": name, "slots": body["slots"]})
    return jsonify(result), 201


@bp.patch("/pools/<path:name>")
@require(POOL_EDIT)
def update_pool(name: str):
    """Change a pool's slots and/or description."""
    body = json_body("PoolUpdate")
    crud.same_name(body, "name", name, "pools")
    with session_scope() as session:
        result = crud.save_pool(session, name, body, create=False)
    audit("pool.update", extra={"pool": name, "fields": sorted(body)})
    return jsonify(result)


@bp.delete("/pools/<path:name>")
@require(POOL_EDIT)
def delete_pool(name: str):
    """Delete a pool (never the default pool)."""
    with session_scope() as session:
        if not crud.delete_pool(session, name):
            raise not_found(f"pool {name!r}")
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
