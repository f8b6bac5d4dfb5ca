"""Assets: data that tasks produce and DAGs are scheduled on, with Airflow 3's names.

``Asset(name=..., uri=..., group=..., extra=...)`` names a piece of data (``Dataset`` is its
Airflow 2 name); a task lists what it writes in ``outlets=`` and what it reads in ``inlets=``.
When a task with outlets succeeds, one *asset event* per outlet asset is recorded with the
try's outcome (``updraft.store.assets``); a DAG with ``schedule=[a, b]``,
``schedule=(a & b) | c`` or an ``AssetOrTimeSchedule`` / ``AssetAndTimeSchedule`` gets runs
from those events under the rule of ADR 10 (every event is consumed by exactly one run of
each consuming DAG). ``AssetAlias`` lets a task decide at run time which asset it wrote.

In a try, ``outlet_events[asset].extra`` and ``yield Metadata(asset, extra)`` annotate the
events the try records, ``inlet_events[asset]`` reads the asset's events (oldest first, lazily
from the store through the try's task services), and ``triggering_asset_events`` holds the
events that started the run.

This module is authoring: it imports nothing heavy and never the store.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Asset", "AssetAccessControl", "AssetAlias", "AssetAll", "AssetAny", "AssetEvent",
    "AssetNameRef", "AssetRef", "AssetUriRef", "AssetWatcher", "BaseAsset", "Dataset",
    "DatasetAlias", "InletEventsAccessors", "Metadata", "Model", "NatsSubjectTrigger",
    "OutletEventAccessor", "OutletEventAccessors", "TriggeringAssetEventsAccessor",
    "condition_from_json", "condition_to_json", "evaluate_condition", "referenced_keys",
]

#: Longest name, URI or group the store keeps (Airflow's limit too).
MAX_IDENTIFIER = 1500
_RESERVED_NAMES = ("self", "context")


def _identifier(kind: str, what: str, value: Any, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{kind} {what} must be a string, got {type(value).__name__}")
    if len(value) > MAX_IDENTIFIER:
        raise ValueError(f"{kind} {what} cannot exceed {MAX_IDENTIFIER} characters")
    if value.isspace() or (not value and not empty_ok):
        raise ValueError(f"{kind} {what} cannot be empty or just whitespace")
    return value


def sanitize_uri(value: Any) -> str:
    """Airflow's URI normalisation: lower-case scheme, no password, no fragment, sorted
    query, no trailing slash; text that is not a URI is kept as it is."""
    uri = str(value)
    parsed = urllib.parse.urlsplit(uri)
    if not parsed.scheme and not parsed.netloc:
        return uri
    scheme = parsed.scheme.lower()
    if not scheme or scheme.startswith("x-"):
        return uri
    if scheme in ("airflow", "updraft"):
        raise ValueError(f"Asset scheme {scheme!r} is reserved")
    netloc = parsed.netloc
    if parsed.password:
        warnings.warn("An Asset URI should not contain a password. User info has been "
                      "automatically dropped.", UserWarning, stacklevel=4)
        netloc = netloc.rpartition("@")[2]
    query = urllib.parse.urlencode(sorted(urllib.parse.parse_qsl(parsed.query))) \
        if parsed.query else ""
    return urllib.parse.urlunsplit(parsed._replace(scheme=scheme, netloc=netloc,
                                                   path=parsed.path.rstrip("/") or "/",
                                                   query=query, fragment=""))


class BaseAsset:
    """What ``schedule=`` accepts: an asset, an alias, a reference, or ``&`` / ``|`` of them."""

    def __or__(self, other: BaseAsset) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(self, other)

    def __and__(self, other: BaseAsset) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(self, other)


@dataclass
class AssetAccessControl:
    """Airflow's multi-team filter of who may produce and consume an asset. Updraft has one
    team, as Airflow without ``[core] multi_team``: the filter is kept and shown, and
    applies to nobody."""

    producer_teams: list[str] = field(default_factory=list)
    allow_global: bool = True
    consumer_teams: list[str] = field(default_factory=list)
    allow_global_consumers: bool = True


class NatsSubjectTrigger:
    """An asset watcher's source: every message on a NATS subject becomes an event.

    ``subject`` may be any core NATS subject (wildcards too), including subjects outside
    systems already publish on. A message whose body is a JSON object becomes the event's
    extra (with ``"extra"`` taken as the extra when it is the only key besides ``"id"``);
    any other body is kept as ``{"data": text}``. The scheduler subscribes with a queue
    group, so one scheduler records each message; a ``Nats-Msg-Id`` header deduplicates.
    Core NATS keeps nothing while no scheduler listens: use the asset's JetStream subject
    (README, "Assets") when no message may be lost.
    """

    def __init__(self, subject: str, *, servers: str | None = None) -> None:
        if not isinstance(subject, str) or not subject.strip() or " " in subject:
            raise ValueError(f"NatsSubjectTrigger subject must be a NATS subject, got "
                             f"{subject!r}")
        self.subject = subject
        self.servers = servers

    def serialize(self) -> dict[str, Any]:
        return {"kind": "nats", "subject": self.subject, "servers": self.servers}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NatsSubjectTrigger) and \
            other.serialize() == self.serialize()

    def __hash__(self) -> int:
        return hash(self.subject)

    def __repr__(self) -> str:
        return f"NatsSubjectTrigger({self.subject!r})"


class AssetWatcher:
    """Turns messages from an outside source into events of its asset (Airflow 3's
    ``AssetWatcher``); Updraft's source is a NATS subject (``NatsSubjectTrigger``)."""

    def __init__(self, name: str, trigger: Any) -> None:
        self.name = _identifier("AssetWatcher", "name", name)
        if not isinstance(trigger, NatsSubjectTrigger):
            from updraft.exceptions import NotSupportedByUpdraft

            raise NotSupportedByUpdraft(
                f"AssetWatcher trigger {type(trigger).__name__} (deferrable triggers; "
                "watch a NATS subject with updraft.assets.NatsSubjectTrigger, or publish "
                "events on the asset's JetStream subject)")
        self.trigger = trigger

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, **self.trigger.serialize()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetWatcher) and other.serialize() == self.serialize()

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"AssetWatcher({self.name!r}, {self.trigger!r})"


