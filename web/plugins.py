"""Web extensions: Flask blueprints and menu links registered by plugins, served behind login.

``register_plugin_views(app)`` mounts every ``WebExtension`` of the registry (entry-point group
``updraft.web``, and ``flask_blueprints`` / ``appbuilder_menu_items`` / ``external_views`` of
plugins-folder ``AirflowPlugin`` classes). Every request to a plugin blueprint needs a logged-in
user whose role is at least the extension's ``min_role`` ("User" unless it says otherwise):
anonymous callers are sent to the login page (401 for ``/api/...``), others get 403 with the
reason, written to the audit log. CSRF protection and the security headers apply as to every
page. The menu links a user may see are in the navigation bar (``_plugin_menu.html``).

A blueprint that cannot be mounted (a name clash, a broken extension) is logged and listed by
``updraft plugins``; the web node starts without it.
"""

from __future__ import annotations

import logging

from flask import Flask, request

log = logging.getLogger(__name__)


def _rank(role: str) -> int:
    from web.auth.permissions import ROLES

    return ROLES.index(role)


def register_plugin_views(app: Flask) -> None:
    """Mount the plugins' blueprints on ``app`` and collect their menu links."""
    from updraft.plugins import registry
    from web.auth.permissions import validate_role

    guarded: dict[str, str] = {}  # blueprint name -> least role
    links = []
    for name, ext in sorted(registry.load_all("web").items()):
        try:
            min_role = validate_role(ext.min_role)
            for link in ext.menu_links:
                validate_role(link.min_role)
        except ValueError as exc:
            registry.record_error(registry.LoadError("web", name, f"web extension {name!r}",
                                                     str(exc)))
            continue
        for blueprint in ext.blueprints:
            try:
                app.register_blueprint(blueprint)
            except Exception as exc:  # noqa: BLE001  (one plugin must not stop the web node)
                registry.record_error(registry.LoadError(
                    "web", name, f"web extension {name!r}",
                    f"blueprint {getattr(blueprint, 'name', blueprint)!r} cannot be mounted: "
                    f"{registry.describe_exception(exc)}"), exc)
                continue
            guarded[blueprint.name] = min_role
        links.extend(ext.menu_links)

    @app.before_request
    def _plugin_access():
        if not guarded or not request.blueprints:
            return None
        least = next((guarded[b] for b in request.blueprints if b in guarded), None)
        if least is None:
            return None
        from web.auth.permissions import READ, current_user, deny, require

        refused = require(READ)(lambda: None)()  # the login page or 401, as for any page
        if refused is not None:
            return refused
        user = current_user()
        if _rank(user.role) < _rank(least):
            return deny(f"role {user.role} of user {user.username!r} may not open this "
                        f"plugin page (needs {least} or above)")
        return None

    def plugin_menu_links():
        """The plugin menu links the current user may see."""
        from web.auth.permissions import current_user

        user = current_user()
        if user is None:
            return []
        return [link for link in links if _rank(user.role) >= _rank(link.min_role)]

    app.jinja_env.globals["plugin_menu_links"] = plugin_menu_links
    if links or guarded:
        log.info("Web plugins: %d blueprint(s), %d menu link(s)", len(guarded), len(links))
