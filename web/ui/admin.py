"""Variables, connections, pools (written to the store by Op and Admin), XComs, import errors,
the audit log, the health page and the users page (Admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from updraft.store.models import ImportError_, LogEvent, NodeModel, XComModel
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
    require,
)
from web.ui.blueprint import bp
from web.ui.helpers import MAX_INT, age_seconds, int_param, owner_name, store

PAGE = 100


# -- variables -----------------------------------------------------------------------------

MASK = "***"


@bp.route("/variables")
@require(VARIABLE_READ)
def variables():
    """Every variable; values of keys that look secret (password, secret, token...) are shown
    masked, as the API shows them."""
    from updraft.models.variable import list_variables
    from updraft.secrets import should_hide_value_for_key

    with store() as session:
        rows = [dict(row, val=MASK if should_hide_value_for_key(row["key"])
                     and row["val"] is not None else row["val"])
                for row in list_variables(session)]
    return render_template("variables.html", rows=rows)


@bp.route("/variables/save", methods=["POST"])
@require(VARIABLE_EDIT)
def variable_save():
    from updraft.models.variable import Variable

    key = (request.form.get("key") or "").strip()
    problem = _name_problem(key, "the key", 250)
    if problem:
        flash(f"Variable not saved: {problem}", "error")
        return redirect(url_for("ui.variables"))
    try:
        with store() as session:
            Variable.set(key, request.form.get("val", ""),
                         description=request.form.get("description") or None, session=session)
    except (ValueError, TypeError) as exc:
        flash(f"Variable not saved: {exc}", "error")
    else:
        audit("variable.set", owner=owner_name(), extra={"key": key})
        flash(f"Variable {key} saved", "success")
    return redirect(url_for("ui.variables"))


@bp.route("/variables/delete", methods=["POST"])
@require(VARIABLE_EDIT)
def variable_delete():
    from updraft.models.variable import Variable

    key = request.form.get("key", "")
    with store() as session:
        gone = Variable.delete(key, session=session)
    audit("variable.delete", owner=owner_name(), extra={"key": key})
    flash(f"Variable {key} deleted" if gone else f"Variable {key} did not exist",
          "success" if gone else "error")
    return redirect(url_for("ui.variables"))


def _name_problem(name: str, what: str, max_length: int) -> str | None:
    """Why ``name`` cannot be a variable key, connection id or pool name (the API's rule)."""
    import re

    from web.api.openapi import NAME_PATTERN

    if not name:
        return f"{what} must not be empty"
    if len(name) > max_length:
        return f"{what} must have at most {max_length} characters, got {len(name)}"
    if not re.fullmatch(NAME_PATTERN[1:-1], name):
        return f"{what} must be printable ASCII characters"
    return None


# -- connections ---------------------------------------------------------------------------

@bp.route("/connections")
@require(CONNECTION_READ)
def connections():
    from updraft.models.connection import list_connections

    with store() as session:
        rows = list_connections(session)
    edit = request.args.get("edit")
    current = next((c for c in rows if c.conn_id == edit), None)
    return render_template("connections.html", rows=rows, current=current)


@bp.route("/connections/save", methods=["POST"])
@require(CONNECTION_EDIT)
def connection_save():
    from updraft.models.connection import Connection, get_connection, update_connection

    form = request.form
    conn_id = (form.get("conn_id") or "").strip()
    conn_type = (form.get("conn_type") or "").strip()
    problem = (_name_problem(conn_id, "the conn_id", 250)
               or _name_problem(conn_type, "the type", 500) or _port_problem(form.get("port")))
    extra = (form.get("extra") or "").strip() or None
    if problem is None and extra is not None:
        from web.ui.forms import load_json

        _value, problem = load_json(extra, "extra")
    if problem:
        flash(f"Connection not saved: {problem}", "error")
        return redirect(url_for("ui.connections", edit=conn_id or None))
    try:
        with store() as session:
            existing = get_connection(conn_id, session=session)
            password = form.get("password") or None
            if password is None and existing is not None and not form.get("clear_password"):
                password = existing.password  # an empty field keeps the stored password
            if extra is None and existing is not None and not form.get("clear_extra"):
                extra = existing.extra  # an empty field keeps the stored extra, as a password
            conn = Connection(conn_id=conn_id, conn_type=conn_type,
                              description=form.get("description") or None,
                              host=form.get("host") or None, login=form.get("login") or None,
                              password=password, schema=form.get("schema") or None,
                              port=(form.get("port") or "").strip() or None, extra=extra)
            update_connection(conn, session=session, create=True)
    except (ValueError, TypeError, KeyError) as exc:
        flash(f"Connection not saved: {exc}", "error")
    else:
        audit("connection.set", owner=owner_name(), extra={"conn_id": conn_id})
        flash(f"Connection {conn_id} saved", "success")
    return redirect(url_for("ui.connections"))


def _port_problem(raw: str | None) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or not 0 <= int(text) <= 65535:
        return f"the port must be a whole number from 0 to 65535, got {text[:20]!r}"
    return None


@bp.route("/connections/delete", methods=["POST"])
@require(CONNECTION_EDIT)
def connection_delete():
    from updraft.models.connection import delete_connection

    conn_id = request.form.get("conn_id", "")
    with store() as session:
        gone = delete_connection(conn_id, session=session)
    audit("connection.delete", owner=owner_name(), extra={"conn_id": conn_id})
    flash(f"Connection {conn_id} deleted" if gone else f"Connection {conn_id} did not exist",
          "success" if gone else "error")
    return redirect(url_for("ui.connections"))


# -- pools ---------------------------------------------------------------------------------

def _pool_usage(session) -> dict[str, dict[str, int]]:
    from updraft.store.models import TaskInstanceModel

    usage: dict[str, dict[str, int]] = {}
    for pool, state, slots in session.execute(
            select(TaskInstanceModel.pool, TaskInstanceModel.state,
                   func.sum(TaskInstanceModel.pool_slots))
            .where(TaskInstanceModel.state.in_(("running", "queued", "scheduled")))
            .group_by(TaskInstanceModel.pool, TaskInstanceModel.state)):
        usage.setdefault(pool, {})[state] = int(slots or 0)
    return usage


@bp.route("/pools")
@require(READ)
def pools():
    from updraft.cli.pools import list_pools

    with store() as session:
        rows = list_pools(session)
        usage = _pool_usage(session)
    return render_template("pools.html", rows=rows, usage=usage)


@bp.route("/pools/save", methods=["POST"])
@require(POOL_EDIT)
def pool_save():
    from updraft.cli.pools import set_pool

    name = (request.form.get("pool") or "").strip()
    text = (request.form.get("slots") or "").strip()
    problem = _name_problem(name, "the name", 256)
    if problem is None and not (text.isascii() and text.isdigit() and int(text) <= MAX_INT):
        problem = f"slots must be a whole number from 0 to {MAX_INT}, got {text[:20]!r}"
    if problem:
        flash(f"Pool not saved: {problem}", "error")
        return redirect(url_for("ui.pools"))
    slots = int(text)
    try:
        with store() as session:
            set_pool(session, name, slots, request.form.get("description") or None)
    except ValueError as exc:
        flash(f"Pool not saved: {exc}", "error")
    else:
        audit("pool.set", owner=owner_name(), extra={"pool": name, "slots": slots})
        flash(f"Pool {name} saved with {slots} slots", "success")
    return redirect(url_for("ui.pools"))


@bp.route("/pools/delete", methods=["POST"])
@require(POOL_EDIT)
def pool_delete():
    from sqlalchemy import delete

    from updraft.store.models import PoolModel

    name = request.form.get("pool", "")
    if name == "default_pool":
        flash("The default pool cannot be deleted", "error")
        return redirect(url_for("ui.pools"))
    with store() as session:
        gone = session.execute(delete(PoolModel).where(PoolModel.pool == name)).rowcount
    audit("pool.delete", owner=owner_name(), extra={"pool": name})
    flash(f"Pool {name} deleted" if gone else f"Pool {name} did not exist",
          "success" if gone else "error")
    return redirect(url_for("ui.pools"))


# -- browse --------------------------------------------------------------------------------

@bp.route("/xcoms")
@require(READ)
def xcoms():
    page = int_param("page", 1, minimum=1, maximum=MAX_INT // PAGE)
    query = select(XComModel)
    for name in ("dag_id", "run_id", "task_id", "key"):
        value = request.args.get(name)
        if value:
            query = query.where(getattr(XComModel, name) == value)
    with store() as session:
        rows = list(session.scalars(query.order_by(XComModel.timestamp.desc())
                                    .offset((page - 1) * PAGE).limit(PAGE)))
    return render_template("xcoms.html", rows=rows, page=page, args=request.args)


@bp.route("/import-errors")
@require(READ)
def import_errors():
    with store() as session:
        rows = list(session.scalars(select(ImportError_).order_by(ImportError_.filename)))
    return render_template("import_errors.html", rows=rows)


@bp.route("/audit")
@require(READ)
def audit_log():
    page = int_param("page", 1, minimum=1, maximum=MAX_INT // PAGE)
    query = select(LogEvent)
    for name in ("dag_id", "owner", "event"):
        value = request.args.get(name)
        if value:
            query = query.where(getattr(LogEvent, name) == value)
    with store() as session:
        rows = list(session.scalars(query.order_by(LogEvent.id.desc())
                                    .offset((page - 1) * PAGE).limit(PAGE)))
    return render_template("audit.html", rows=rows, page=page, args=request.args)


# -- health --------------------------------------------------------------------------------

def health_report() -> dict:
    """Store, bus and nodes (with heartbeat ages and the Dask dashboard link)."""
    now = datetime.now(UTC)
    report: dict = {"store": {"ok": False}, "bus": {"ok": False}, "nodes": [], "dashboard": None}
    try:
        with store() as session:
            session.execute(select(1))
            nodes = list(session.scalars(select(NodeModel).order_by(NodeModel.kind,
                                                                    NodeModel.node_id)))
        report["store"] = {"ok": True}
    except Exception as exc:  # noqa: BLE001  (the page says what is wrong)
        report["store"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        nodes = []
    for node in nodes:
        info = node.info or {}
        age = age_seconds(node.heartbeat_at, now)
        report["nodes"].append({"node_id": node.node_id, "kind": node.kind,
                                "hostname": node.hostname, "pid": node.pid, "state": node.state,
                                "heartbeat_at": node.heartbeat_at, "age": age,
                                "alive": node.state == "running" and age is not None
                                and age < 60, "info": info})
        link = info.get("dashboard_link") or info.get("dask_dashboard")
        if link and node.state == "running" and not report["dashboard"]:
            report["dashboard"] = link
    try:
        from bus.connection import shared_bus

        bus = shared_bus(wait=1.0)
        from web.queries import scrub_credentials, without_credentials

        report["bus"] = {"ok": bus.connected,
                         "servers": [without_credentials(s) for s in bus.servers],
                         "error": None if bus.connected else scrub_credentials(
                             bus.last_error or "not connected")}
    except Exception as exc:  # noqa: BLE001
        report["bus"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return report


@bp.route("/health")
@require(READ)
def health():
    return render_template("health.html", report=health_report())


# -- users ---------------------------------------------------------------------------------

@bp.route("/users")
@require(USER_READ)
def users():
    from web.auth.permissions import ROLES
    from web.auth.users import list_users

    with store() as session:
        rows = list_users(session)
    return render_template("users.html", rows=rows, roles=ROLES)


@bp.route("/users/action", methods=["POST"])
@require(USER_EDIT)
def user_action():
    from web.auth import users as store_users

    action = request.form.get("action")
    username = (request.form.get("username") or "").strip()
    me = owner_name()
    try:
        with store() as session:
            if action == "create":
                password = request.form.get("password") or store_users.generate_password()
                store_users.create_user(session, username, password,
                                        request.form.get("role", "Viewer"),
                                        email=request.form.get("email") or None)
                message = f"User {username} created" + (
                    "" if request.form.get("password") else f"; password: {password}")
            elif action == "role":
                store_users.set_role(session, username, request.form.get("role", ""),
                                     acting=me)
                message = f"User {username} is now {request.form.get('role')}"
            elif action == "active":
                active = request.form.get("active") == "true"
                store_users.set_active(session, username, active, acting=me)
                message = f"User {username} is now {'active' if active else 'inactive'}"
            elif action == "password":
                password = request.form.get("password") or store_users.generate_password()
                store_users.set_password(session, username, password)
                message = f"Password of {username} changed" + (
                    "" if request.form.get("password") else f" to: {password}")
            elif action == "delete":
                store_users.delete_user(session, username, acting=me)
                message = f"User {username} deleted"
            else:
                abort(400, f"unknown user action {action!r}: use create, role, active, "
                           "password or delete")
    except ValueError as exc:
        flash(f"Not done: {exc}", "error")
    else:
        audit(f"user.{action}", owner=me, extra={"username": username})
        flash(message, "success")
    return redirect(url_for("ui.users"))
