"""A web extension registered as ``sample``: a page, a JSON endpoint and a menu link."""

from __future__ import annotations

from flask import Blueprint, jsonify
from markupsafe import escape

from updraft.plugins.base import MenuLink, WebExtension

bp = Blueprint("sample_plugin", __name__, url_prefix="/sample")


@bp.get("/")
def page():
    from web.auth.permissions import current_user

    user = current_user()
    return (f"<!doctype html><title>Sample plugin</title><h1>Sample plugin page</h1>"
            f"<p>Hello {escape(user.username)}</p>")


api = Blueprint("sample_plugin_api", __name__, url_prefix="/api/sample")


@api.get("/hello")
def hello():
    return jsonify({"hello": "from the sample plugin"})


extension = WebExtension(name="sample", blueprints=(bp, api),
                         menu_links=(MenuLink("Sample", "/sample/", category="Plugins"),))
