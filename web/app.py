"""The Flask application factory of the web node.

``create_app()`` wires the ``auth`` blueprint (login/logout), the REST API (``/api/v1``), the
Prometheus ``/metrics`` endpoint and, when the package is present, the UI pages
(``web.ui.views:bp``). The web node reads the store and sends every change to the scheduler
over the bus; it never imports DAG files, ``scheduler`` or ``executors``.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from updraft.config import conf, updraft_home

log = logging.getLogger(__name__)

SECRET_KEY_FILE = "web_secret.key"
UI_MODULE = "web.ui.views"
#: Every page loads its script and style from this server only; no inline script or style
#: runs, so markup that slipped through escaping could not execute.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; font-src 'self'; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")


def load_secret_key() -> str:
    """``[web] secret_key``, or the key in ``$UPDRAFT_HOME/web_secret.key`` (made once, 0600)."""
    configured = conf.get("web", "secret_key")
    if configured:
        return configured
    path = updraft_home() / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def _register_ui(app: Flask) -> None:
    """Plug in the UI pages when ``web.ui.views`` exists (built separately)."""
    try:
        found = importlib.util.find_spec(UI_MODULE) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        return
    module = importlib.import_module(UI_MODULE)
    app.register_blueprint(module.bp)
    init = getattr(module, "init_app", None)
    if callable(init):
        init(app)


def create_app(test_config: dict | None = None) -> Flask:
    """Build the web application; ``test_config`` overrides Flask config keys."""
    app = Flask("web", root_path=str(Path(__file__).parent))
    lifetime = conf.getint("web", "session_lifetime_minutes")
    app.config.update(
        SECRET_KEY=None,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=lifetime),
        SESSION_COOKIE_NAME="updraft_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(conf.get("web", "cookie_secure", False)),
        SESSION_REFRESH_EACH_REQUEST=False,  # the lifetime counts from login, not last click
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=16 * 1024 * 1024,
        UPDRAFT_COMMAND_TIMEOUT=float(conf.get("web", "command_timeout", 10.0)),
    )
    if test_config:
        app.config.update(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = load_secret_key()

    from web.auth.permissions import can, check_csrf, csrf_token, current_user

    app.jinja_env.globals.update(csrf_token=csrf_token, current_user=current_user, can=can)
    app.before_request(check_csrf)

    from web.api import bp as api_bp
    from web.auth.views import bp as auth_bp
    from web.metrics import bp as metrics_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(metrics_bp)
    _register_ui(app)
    from web.plugins import register_plugin_views  # blueprints and menu links of plugins

    register_plugin_views(app)
    _register_error_handlers(app)

    @app.after_request
    def _security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    return app


def _register_error_handlers(app: Flask) -> None:
    from web.errors import error_response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = error_response(exc.code or 500, exc.description or exc.name)
        if exc.code == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        from sqlalchemy.exc import DataError, IntegrityError, OperationalError

        if isinstance(exc, IntegrityError):  # a concurrent request created the same row
            log.info("integrity error on %s %s: %s", request.method, request.path, exc.orig)
            return error_response(409, "a concurrent change conflicts with this request (the "
                                       "store refused a duplicate): try again")
        if isinstance(exc, DataError):  # a value this store cannot hold (NUL on PostgreSQL...)
            log.info("data error on %s %s: %s", request.method, request.path, exc.orig)
            return error_response(400, "the store cannot hold a value of this request (a NUL "
                                       "character, or a number or text out of range)")
        if isinstance(exc, OperationalError):
            log.warning("store unreachable: %s", exc)
            return error_response(503, f"the store is unreachable: {exc.orig}")
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, f"unexpected error: {type(exc).__name__}")