class Asset(os.PathLike, BaseAsset):
    """A piece of data that tasks produce (``outlets``) and DAGs are scheduled on.

    ``name`` identifies it (given only a URI, the name is the URI, and the other way round);
    ``group`` defaults to ``"asset"``; ``extra`` describes the asset itself (an event's
    extra is separate: ``outlet_events[asset].extra``).
    """

    asset_type = "asset"

    def __init__(self, name: str | None = None, uri: Any = None, *, group: str | None = None,
                 extra: dict | None = None, watchers: list | None = None,
                 access_control: AssetAccessControl | None = None) -> None:
        if name is None and uri is None:
            raise TypeError("Asset() requires either 'name' or 'uri'")
        if name is None:
            name = str(uri)
        elif uri is None:
            uri = name
        self.name = _identifier(type(self).__name__, "name", name)
        if self.name in _RESERVED_NAMES:
            raise ValueError(f"prohibited name for asset: {self.name}")
        self.uri = sanitize_uri(_identifier(type(self).__name__, "uri", str(uri)))
        self.group = _identifier(type(self).__name__, "group",
                                 self.asset_type if group is None else group, empty_ok=True)
        if extra is not None and not isinstance(extra, dict):
            raise TypeError(f"Asset extra must be a dict, got {type(extra).__name__}")
        self.extra = dict(extra or {})
        self.watchers = list(watchers or [])
        for watcher in self.watchers:
            if not isinstance(watcher, AssetWatcher):
                raise TypeError(f"Asset watchers must be AssetWatcher objects, got {watcher!r}")
        self.access_control = access_control or AssetAccessControl()

    @staticmethod
    def ref(*, name: str = "", uri: str = "") -> AssetRef:
        """A reference to an asset defined elsewhere, by name or by URI."""
        if name and uri:
            raise TypeError("Asset reference must be made to either name or URI, not both")
        if name:
            return AssetNameRef(name)
        if uri:
            return AssetUriRef(uri)
        raise TypeError("Asset reference expects keyword argument 'name' or 'uri'")

    def __fspath__(self) -> str:
        return self.uri

    def _identity(self) -> tuple:
        return (self.name, self.uri, self.group, json.dumps(self.extra, sort_keys=True,
                                                            default=str))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Asset):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, uri={self.uri!r}, " \
               f"group={self.group!r}, extra={self.extra!r}, watchers={self.watchers!r})"

    def __str__(self) -> str:
        return self.__repr__()

    def to_json(self) -> dict[str, Any]:
        """The asset's definition as the store keeps it."""
        data: dict[str, Any] = {"name": self.name, "uri": self.uri, "group": self.group,
                                "extra": self.extra}
        if self.watchers:
            data["watchers"] = [w.serialize() for w in self.watchers]
        return data


