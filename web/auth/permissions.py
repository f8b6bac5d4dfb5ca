"""The one permission table of the web node, and the helpers every view uses to apply it.

The UI and the REST API ask the same questions through the same functions:

- ``current_user()``: who is asking (session cookie, ``Authorization: Bearer <token>`` or
  HTTP Basic), or ``None``.
- ``require(permission)``: a view decorator; anonymous callers get 401 (API) or a redirect
  to the login page (UI), callers whose role lacks the permission get a 403 with the reason
  (problem+json for the API, a page for the UI), and every denial is written to the audit log.
- ``csrf_token()`` (also a Jinja global) and ``check_csrf()``: every state-changing request
  made with the session cookie must carry the token in the ``csrf_token`` form field or the
  ``X-CSRF-Token`` header. Requests authenticated by a bearer token or Basic are exempt
  (browsers do not add those on their own).
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flask import g, request, session

F = TypeVar("F", bound=Callable)

# Permissions: "<resource>.<action>". Reading DAGs, runs, task instances, logs, XComs, pools,
# import errors, health and the audit log is ``READ``.
READ = "read"
DAG_PAUSE = "dag.pause"
DAG_DELETE = "dag.delete"
RUN_TRIGGER = "run.trigger"
RUN_CLEAR = "run.clear"
RUN_MARK = "run.mark"
RUN_DELETE = "run.delete"
VARIABLE_READ = "variable.read"
VARIABLE_EDIT = "variable.edit"
CONNECTION_READ = "connection.read"
CONNECTION_EDIT = "connection.edit"
POOL_EDIT = "pool.edit"
USER_READ = "user.read"
USER_EDIT = "user.edit"

ALL_PERMISSIONS = (READ, DAG_PAUSE, DAG_DELETE, RUN_TRIGGER, RUN_CLEAR, RUN_MARK, RUN_DELETE, VARIABLE_READ,
                   VARIABLE_EDIT, CONNECTION_READ, CONNECTION_EDIT, POOL_EDIT, USER_READ,
                   USER_EDIT)

_VIEWER = frozenset({READ})
_USER = _VIEWER | {DAG_PAUSE, DAG_DELETE, RUN_TRIGGER, RUN_CLEAR, RUN_MARK, RUN_DELETE}
_OP = _USER | {VARIABLE_READ, VARIABLE_EDIT, CONNECTION_READ, CONNECTION_EDIT, POOL_EDIT}
_ADMIN = _OP | {USER_READ, USER_EDIT}

# THE permission table: role -> what it may do. Each role has everything of the one before.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "Viewer": frozenset(_VIEWER),
    "User": frozenset(_USER),
    "Op": frozenset(_OP),
    "Admin": frozenset(_ADMIN),
}
ROLES = tuple(ROLE_PERMISSIONS)

PERMISSION_DESCRIPTIONS = {
    READ: "read DAGs, runs, task instances, logs, XComs, pools, import errors and health",
    DAG_PAUSE: "pause and unpause DAGs",
    DAG_DELETE: "delete a DAG's runs and history (its file stays and is parsed again)",
    RUN_TRIGGER: "trigger DAG runs",
    RUN_CLEAR: "clear task instances",
    RUN_MARK: "mark runs and task instances success or failed, and write their notes",
    RUN_DELETE: "delete DAG runs",
    VARIABLE_READ: "read variables",
    VARIABLE_EDIT: "create, change and delete variables",
    CONNECTION_READ: "read connections",
    CONNECTION_EDIT: "create, change and delete connections",
    POOL_EDIT: "create, change and delete pools",
    USER_READ: "list users",
    USER_EDIT: "create, change and delete users",
}

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


def validate_role(role: str) -> str:
    """Return ``role`` if it is one of the roles, else raise ValueError naming the valid ones."""
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def role_has(role: str | None, permission: str) -> bool:
    """Whether ``role`` grants ``permission``."""
    if permission not in PERMISSION_DESCRIPTIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return permission in ROLE_PERMISSIONS.get(role or "", frozenset())


def min_role(permission: str) -> str:
    """The least role that grants ``permission`` (for messages)."""
    for role in ROLES:
        if permission in ROLE_PERMISSIONS[role]:
            return role
    raise ValueError(f"unknown permission {permission!r}")


@dataclass(frozen=True)
class CurrentUser:
    """The caller of this request, as the views see it."""

    id: int
    username: str
    role: str
    email: str | None
    auth: str  # "session", "token" or "basic"

    def can(self, permission: str) -> bool:
        """Whether this user's role grants ``permission``."""
        return role_has(self.role, permission)

    @property
    def permissions(self) -> frozenset[str]:
        return ROLE_PERMISSIONS.get(self.role, frozenset())


_UNSET = object()


def current_user() -> CurrentUser | None:
    """The authenticated caller of this request, or None (resolved once per request)."""
    user = g.get("_updraft_user", _UNSET)
    if user is _UNSET:
        from web.auth.users import authenticate_request

        user = authenticate_request()
        g._updraft_user = user
    return user  # type: ignore[return-value]


def can(permission: str) -> bool:
    """Whether the caller of this request may do ``permission`` (False when anonymous)."""
    user = current_user()
    return user is not None and user.can(permission)


def is_api_request() -> bool:
    """Whether this request is for the REST API (answers in problem+json) rather than a page."""
    return request.path.startswith("/api/") or request.blueprint == "api"


def deny(reason: str, *, status: int = 403, permission: str | None = None):
    """Answer a refused request (problem+json or a page) and write it to the audit log."""
    from web.auth.audit import audit
    from web.errors import error_response

    user = current_user()
    audit("access_denied", owner=user.username if user else None,
          extra={"reason": reason, "method": request.method, "path": request.path,
                 "permission": permission, "status": status,
                 "remote_addr": request.remote_addr})
    return error_response(status, reason, title="Forbidden" if status == 403 else None)


def _unauthenticated():
    from flask import redirect, url_for

    from web.errors import error_response

    if is_api_request():
        response = error_response(401, "authentication required: log in, or send "
                                  "'Authorization: Bearer <token>' or HTTP Basic credentials")
        response.headers["WWW-Authenticate"] = 'Bearer realm="updraft"'
        return response
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def require(permission: str) -> Callable[[F], F]:
    """View decorator: the caller must be logged in and their role must grant ``permission``."""
    if permission not in PERMISSION_DESCRIPTIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            user = current_user()
            if user is None:
                return _unauthenticated()
            if not user.can(permission):
                return deny(f"role {user.role} of user {user.username!r} may not "
                            f"{PERMISSION_DESCRIPTIONS[permission]} (needs {min_role(permission)} "
                            f"or above)", permission=permission)
            return view(*args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def csrf_token() -> str:
    """The CSRF token of this session (created on first use); put it in every form."""
    token = session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def csrf_ok() -> bool:
    """Whether this request carries the session's CSRF token (field or header)."""
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD)
    return bool(expected and sent and hmac.compare_digest(str(expected), str(sent)))


def check_csrf():
    """``before_request`` hook: refuse state-changing requests made with the session cookie
    that lack the CSRF token. Returns a response to stop the request, or None."""
    if request.method in SAFE_METHODS:
        return None
    if request.headers.get("Authorization"):
        return None  # bearer / basic: not sent by browsers on their own, so no CSRF risk
    if is_api_request() and not session.get("user_id"):
        return None  # the view answers 401
    if request.endpoint == "static":
        return None
    if csrf_ok():
        return None
    return deny("the CSRF token is missing or invalid: reload the page and submit the form "
                "again", status=400)
