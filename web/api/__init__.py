"""The REST API, version 1, under ``/api/v1`` (the OpenAPI document is ``web.api.openapi``)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# Route modules register themselves on ``bp`` when imported.
from web.api import routes  # noqa: E402, F401