class Dataset(Asset):
    """Airflow 2's name of an asset (its group is ``"dataset"``)."""

    asset_type = "dataset"


class Model(Asset):
    """An asset of the group ``"model"``."""

    asset_type = "model"


class AssetRef(BaseAsset):
    """A reference to an asset by name or URI (``Asset.ref``), resolved when used."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class AssetNameRef(AssetRef):
    """``Asset.ref(name=...)``."""

    def __init__(self, name: str) -> None:
        self.name = _identifier("Asset reference", "name", name)

    def __repr__(self) -> str:
        return f"AssetNameRef(name={self.name!r})"


class AssetUriRef(AssetRef):
    """``Asset.ref(uri=...)``."""

    def __init__(self, uri: str) -> None:
        self.uri = sanitize_uri(_identifier("Asset reference", "uri", uri))

    def __repr__(self) -> str:
        return f"AssetUriRef(uri={self.uri!r})"


class AssetAlias(BaseAsset):
    """A name a task attaches events to at run time (``outlet_events[alias].add(asset)``);
    a DAG scheduled on an alias runs on events of every asset the alias has resolved to."""

    def __init__(self, name: str, *, group: str = "asset") -> None:
        self.name = _identifier("AssetAlias", "name", name)
        self.group = _identifier("AssetAlias", "group", group, empty_ok=True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AssetAlias) and (other.name, other.group) == \
            (self.name, self.group)

    def __hash__(self) -> int:
        return hash(("alias", self.name, self.group))

    def __repr__(self) -> str:
        return f"AssetAlias(name={self.name!r}, group={self.group!r})"


DatasetAlias = AssetAlias


class _Condition(BaseAsset):
    kind = ""

    def __init__(self, *objects: BaseAsset) -> None:
        if not all(isinstance(o, BaseAsset) for o in objects):
            raise TypeError("expect asset expressions in condition")
        self.objects = tuple(objects)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.objects == self.objects  # type: ignore

    def __hash__(self) -> int:
        return hash((self.kind, self.objects))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(map(repr, self.objects))})"


class AssetAny(_Condition):
    """Any one of the assets (``a | b``)."""

    kind = "any"

    def __or__(self, other: BaseAsset) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAny(*self.objects, other)


class AssetAll(_Condition):
    """All of the assets (``a & b``)."""

    kind = "all"

    def __and__(self, other: BaseAsset) -> BaseAsset:
        if not isinstance(other, BaseAsset):
            return NotImplemented
        return AssetAll(*self.objects, other)


DatasetAny, DatasetAll = AssetAny, AssetAll


@dataclass
class Metadata:
    """``yield Metadata(asset, extra)`` from a task: the extra of its event for ``asset``
    (through ``alias`` when given)."""

    asset: Asset
    extra: dict = field(default_factory=dict)
    alias: AssetAlias | None = None


# -- conditions as JSON (the serialized DAG) and their evaluation ---------------------------------


def condition_to_json(obj: BaseAsset) -> dict[str, Any]:
    """The JSON form of a schedule's asset expression."""
    if isinstance(obj, Asset):
        data: dict[str, Any] = {"name": obj.name, "uri": obj.uri, "group": obj.group}
        if obj.watchers:  # a consumer's schedule is where Airflow 3 puts watchers
            data["watchers"] = [w.serialize() for w in obj.watchers]
        return {"asset": data}
    if isinstance(obj, AssetAlias):
        return {"alias": {"name": obj.name, "group": obj.group}}
    if isinstance(obj, AssetNameRef):
        return {"asset_ref": {"name": obj.name}}
    if isinstance(obj, AssetUriRef):
        return {"asset_ref": {"uri": obj.uri}}
    if isinstance(obj, _Condition):
        return {obj.kind: [condition_to_json(o) for o in obj.objects]}
    raise TypeError(f"not an asset expression: {obj!r}")


