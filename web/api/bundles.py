"""DAG bundle versions (ADR 12): the files of the version a run executes, from the store."""

from __future__ import annotations

from flask import jsonify

from updraft.store.bundles import bundle_info, read_bundle_file
from updraft.store.engine import session_scope
from web.api import bp
from web.api.common import not_found
from web.auth.permissions import READ, require
from web.masking import shown
from web.queries import iso


@bp.get("/dagBundles/<version>")
@require(READ)
def get_bundle(version: str):
    """A version's files and their SHA-256 (the run's ``bundle_version`` names it)."""
    with session_scope() as session:
        info = bundle_info(session, version)
    if info is None:
        raise not_found(f"DAG bundle version {version!r}")
    return jsonify({"version": info["version"], "created_at": iso(info["created_at"]),
                    "size_bytes": info["size_bytes"],
                    "files": [{"path": p, "sha256": h} for p, h in sorted(info["files"].items())]})


@bp.get("/dagBundles/<version>/files/<path:path>")
@require(READ)
def get_bundle_file(version: str, path: str):
    """One file of a version, as text (undecodable bytes replaced), with every secret the
    store knows masked: a bundle holds every file of the DAGs folder (a settings file with a
    password too), and every role that reads DAGs may read it."""
    with session_scope() as session:
        info = bundle_info(session, version)
        data = read_bundle_file(session, version, path) if info else None
    if data is None:
        raise not_found(f"file {path!r} of DAG bundle version {version!r}")
    return jsonify({"path": path, "sha256": info["files"][path],
                    "content": shown(data.decode("utf-8", errors="replace"))})
