"""Prometheus ``/metrics`` of the web node; the rendering is shared with the scheduler in
``updraft.metrics``. No login: bind the web to a trusted network or scrape through a proxy."""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """The store's figures in the Prometheus text format."""
    from updraft.metrics import CONTENT_TYPE, store_metrics_text
    from updraft.store.engine import session_scope

    with session_scope() as session:
        text = store_metrics_text(session)
    return Response(text, content_type=CONTENT_TYPE)