def _watchers_from_json(data: Any) -> list[AssetWatcher]:
    if data is None:
        return []
    if not isinstance(data, list):
        raise ValueError(f"asset watchers must be a list, got {data!r}")
    return [AssetWatcher(w["name"], NatsSubjectTrigger(w["subject"], servers=w.get("servers")))
            for w in data]


def condition_from_json(data: Any) -> BaseAsset:
    """The asset expression of ``condition_to_json``; ValueError naming what is wrong."""
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"an asset expression must be an object with one key, got {data!r}")
    (kind, value), = data.items()
    if kind in ("any", "all"):
        if not isinstance(value, list):
            raise ValueError(f"asset expression {kind!r} needs a list")
        parts = [condition_from_json(v) for v in value]
        return AssetAny(*parts) if kind == "any" else AssetAll(*parts)
    if not isinstance(value, dict):
        raise ValueError(f"asset expression {kind!r} needs an object")
    if kind == "asset":
        unknown = set(value) - {"name", "uri", "group", "watchers"}
        if unknown:
            raise ValueError(f"unknown asset fields {sorted(unknown)}")
        return Asset(name=value["name"], uri=value["uri"], group=value.get("group", "asset"),
                     watchers=_watchers_from_json(value.get("watchers")))
    if kind == "alias":
        return AssetAlias(value["name"], group=value.get("group", "asset"))
    if kind == "asset_ref":
        return Asset.ref(name=value.get("name", ""), uri=value.get("uri", ""))
    raise ValueError(f"unknown asset expression {kind!r}")


