"""Prometheus ``/metrics`` of the web node (rendering shared with the scheduler in
``updraft.metrics``)."""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """The store's figures in the Prometheus text format."""
    return Response("", mimetype="text/plain; version=0.0.4")
