"""The classes a plugin author writes against: ``UpdraftPlugin`` (Airflow's ``AirflowPlugin``),
``WebExtension`` and ``MenuLink`` for the web node, and ``MacroNamespace``.

An ``UpdraftPlugin`` subclass in a file of the plugins folder contributes the extensions its
class attributes list, exactly as an ``AirflowPlugin`` does in Airflow. The same extensions
can come from a package instead, one entry point each (see README, "Plugins and extension
points"). This module imports nothing heavy: Flask blueprints are only held, never built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


class UpdraftPlugin:
    """A bundle of extensions, declared as class attributes (Airflow's ``AirflowPlugin``).

    Supported: ``timetables``, ``priority_weight_strategies``, ``macros``, ``listeners``,
    ``flask_blueprints``, ``appbuilder_menu_items`` and ``external_views`` (menu links).
    Any other non-empty Airflow attribute is reported by ``updraft plugins`` as not supported,
    and the rest of the plugin still loads.
    """

    name: ClassVar[str | None] = None
    #: Set by the loader: the file the plugin came from.
    source: ClassVar[str | None] = None

    timetables: ClassVar[list[type]] = []
    priority_weight_strategies: ClassVar[list[type]] = []
    macros: ClassVar[list[Callable]] = []
    listeners: ClassVar[list[Any]] = []
    flask_blueprints: ClassVar[list[Any]] = []
    appbuilder_menu_items: ClassVar[list[dict]] = []
    external_views: ClassVar[list[dict]] = []
    #: Airflow attributes Updraft does not serve (reported when non-empty).
    appbuilder_views: ClassVar[list[Any]] = []
    fastapi_apps: ClassVar[list[Any]] = []
    fastapi_root_middlewares: ClassVar[list[Any]] = []
    react_apps: ClassVar[list[Any]] = []
    operator_extra_links: ClassVar[list[Any]] = []
    global_operator_extra_links: ClassVar[list[Any]] = []

    @classmethod
    def validate(cls) -> None:
        """Raise ValueError if the plugin cannot be registered (it needs a name)."""
        if not cls.name or not isinstance(cls.name, str):
            raise ValueError(f"plugin class {cls.__module__}.{cls.__qualname__} has no name: "
                             "set the class attribute name = '...'")

    @classmethod
    def on_load(cls, *args: Any, **kwargs: Any) -> None:
        """Called once when the plugin is loaded; override to set things up."""


#: Airflow's name for the same class (``from airflow.plugins_manager import AirflowPlugin``).
AirflowPlugin = UpdraftPlugin

#: Attributes of an AirflowPlugin that Updraft does not serve, with what to do instead.
UNSUPPORTED_PLUGIN_ATTRIBUTES: dict[str, str] = {
    "appbuilder_views": "Flask-AppBuilder views; register a Flask blueprint in "
                        "flask_blueprints instead",
    "fastapi_apps": "FastAPI apps (Updraft's web node is Flask); register a Flask blueprint",
    "fastapi_root_middlewares": "FastAPI middlewares (Updraft's web node is Flask)",
    "react_apps": "React apps in Airflow's UI; serve the page from a Flask blueprint",
    "operator_extra_links": "operator extra links",
    "global_operator_extra_links": "operator extra links",
}


@dataclass(frozen=True)
class MenuLink:
    """A link in the web node's navigation bar (``category`` groups links under one label)."""

    name: str
    href: str
    category: str | None = None
    #: The least role that sees the link ("Viewer", "User", "Op", "Admin").
    min_role: str = "User"

    def __post_init__(self) -> None:
        if not str(self.href).startswith(("/", "http://", "https://")):
            raise ValueError(f"menu link {self.name!r}: href must be a path (/...) or an "
                             f"http(s) URL, got {self.href!r}")

    @classmethod
    def from_airflow(cls, item: Mapping[str, Any], min_role: str = "User") -> MenuLink:
        """A link from an ``appbuilder_menu_items`` or ``external_views`` dict."""
        name = item.get("name") or item.get("label")
        href = item.get("href") or item.get("url_route")
        if not name or not href:
            raise ValueError(f"a menu item needs a name and an href, got {dict(item)!r}")
        if not str(href).startswith(("/", "http://", "https://")):
            href = f"/{href}"
        return cls(str(name), str(href), item.get("category"), min_role)


@dataclass(frozen=True)
class WebExtension:
    """What one plugin adds to the web node: Flask blueprints (pages or REST endpoints) and
    menu links. Every blueprint is served behind login; a caller whose role is below
    ``min_role`` gets 403."""

    name: str
    blueprints: tuple[Any, ...] = ()
    menu_links: tuple[MenuLink, ...] = ()
    min_role: str = "User"

    @classmethod
    def of(cls, name: str, value: Any) -> WebExtension:
        """A WebExtension from what an ``updraft.web`` entry point gives: a WebExtension, a
        Flask blueprint, or a dict with ``blueprints``, ``menu_links`` and ``min_role``."""
        if isinstance(value, WebExtension):
            return value
        if isinstance(value, Mapping):
            min_role = str(value.get("min_role", "User"))
            links = tuple(link if isinstance(link, MenuLink) else
                          MenuLink.from_airflow(link, min_role)
                          for link in value.get("menu_links", ()))
            return cls(name, tuple(value.get("blueprints", ())), links, min_role)
        if hasattr(value, "register") and hasattr(value, "name"):  # a Flask blueprint
            return cls(name, (value,))
        raise TypeError(f"expected a WebExtension, a Flask blueprint or a dict, got "
                        f"{type(value).__name__}")


@dataclass
class MacroNamespace:
    """``macros.<name>`` in templates: the macros one plugin adds, by their names."""

    name: str
    functions: dict[str, Callable] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, value: Any) -> MacroNamespace:
        """A namespace from what an ``updraft.macros`` entry point gives: a module or object
        (its public attributes), a dict of name -> callable, or a list of functions."""
        if isinstance(value, MacroNamespace):
            return value
        if isinstance(value, Mapping):
            return cls(name, dict(value))
        if isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
            return cls(name, {fn.__name__: fn for fn in value})
        if callable(value) and not isinstance(value, type):
            return cls(name, {value.__name__: value})
        names = getattr(value, "__all__", None) or [n for n in dir(value) if not n.startswith("_")]
        return cls(name, {n: getattr(value, n) for n in names})

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        functions = self.__dict__.get("functions") or {}
        try:
            return functions[attr]
        except KeyError:
            raise AttributeError(f"macros.{self.__dict__.get('name')} has no macro {attr!r}; "
                                 f"it has {', '.join(sorted(functions)) or 'none'}") from None

    def __dir__(self) -> list[str]:
        return sorted(self.functions)


__all__ = [
    "UNSUPPORTED_PLUGIN_ATTRIBUTES",
    "AirflowPlugin",
    "MacroNamespace",
    "MenuLink",
    "UpdraftPlugin",
    "WebExtension",
]