def referenced_keys(data: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Every (kind, key) an asset expression (JSON form) refers to: ``("asset", name)``,
    ``("alias", name)``, ``("name", name)`` / ``("uri", uri)`` for references."""
    (kind, value), = data.items()
    if kind in ("any", "all"):
        for part in value:
            yield from referenced_keys(part)
    elif kind == "asset":
        yield ("asset", value["name"])
    elif kind == "alias":
        yield ("alias", value["name"])
    elif "name" in value:
        yield ("name", value["name"])
    else:
        yield ("uri", value["uri"])


def evaluate_condition(data: dict[str, Any], holds: Callable[[str, str], bool]) -> bool:
    """Whether an asset expression (JSON form) is true when ``holds(kind, key)`` says which
    referenced keys have events (see ``referenced_keys``)."""
    (kind, value), = data.items()
    if kind == "any":
        return any(evaluate_condition(part, holds) for part in value)
    if kind == "all":
        return all(evaluate_condition(part, holds) for part in value)
    if kind == "asset":
        return holds("asset", value["name"])
    if kind == "alias":
        return holds("alias", value["name"])
    if "name" in value:
        return holds("name", value["name"])
    return holds("uri", value["uri"])


def describe_condition(data: dict[str, Any]) -> str:
    """A short text of an asset expression for people: ``a & (b | c)``."""
    (kind, value), = data.items()
    if kind in ("any", "all"):
        joiner = " | " if kind == "any" else " & "
        parts = [describe_condition(v) for v in value]
        text = joiner.join(f"({p})" if (" | " in p or " & " in p) else p for p in parts)
        return text
    if kind == "asset":
        return value["name"]
    if kind == "alias":
        return f"alias {value['name']}"
    return f"ref {value.get('name') or value.get('uri')}"


def as_condition(schedule: Any) -> BaseAsset | None:
    """The asset expression of ``schedule=`` when it is one (a list of assets means all of
    them, as in Airflow), else None."""
    if isinstance(schedule, BaseAsset):
        return schedule
    if isinstance(schedule, (list, tuple)) and schedule and \
            all(isinstance(s, BaseAsset) for s in schedule):
        return AssetAll(*schedule)
    return None


# -- events in a try's context ---------------------------------------------------------------------


@dataclass(frozen=True)
class AssetEvent:
    """One recorded asset event, as a task sees it (``inlet_events``,
    ``triggering_asset_events``)."""

    id: int
    asset: Asset
    extra: dict
    timestamp: datetime
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    source_map_index: int = -1
    source: str = "task"
    source_aliases: tuple = ()

    @property
    def uri(self) -> str:
        return self.asset.uri

    @property
    def asset_id(self) -> str:
        return self.asset.name

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AssetEvent:
        """From the plain form task services return."""
        stamp = data["timestamp"]
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp)
        asset = Asset(name=data["asset_name"], uri=data["asset_uri"],
                      group=data.get("asset_group") or "asset")
        return cls(id=data["id"], asset=asset, extra=dict(data.get("extra") or {}),
                   timestamp=stamp, source_dag_id=data.get("source_dag_id"),
                   source_run_id=data.get("source_run_id"),
                   source_task_id=data.get("source_task_id"),
                   source_map_index=data.get("source_map_index", -1)
                   if data.get("source_map_index") is not None else -1,
                   source=data.get("source") or "task",
                   source_aliases=tuple(data.get("source_aliases") or ()))


def _key_of(obj: Any) -> tuple[str, str]:
    if isinstance(obj, Asset):
        return ("asset", obj.name)
    if isinstance(obj, AssetAlias):
        return ("alias", obj.name)
    if isinstance(obj, AssetNameRef):
        return ("name", obj.name)
    if isinstance(obj, AssetUriRef):
        return ("uri", obj.uri)
    raise TypeError(f"Key should be either an asset or an asset alias, not {type(obj)}")


class OutletEventAccessor:
    """``outlet_events[asset]``: the extra of the event the try records for ``asset``, or
    for an alias the events added through it (``.add(asset, extra)``)."""

    def __init__(self, key: Any) -> None:
        self.key = key
        self.extra: dict = {}
        self.asset_alias_events: list[dict[str, Any]] = []

    def add(self, asset: Any, extra: dict | None = None) -> None:
        """Record an event for ``asset`` through this alias (ignored on an asset, as in
        Airflow)."""
        if not isinstance(self.key, AssetAlias):
            return
        if isinstance(asset, AssetRef):
            raise TypeError("outlet_events[alias].add() needs an Asset, not a reference, in "
                            "Updraft")
        if not isinstance(asset, Asset):
            raise TypeError(f"outlet_events[alias].add() needs an Asset, got {asset!r}")
        self.asset_alias_events.append({"alias": self.key.name, "asset": asset.to_json(),
                                        "extra": dict(extra or {})})

    def add_partitions(self, *_args: Any, **_kwargs: Any) -> None:
        from updraft.exceptions import NotSupportedByUpdraft

        raise NotSupportedByUpdraft("asset partitions (Airflow 3.2's partitioned assets)")

    def __repr__(self) -> str:
        return f"OutletEventAccessor(key={self.key!r}, extra={self.extra!r})"


class OutletEventAccessors(Mapping):
    """``outlet_events``: an accessor per asset or alias, created on first use."""

    def __init__(self, outlets: Iterable[Any] = ()) -> None:
        self._dict: dict[tuple[str, str], OutletEventAccessor] = {}
        self._objects: dict[tuple[str, str], Any] = {}
        for outlet in outlets:
            if isinstance(outlet, (Asset, AssetAlias, AssetRef)):
                self._objects[_key_of(outlet)] = outlet

    def __getitem__(self, key: Any) -> OutletEventAccessor:
        if isinstance(key, AssetRef):
            # A reference names an outlet by name or URI: use that outlet's accessor.
            for known, obj in self._objects.items():
                if isinstance(obj, Asset) and ((isinstance(key, AssetNameRef) and
                                                obj.name == key.name) or
                                               (isinstance(key, AssetUriRef) and
                                                obj.uri == key.uri)):
                    key = obj
                    break
        hashable = _key_of(key)
        if hashable not in self._dict:
            self._dict[hashable] = OutletEventAccessor(key)
            self._objects.setdefault(hashable, key)
        return self._dict[hashable]

    def __iter__(self) -> Iterator[Any]:
        return (self._objects[k] for k in self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __repr__(self) -> str:
        return f"OutletEventAccessors({list(self._dict.values())!r})"

    def events_for(self, outlets: Sequence[Any]) -> list[dict[str, Any]]:
        """The events a successful try records: one per outlet asset (its extra from this
        accessor), and each event added through an outlet alias. Plain JSON."""
        events: list[dict[str, Any]] = []
        for outlet in outlets:
            if isinstance(outlet, Asset):
                accessor = self._dict.get(_key_of(outlet))
                events.append({"asset": outlet.to_json(),
                               "extra": dict(accessor.extra) if accessor else {}})
            elif isinstance(outlet, AssetRef):
                accessor = self._dict.get(_key_of(outlet))
                events.append({"asset_ref": {"name": getattr(outlet, "name", None),
                                             "uri": getattr(outlet, "uri", None)},
                               "extra": dict(accessor.extra) if accessor else {}})
        aliases = {o.name for o in outlets if isinstance(o, AssetAlias)}
        for accessor in self._dict.values():
            for event in accessor.asset_alias_events:
                if event["alias"] in aliases:
                    events.append(dict(event))
        return events


def _services(context_services: Any) -> Any:
    if context_services is None:
        from updraft.task_services import NoTaskServices

        return NoTaskServices()
    return context_services


class InletEventsAccessor(Sequence):
    """The events of one asset or alias, oldest first, read from the store lazily and in
    pages (an asset with 50,000 events is never read whole): ``len()``, indexes and slices
    (``[-1]``, ``[:-2]``) each ask the store only for what they need."""

    _PAGE = 500

    def __init__(self, services: Any, *, name: str | None = None, uri: str | None = None,
                 alias: str | None = None) -> None:
        self._services = services
        self._query: dict[str, Any] = {"name": name, "uri": uri, "alias": alias}
        self._after: Any = None
        self._before: Any = None
        self._ascending = True
        self._limit: int | None = None
        self._count: int | None = None

    def _copy(self, **changes: Any) -> InletEventsAccessor:
        other = InletEventsAccessor(self._services, **self._query)
        other._after, other._before = self._after, self._before
        other._ascending, other._limit = self._ascending, self._limit
        for key, value in changes.items():
            setattr(other, key, value)
        return other

    def after(self, after: Any) -> InletEventsAccessor:
        return self._copy(_after=after)

    def before(self, before: Any) -> InletEventsAccessor:
        return self._copy(_before=before)

    def ascending(self, ascending: bool = True) -> InletEventsAccessor:
        return self._copy(_ascending=ascending)

    def limit(self, limit: int) -> InletEventsAccessor:
        return self._copy(_limit=limit)

    def _fetch(self, offset: int, count: int) -> list[AssetEvent]:
        rows = _services(self._services).asset_events(
            **self._query, after=self._after, before=self._before,
            ascending=self._ascending, offset=offset, limit=count)
        return [AssetEvent.from_json(row) for row in rows]

    def __len__(self) -> int:
        if self._count is None:
            total = _services(self._services).count_asset_events(
                **self._query, after=self._after, before=self._before)
            self._count = total if self._limit is None else min(total, self._limit)
        return self._count

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._fetch(start, max(0, stop - start)) if stop > start else []
        if not isinstance(index, int):
            raise TypeError(f"indices must be integers or slices, not {type(index).__name__}")
        size = len(self)
        position = index + size if index < 0 else index
        if not 0 <= position < size:
            raise IndexError("asset event index out of range")
        return self._fetch(position, 1)[0]

    def __iter__(self) -> Iterator[AssetEvent]:
        size = len(self)
        for offset in range(0, size, self._PAGE):
            yield from self._fetch(offset, min(self._PAGE, size - offset))

    def __repr__(self) -> str:
        what = self._query["alias"] or self._query["name"] or self._query["uri"]
        return f"InletEventsAccessor({what!r})"


class InletEventsAccessors(Mapping):
    """``inlet_events``: the events of each inlet (``inlet_events[asset]``,
    ``inlet_events.for_asset(uri=...)``, ``inlet_events[0]``)."""

    def __init__(self, inlets: Sequence[Any], services: Any = None) -> None:
        self._inlets = list(inlets)
        self._services = services

    def __iter__(self) -> Iterator[Any]:
        return iter(self._inlets)

    def __len__(self) -> int:
        return len(self._inlets)

    def __getitem__(self, key: Any) -> InletEventsAccessor:
        if isinstance(key, int):
            key = self._inlets[key]
            if not isinstance(key, (Asset, AssetAlias, AssetRef)):
                raise IndexError(key)
        if isinstance(key, AssetAlias):
            if key not in self._inlets:
                raise KeyError(key)
            return InletEventsAccessor(self._services, alias=key.name)
        if isinstance(key, Asset):
            if not any(_matches(inlet, key) for inlet in self._inlets):
                raise KeyError(key)
            return InletEventsAccessor(self._services, name=key.name, uri=key.uri)
        if isinstance(key, AssetNameRef):
            if not any(getattr(i, "name", None) == key.name for i in self._inlets
                       if isinstance(i, (Asset, AssetNameRef))):
                raise KeyError(key)
            return InletEventsAccessor(self._services, name=key.name)
        if isinstance(key, AssetUriRef):
            if not any(getattr(i, "uri", None) == key.uri for i in self._inlets
                       if isinstance(i, (Asset, AssetUriRef))):
                raise KeyError(key)
            return InletEventsAccessor(self._services, uri=key.uri)
        raise TypeError(f"`key` is of unknown type ({type(key).__name__})")

    def for_asset(self, *, name: str | None = None, uri: str | None = None) -> Any:
        if name and uri:
            return self[Asset(name=name, uri=uri)]
        if name:
            return self[Asset.ref(name=name)]
        if uri:
            return self[Asset.ref(uri=uri)]
        raise ValueError("name and uri cannot both be None")

    def for_asset_alias(self, *, name: str) -> Any:
        return self[AssetAlias(name)]


def _matches(inlet: Any, asset: Asset) -> bool:
    if isinstance(inlet, Asset):
        return (inlet.name, inlet.uri) == (asset.name, asset.uri)
    if isinstance(inlet, AssetNameRef):
        return inlet.name == asset.name
    if isinstance(inlet, AssetUriRef):
        return inlet.uri == asset.uri
    return False


class TriggeringAssetEventsAccessor(Mapping):
    """``triggering_asset_events``: the events that started this run, by asset (and by each
    alias they came through), read once from the store on first use."""

    def __init__(self, loader: Callable[[], list[AssetEvent]] | None = None,
                 events: Iterable[AssetEvent] | None = None) -> None:
        self._loader = loader
        self._events: list[AssetEvent] | None = list(events) if events is not None else None

    def _all(self) -> list[AssetEvent]:
        if self._events is None:
            self._events = list(self._loader()) if self._loader is not None else []
        return self._events

    def _grouped(self) -> dict[tuple[str, str], list[AssetEvent]]:
        grouped: dict[tuple[str, str], list[AssetEvent]] = {}
        for event in self._all():
            grouped.setdefault(("asset", event.asset.name), []).append(event)
            for alias in event.source_aliases:
                grouped.setdefault(("alias", alias), []).append(event)
        return grouped

    def __getitem__(self, key: Any) -> list[AssetEvent]:
        if isinstance(key, str):  # Airflow 2 templates index by URI
            matches = [e for e in self._all() if e.asset.uri == key or e.asset.name == key]
            if not matches:
                raise KeyError(key)
            return matches
        if isinstance(key, AssetUriRef):
            matches = [e for e in self._all() if e.asset.uri == key.uri]
            if not matches:
                raise KeyError(key)
            return matches
        found = self._grouped().get(("asset", key.name) if isinstance(key, (Asset,
                                                                              AssetNameRef))
                                    else _key_of(key))
        if found is None:
            raise KeyError(key)
        return found

    def __iter__(self) -> Iterator[Any]:
        seen: dict[str, Asset] = {}
        for event in self._all():
            seen.setdefault(event.asset.name, event.asset)
        return iter(seen.values())

    def __len__(self) -> int:
        return len({e.asset.name for e in self._all()})

    def for_asset(self, *, name: str | None = None, uri: str | None = None) -> Any:
        if name:
            return self[Asset.ref(name=name)]
        if uri:
            return self[Asset.ref(uri=uri)]
        raise ValueError("name and uri cannot both be None")

    def __repr__(self) -> str:
        return f"TriggeringAssetEventsAccessor({len(self)} assets)"


def run_generator_with_metadata(generator: Any, outlet_events: Any, log: Any) -> Any:
    """Run a task function's generator to its end: each ``Metadata`` it yields sets the extra
    of its asset's event (and adds an event through its alias); returns what it returned."""
    while True:
        try:
            item = next(generator)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, Metadata) and outlet_events is not None:
            outlet_events[item.asset].extra.update(item.extra)
            if item.alias is not None:
                outlet_events[item.alias].add(item.asset, extra=item.extra)
        else:
            log.warning("Ignoring unknown data of %r received from task", type(item))


