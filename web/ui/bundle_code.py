"""The code of a DAG bundle version (ADR 12): its files, and each file's source, from the
store. A run's page links here, so one sees the code that run executes."""

from __future__ import annotations

from flask import abort, render_template

from updraft.store.bundles import bundle_info, read_bundle_file
from web.auth.permissions import READ, require
from web.masking import shown
from web.ui.blueprint import bp
from web.ui.helpers import store


@bp.route("/bundles/<version>")
@bp.route("/bundles/<version>/files/<path:path>")
@require(READ)
def bundle_code(version: str, path: str | None = None):
    """A version's file list, and the source of ``path`` (default: the first DAG file), with
    every secret the store knows masked (any file of the DAGs folder is in a bundle)."""
    with store() as session:
        info = bundle_info(session, version)
        if info is None:
            abort(404, f"DAG bundle version {version!r} not found")
        files = sorted(info["files"])
        path = path or next((f for f in files if f.endswith(".py")), files[0] if files else None)
        if path is not None and path not in info["files"]:
            abort(404, f"{path!r} is not a file of DAG bundle version {version[:12]}")
        data = read_bundle_file(session, version, path) if path else None
    return render_template("bundle_code.html", info=info, files=files, path=path,
                           source=shown(data.decode("utf-8", errors="replace")) if data else None)
