"""Skeleton routes (filled in next)."""

from __future__ import annotations

from importlib.metadata import version as _dist_version

from flask import jsonify

from web.api import bp
from web.auth.permissions import READ, require


@bp.get("/version")
@require(READ)
def get_version():
    """The version of Updraft."""
    return jsonify({"version": _dist_version("updraft")})
