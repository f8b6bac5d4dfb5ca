"""Health, version, the OpenAPI document, and the API's error answers."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from flask import jsonify

from updraft.store.engine import session_scope
from web import queries
from web.api import bp
from web.api.common import ApiError
from web.crud import ResourceError
from web.auth.permissions import READ, require
from web.errors import problem


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return problem(exc.status, exc.detail, title=exc.title)


@bp.errorhandler(ResourceError)
def _resource_error(exc: ResourceError):
    return problem(exc.status, str(exc))


def updraft_version() -> str:
    """The installed version of Updraft."""
    try:
        return dist_version("updraft")
    except PackageNotFoundError:
        return "unknown"


@bp.get("/health")
def get_health():
    """Store, scheduler heartbeat, NATS and the Dask dashboard link (no login needed)."""
    try:
        with session_scope() as session:
            return jsonify(queries.health(session))
    except Exception as exc:  # noqa: BLE001  (the store is down: say so, do not fail)
        return jsonify({"metadatabase": {"status": "unhealthy",
                                         "error": queries.scrub_credentials(str(exc))},
                        "scheduler": {"status": "unknown", "latest_scheduler_heartbeat": None},
                        "nats": queries.nats_status()})


@bp.get("/version")
@require(READ)
def get_version():
    """The version of Updraft."""
    return jsonify({"version": updraft_version(), "git_version": None})


@bp.get("/openapi.json")
def get_openapi():
    """The OpenAPI 3.0 document of this API (no login needed)."""
    from web.api.openapi import openapi_document

    return jsonify(openapi_document(updraft_version()))
