"""The ``auth`` blueprint: the login form and logout.

The UI may supply its own ``login.html`` template (it gets ``error``, ``next_url`` and
``username``, and must post ``username``, ``password``, ``csrf_token`` and ``next``);
otherwise a plain built-in form is used.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, render_template_string, request, url_for
from jinja2 import TemplateNotFound

from updraft.store.models import utcnow
from web.auth.audit import audit
from web.auth.permissions import current_user
from web.auth.users import check_credentials, login_limiter, start_session

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never redirect to another host after login."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _render_login(error: str | None = None, status: int = 200, username: str = ""):
    next_url = _safe_next(request.values.get("next"))
    context = {"error": error, "next_url": next_url, "username": username}
    try:
        html = render_template("login.html", **context)
    except TemplateNotFound:
        html = render_template_string(_LOGIN_FORM, **context)
    return html, status


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form; on POST check the credentials and start a session.

    Only a POST logs in: a HEAD (an uptime probe) is a GET without the body, whatever it
    sends, so it neither logs in nor counts as a failed login.
    """
    if request.method != "POST":
        if current_user() is not None:
            return redirect(_safe_next(request.args.get("next")))
        return _render_login()
    address = request.remote_addr or "?"
    username = (request.form.get("username") or "").strip()
    if not login_limiter.allowed(address, username):
        wait = login_limiter.retry_after(address, username)
        audit("login_refused", owner=username[:500] or None,
              extra={"reason": "too many failed logins", "remote_addr": address})
        html, _ = _render_login("Too many failed logins from your address; try again in "
                                f"{wait} seconds.", 429, username)
        return html, 429, {"Retry-After": str(wait)}
    from updraft.store.engine import session_scope

    with session_scope() as db:
        user = check_credentials(db, username, request.form.get("password") or "")
        if user is None:
            login_limiter.failed(address, username)
            audit("login_failed", owner=username[:500] or None,
                  extra={"method": "form", "remote_addr": address})
            return _render_login("Wrong username or password, or the user is inactive.", 401,
                                 username)
        user.last_login = utcnow()
        start_session(user)
        name = user.username
    audit("login", owner=name, extra={"remote_addr": address})
    return redirect(_safe_next(request.form.get("next")))


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    """End the session and go back to the login page."""
    from flask import session

    if request.method == "HEAD":  # a probe, not a person leaving
        return redirect(url_for("auth.login"))
    user = current_user()
    session.clear()
    if user is not None:
        audit("logout", owner=user.username)
    return redirect(url_for("auth.login"))


_LOGIN_FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - Updraft</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;display:flex;justify-content:center;
margin-top:10vh}form{display:flex;flex-direction:column;gap:.6em;min-width:18em}
.error{color:#b00020}</style></head>
<body><main><h1>Updraft</h1>
<form method="post" action="{{ url_for('auth.login') }}">
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
<input type="hidden" name="next" value="{{ next_url }}">
<label>Username <input name="username" autocomplete="username" value="{{ username }}"
 required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password"
 required></label>
<button type="submit">Log in</button>
</form></main></body></html>
"""
