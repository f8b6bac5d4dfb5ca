"""Variables, connections, pools (written to the store by Op and Admin), XComs, import errors,
the audit log, the health page and the users page (Admin)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

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
from web import crud
from web.ui.blueprint import bp
from web.ui.helpers import MAX_INT, age_seconds, int_param, owner_name, store

PAGE = 100


# -- variables, connections, pools: validated, masked and written by web.crud, as the API ---

def _flash_saved(what: str, apply, ok: str, audit_event: str, audit_extra: dict) -> None:
    """Run ``apply(session)``; flash why not if crud refused it, else audit and flash ``ok``."""
    try:
        with store() as session:
            apply(session)
    except crud.ResourceError as exc:
        flash(f"{what} not saved: {exc}", "error")
    else:
        audit(audit_event, owner=owner_name(), extra=audit_extra)
        flash(ok, "success")


def _flash_deleted(what: str, name: str, gone: bool, audit_event: str, audit_extra: dict
                   ) -> None:
    audit(audit_event, owner=owner_name(), extra=audit_extra)
    flash(f"{what} {name} deleted" if gone else f"{what} {name} did not exist",
          "success" if gone else "error")


@bp.route("/variables")
@require(VARIABLE_READ)
def variables():
    """Every variable (``?search=`` in keys and descriptions); values of keys that look secret
    (password, secret, token...) are shown masked, as the API shows them. ``?edit=<key>``
    turns that row into a form."""
    search = request.args.get("search", "").strip()
    with store() as session:
        rows, total = crud.list_variables(session)
    if search:
        needle = search.lower()
        rows = [v for v in rows if needle in v["key"].lower()
                or needle in (v["description"] or "").lower()]
    return render_template("variables.html", rows=rows, total=total, search=search,
                           editing=request.args.get("edit"), mask=crud.MASK)


@bp.route("/variables/save", methods=["POST"])
@require(VARIABLE_EDIT)
def variable_save():
    key = (request.form.get("key") or "").strip()
    value = request.form.get("val", "")
    if request.form.get("keep_value") and not value:
        with store() as session:  # a masked value left empty keeps the stored one
            row = crud.variable_row(session, key)
            if row is not None:
                from updraft.secrets import decrypt

                value = decrypt(row.val, what=f"variable {key}") if row.is_encrypted else row.val
    _flash_saved("Variable", lambda session: crud.set_variable(
        session, key, value, request.form.get("description") or None),
        f"Variable {key} saved", "variable.set", {"key": key})
    return redirect(request.form.get("next") if (request.form.get("next") or "").startswith(
        "/variables") else url_for("ui.variables"))


@bp.route("/variables/export")
@require(VARIABLE_READ)
def variables_export():
    """Every variable as a JSON file (``{key: {"value", "description"}}``), values as this page
    shows them: a secret's value is exported as the mask, and importing the mask back keeps
    the stored value."""
    import json

    from flask import Response

    with store() as session:
        rows, _total = crud.list_variables(session)
    body = {v["key"]: {"value": v["value"], "description": v["description"]} for v in rows}
    audit("variable.export", owner=owner_name(), extra={"count": len(body)})
    return Response(json.dumps(body, indent=2, sort_keys=True), mimetype="application/json",
                    headers={"Content-Disposition": "attachment; filename=variables.json"})


@bp.route("/variables/import", methods=["POST"])
@require(VARIABLE_EDIT)
def variables_import():
    """Set the variables of an uploaded JSON file: ``{key: value}`` or ``{key: {"value",
    "description"}}`` (what the export writes). Masked values are skipped."""
    import json

    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Variables not imported: choose a JSON file", "error")
        return redirect(url_for("ui.variables"))
    try:
        body = json.loads(upload.read(5_000_001)[:5_000_000].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        flash(f"Variables not imported: the file is not JSON ({exc})", "error")
        return redirect(url_for("ui.variables"))
    if not isinstance(body, dict):
        flash("Variables not imported: the file must hold a JSON object of key: value",
              "error")
        return redirect(url_for("ui.variables"))
    done, skipped, refused = 0, [], []
    with store() as session:
        for key, item in body.items():
            value, description = item, None
            if isinstance(item, dict) and "value" in item:
                value, description = item.get("value"), item.get("description")
            if value == crud.MASK:
                skipped.append(key)
                continue
            try:  # set_variable checks the key before it writes anything
                crud.set_variable(session, str(key), value if isinstance(value, str)
                                  else json.dumps(value), description)
                done += 1
            except crud.ResourceError as exc:
                refused.append(f"{key}: {exc}")
    audit("variable.import", owner=owner_name(), extra={"count": done})
    message = f"Imported {done} variable(s)"
    if skipped:
        message += f"; kept the stored value of {len(skipped)} masked one(s): " + ", ".join(
            skipped[:10])
    flash(message, "success")
    if refused:
        flash("Refused: " + "; ".join(refused[:10]), "error")
    return redirect(url_for("ui.variables"))


@bp.route("/variables/delete", methods=["POST"])
@require(VARIABLE_EDIT)
def variable_delete():
    key = request.form.get("key", "")
    with store() as session:
        gone = crud.delete_variable(session, key)
    _flash_deleted("Variable", key, gone, "variable.delete", {"key": key})
    return redirect(url_for("ui.variables"))


@bp.route("/connections")
@require(CONNECTION_READ)
def connections():
    """Every connection, as the API shows them: never a password, its extra masked."""
    with store() as session:
        rows, _total = crud.list_connections(session)
    edit = request.args.get("edit")
    current = next((c for c in rows if c["conn_id"] == edit), None)
    return render_template("connections.html", rows=rows, current=current)


@bp.route("/connections/save", methods=["POST"])
@require(CONNECTION_EDIT)
def connection_save():
    form = request.form
    conn_id = (form.get("conn_id") or "").strip()
    fields = {"conn_type": (form.get("conn_type") or "").strip(),
              "description": form.get("description") or None,
              "host": form.get("host") or None, "login": form.get("login") or None,
              "schema": form.get("schema") or None, "port": form.get("port")}
    # An empty password or extra keeps the stored one, unless asked to remove it.
    if form.get("password") or form.get("clear_password"):
        fields["password"] = form.get("password") or None
    extra = (form.get("extra") or "").strip() or None
    problem = None
    if extra is not None:
        from web.ui.forms import load_json

        _value, problem = load_json(extra, "extra")
    if extra is not None or form.get("clear_extra"):
        fields["extra"] = extra
    if problem:
        flash(f"Connection not saved: {problem}", "error")
        return redirect(url_for("ui.connections", edit=conn_id or None))
    _flash_saved("Connection", lambda session: crud.save_connection(session, conn_id, fields),
                 f"Connection {conn_id} saved", "connection.set", {"conn_id": conn_id})
    return redirect(url_for("ui.connections"))


@bp.route("/connections/test", methods=["POST"])
@require(CONNECTION_EDIT)
def connection_test():
    """Try the stored connection with its hook's ``test_connection`` (a request, a login, a
    ``select 1``) from this web node. Off unless ``UPDRAFT_UI_TEST_CONNECTION=true``: it
    makes the web node open connections to hosts that users with edit rights choose."""
    import concurrent.futures
    import os

    from web.masking import shown

    conn_id = request.form.get("conn_id", "")
    if os.environ.get("UPDRAFT_UI_TEST_CONNECTION", "").lower() not in ("1", "true", "yes"):
        flash("Testing connections is off on this web node (set "
              "UPDRAFT_UI_TEST_CONNECTION=true to allow it)", "error")
        return redirect(url_for("ui.connections"))

    def attempt() -> tuple[bool, str]:
        from updraft.hooks.base import BaseHook

        hook = BaseHook.get_hook(conn_id)
        tester = getattr(hook, "test_connection", None)
        if tester is None:
            return False, f"the {type(hook).__name__} of this connection type cannot test it"
        return tester()

    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        ok, message = pool.submit(attempt).result(timeout=TEST_TIMEOUT)
    except concurrent.futures.TimeoutError:
        ok, message = False, f"no answer within {TEST_TIMEOUT:.0f} s"
    except Exception as exc:  # noqa: BLE001  (the page says what went wrong)
        ok, message = False, f"{type(exc).__name__}: {exc}"
    finally:
        pool.shutdown(wait=False)
    audit("connection.test", owner=owner_name(), extra={"conn_id": conn_id, "ok": ok})
    flash(f"Connection {conn_id}: " + ("works. " if ok else "failed: ") + shown(str(message)),
          "success" if ok else "error")
    return redirect(url_for("ui.connections"))


TEST_TIMEOUT = 15.0


@bp.route("/connections/delete", methods=["POST"])
@require(CONNECTION_EDIT)
def connection_delete():
    conn_id = request.form.get("conn_id", "")
    with store() as session:
        gone = crud.delete_connection(session, conn_id)
    _flash_deleted("Connection", conn_id, gone, "connection.delete", {"conn_id": conn_id})
    return redirect(url_for("ui.connections"))


@bp.route("/pools")
@require(READ)
def pools():
    with store() as session:
        rows, _total = crud.list_pools(session)
    return render_template("pools.html", rows=rows)


@bp.route("/pools/save", methods=["POST"])
@require(POOL_EDIT)
def pool_save():
    name = (request.form.get("pool") or "").strip()
    slots = (request.form.get("slots") or "").strip()
    description = request.form.get("description") or None
    fields = {"slots": slots} if description is None else {"slots": slots,
                                                           "description": description}
    # The form's checkbox: deferred tasks hold this pool's slots (ADR 11).
    fields["include_deferred"] = request.form.get("include_deferred") == "true"
    _flash_saved("Pool", lambda session: crud.save_pool(session, name, fields),
                 f"Pool {name} saved with {slots} slots", "pool.set",
                 {"pool": name, "slots": int(slots) if slots.isdigit() else slots})
    return redirect(url_for("ui.pools"))


@bp.route("/pools/delete", methods=["POST"])
@require(POOL_EDIT)
def pool_delete():
    name = request.form.get("pool", "")
    try:
        with store() as session:
            gone = crud.delete_pool(session, name)
    except crud.ResourceError:
        flash("The default pool cannot be deleted", "error")
        return redirect(url_for("ui.pools"))
    _flash_deleted("Pool", name, gone, "pool.delete", {"pool": name})
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
