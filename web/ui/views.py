"""The UI pages of the web node (blueprint ``bp``), plugged in by ``web.app.create_app``.

Pages read the store; every change is a form post (with the CSRF token) that becomes a NATS
command to the scheduler, or, for variables, connections and pools, a store write by an Op or
Admin. The pages live in ``dags``, ``runs``, ``admin`` and ``live`` (server-sent events);
this module gathers them.
"""

from __future__ import annotations

from web.ui import (  # noqa: F401  (they add their routes to bp)
    actions,
    admin,
    assets,
    browse,
    dag_actions,
    dags,
    grid,
    home,
    live,
    runs,
    timeline,
)
from web.ui.blueprint import bp
from web.ui.helpers import install


@bp.route("/favicon.ico")
def favicon():
    """The tab icon, where browsers look for it (no login needed: the login page has it too)."""
    from flask import send_from_directory

    return send_from_directory(bp.static_folder, "favicon.ico", mimetype="image/x-icon",
                               max_age=86400)


def init_app(app) -> None:
    """Template filters and globals the pages use."""
    install(app)


__all__ = ["bp", "init_app"]
