"""Error answers: RFC 7807 problem+json for the API, a short page for the UI."""

from __future__ import annotations

from http import HTTPStatus

from flask import Response, json, request

PROBLEM_TYPE = "about:blank"


def problem(status: int, detail: str, *, title: str | None = None, **extra) -> Response:
    """An ``application/problem+json`` response with type, title, status and detail."""
    body = {"type": PROBLEM_TYPE, "title": title or HTTPStatus(status).phrase,
            "status": status, "detail": detail}
    body.update(extra)
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def error_page(status: int, detail: str, *, title: str | None = None) -> Response:
    """An HTML error page (the UI's ``error.html`` template when it exists)."""
    from flask import render_template, render_template_string
    from jinja2 import TemplateNotFound

    title = title or HTTPStatus(status).phrase
    try:
        html = render_template("error.html", status=status, title=title, detail=detail)
    except TemplateNotFound:
        html = render_template_string(_FALLBACK, status=status, title=title, detail=detail)
    return Response(html, status=status, mimetype="text/html")


def error_response(status: int, detail: str, *, title: str | None = None) -> Response:
    """problem+json for API requests, an HTML page otherwise."""
    from web.auth.permissions import is_api_request

    if is_api_request() or request.accept_mimetypes.best == "application/json":
        return problem(status, detail, title=title)
    return error_page(status, detail, title=title)


_FALLBACK = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ status }} {{ title }} - Updraft</title>
</head><body><main><h1>{{ status }} {{ title }}</h1><p class="reason">{{ detail }}</p>
<p><a href="{{ url_for('auth.login') if status == 401 else '/' }}">Back</a></p></main>
</body></html>
"""