def triggering_events_accessor(services: Any, dag_id: str | None,
                               run_id: str | None) -> TriggeringAssetEventsAccessor:
    """``triggering_asset_events`` of a try: the run's events, read on first use."""
    def load() -> list[AssetEvent]:
        if services is None or not dag_id or not run_id:
            return []
        return [AssetEvent.from_json(e) for e in
                services.triggering_asset_events(dag_id, run_id)]

    return TriggeringAssetEventsAccessor(loader=load)


def outlet_events_of(task: Any, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The asset events a successful try of ``task`` records (plain JSON)."""
    outlets = [o for o in (getattr(task, "outlets", None) or [])
               if isinstance(o, (Asset, AssetAlias, AssetRef))]
    accessors = context.get("outlet_events")
    if not outlets or not isinstance(accessors, OutletEventAccessors):
        return []
    return accessors.events_for(outlets)


def iter_outlet_objects(objects: Iterable[Any]) -> list[Any]:
    """The asset-like objects of an ``outlets``/``inlets`` list (others are lineage only)."""
    return [o for o in objects if isinstance(o, (Asset, AssetAlias, AssetRef))]


def lineage_to_json(obj: Any) -> dict[str, Any] | None:
    """An ``outlets``/``inlets`` entry in the serialized DAG (None: not an asset)."""
    if isinstance(obj, Asset):
        return {"asset": obj.to_json()}
    if isinstance(obj, AssetAlias):
        return {"alias": {"name": obj.name, "group": obj.group}}
    if isinstance(obj, AssetNameRef):
        return {"asset_ref": {"name": obj.name}}
    if isinstance(obj, AssetUriRef):
        return {"asset_ref": {"uri": obj.uri}}
    return None


def lineage_from_json(data: Mapping[str, Any]) -> Any:
    """The object of ``lineage_to_json`` (what a task's outlets are in the store)."""
    (kind, value), = data.items()
    if kind == "asset":
        return Asset(name=value["name"], uri=value["uri"], group=value.get("group", "asset"),
                     extra=value.get("extra") or {},
                     watchers=_watchers_from_json(value.get("watchers")))
    if kind == "alias":
        return AssetAlias(value["name"], group=value.get("group", "asset"))
    if kind == "asset_ref":
        return Asset.ref(name=value.get("name") or "", uri=value.get("uri") or "")
    raise ValueError(f"unknown lineage entry {kind!r}")
