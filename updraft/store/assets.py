"""Assets in the store: definitions, references, events and their deliveries (ADR 10).

- ``sync_dag_assets`` (with each new version of a DAG, in its transaction) registers the
  assets and aliases the DAG defines or names and what it does with them
  (``asset_reference``: schedule, outlet, inlet).
- ``record_event`` writes one event and, in the same transaction, one ``asset_delivery`` row
  per DAG scheduled on its asset (directly, by name or URI reference, or through an alias
  that resolved to it), paused, broken and inactive DAGs included: the delivery waits.
- ``record_task_events`` records a successful try's outlet events; the runtime calls it in
  the transaction of the try's outcome (``updraft.runtime.record_try``), so a failed or
  skipped try records none and a recorded success always has its events.
- ``claim_deliveries`` is the one write that consumes: it sets ``run_id`` on a DAG's
  unconsumed deliveries up to an event id, so each (DAG, event) is consumed once.

Every function takes the caller's session; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, or_, select, update
from sqlalchemy import null as sql_null
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from updraft.store.models import (
    AssetAliasAsset,
    AssetAliasModel,
    AssetDelivery,
    AssetEventModel,
    AssetModel,
    AssetReference,
    DagModel,
)

log = logging.getLogger(__name__)

_A = AssetModel.__table__
_E = AssetEventModel.__table__
_D = AssetDelivery.__table__
_R = AssetReference.__table__
_AL = AssetAliasModel.__table__
_AA = AssetAliasAsset.__table__

#: Where an event may come from.
SOURCES = ("task", "nats", "watcher", "api", "cli")


class UnknownAsset(LookupError):
    """An outside event named an asset no DAG defines or refers to."""


# -- definitions ---------------------------------------------------------------------------------


def ensure_asset(session: Session, definition: Mapping[str, Any], now: datetime, *,
                 update_definition: bool = True) -> int:
    """The id of the asset named ``definition["name"]``, created if new; its URI, group,
    extra and watchers follow the definition when ``update_definition``."""
    name = definition["name"]
    row = session.execute(select(_A.c.id, _A.c.uri, _A.c.asset_group, _A.c.extra,
                                 _A.c.watchers).where(_A.c.name == name)).first()
    values = {"uri": definition.get("uri") or name,
              "asset_group": definition.get("group") or "asset",
              "extra": dict(definition.get("extra") or {}),
              "watchers": list(definition.get("watchers") or [])}
    if row is not None:
        # A schedule names an asset without its extra, an outlet without its watchers: the
        # definition keeps what this one does not say.
        for key, column in (("extra", "extra"), ("watchers", "watchers")):
            if key not in definition:
                values[key] = getattr(row, column) or type(values[key])()
    if row is None:
        try:
            with session.begin_nested():
                return session.execute(insert(_A).values(
                    name=name, created_at=now, updated_at=now,
                    **values)).inserted_primary_key[0]
        except IntegrityError:  # created meanwhile by another node
            return session.execute(select(_A.c.id).where(_A.c.name == name)).scalar_one()
    if update_definition and (row.uri, row.asset_group, row.extra or {}, row.watchers or []) \
            != (values["uri"], values["asset_group"], values["extra"], values["watchers"]):
        session.execute(update(_A).where(_A.c.id == row.id).values(updated_at=now, **values))
    return row.id


def ensure_alias(session: Session, name: str, group: str = "asset") -> int:
    """The id of the alias ``name``, created if new."""
    found = session.execute(select(_AL.c.id).where(_AL.c.name == name)).scalar()
    if found is not None:
        return found
    try:
        with session.begin_nested():
            return session.execute(insert(_AL).values(
                name=name, alias_group=group)).inserted_primary_key[0]
    except IntegrityError:
        return session.execute(select(_AL.c.id).where(_AL.c.name == name)).scalar_one()


def _link_alias(session: Session, alias_id: int, asset_id: int) -> None:
    exists = session.execute(select(_AA.c.alias_id).where(_AA.c.alias_id == alias_id,
                                                          _AA.c.asset_id == asset_id)).first()
    if exists is None:
        try:
            with session.begin_nested():
                session.execute(insert(_AA).values(alias_id=alias_id, asset_id=asset_id))
        except IntegrityError:
            pass


def _condition_of(timetable: Mapping[str, Any]) -> dict | None:
    if timetable.get("type") in ("asset", "asset_or_time", "asset_and_time"):
        return timetable.get("condition")
    return None


def _walk_condition(condition: Mapping[str, Any]) -> Iterable[tuple[str, dict]]:
    (kind, value), = condition.items()
    if kind in ("any", "all"):
        for part in value:
            yield from _walk_condition(part)
    else:
        yield kind, value


def _target(kind: str, value: Mapping[str, Any]) -> tuple[str, str]:
    if kind == "asset":
        return "asset", value["name"]
    if kind == "alias":
        return "alias", value["name"]
    if value.get("name"):
        return "name", value["name"]
    return "uri", value["uri"]


def sync_dag_assets(session: Session, dag_id: str, body: Mapping[str, Any],
                    now: datetime) -> None:
    """Register what a new version of a DAG (its serialized body) defines and names, and
    replace its references. Unconsumed deliveries of assets the DAG no longer schedules on
    are dropped (the author took the asset out of the schedule), and logged."""
    refs: set[tuple[str, str, str, str]] = set()
    definitions: dict[str, dict] = {}
    aliases: dict[str, str] = {}
    condition = _condition_of(body.get("timetable") or {})
    if condition is not None:
        for kind, value in _walk_condition(condition):
            ttype, target = _target(kind, value)
            refs.add(("schedule", "", ttype, target))
            if kind == "asset":
                definitions.setdefault(value["name"], dict(value))
            elif kind == "alias":
                aliases[value["name"]] = value.get("group") or "asset"
    for task in body.get("tasks") or []:
        for kind in ("outlets", "inlets"):
            for entry in task.get(kind) or []:
                (etype, value), = entry.items()
                ttype, target = _target(etype, value)
                refs.add((kind[:-1], task["task_id"], ttype, target))
                if etype == "asset":
                    # A task's definition (with extra and watchers) wins over a schedule's.
                    definitions[value["name"]] = dict(value)
                elif etype == "alias":
                    aliases[value["name"]] = value.get("group") or "asset"
    for definition in definitions.values():
        ensure_asset(session, definition, now,
                     update_definition="extra" in definition or "watchers" in definition)
    for name, group in aliases.items():
        ensure_alias(session, name, group)
    session.execute(delete(_R).where(_R.c.dag_id == dag_id))
    if refs:
        session.execute(insert(_R), [{"dag_id": dag_id, "kind": kind, "task_id": task_id,
                                      "target_type": ttype, "target": target}
                                     for kind, task_id, ttype, target in sorted(refs)])
    scheduled = _scheduled_asset_ids(session, dag_id)
    stale = delete(_D).where(_D.c.dag_id == dag_id, _D.c.run_id.is_(None))
    if scheduled:
        stale = stale.where(_D.c.asset_id.not_in(scheduled))
    dropped = session.execute(stale).rowcount
    if dropped:
        log.warning("DAG %s no longer schedules on some assets: %d of their events that it "
                    "had not consumed are dropped for it", dag_id, dropped)


def _scheduled_asset_ids(session: Session, dag_id: str) -> list[int]:
    refs = select(_R.c.target_type, _R.c.target).where(_R.c.dag_id == dag_id,
                                                       _R.c.kind == "schedule").subquery()
    by_name = select(_A.c.id).join(refs, and_(refs.c.target_type.in_(("asset", "name")),
                                              refs.c.target == _A.c.name))
    by_uri = select(_A.c.id).join(refs, and_(refs.c.target_type == "uri",
                                             refs.c.target == _A.c.uri))
    by_alias = select(_AA.c.asset_id).join(_AL, _AL.c.id == _AA.c.alias_id).join(
        refs, and_(refs.c.target_type == "alias", refs.c.target == _AL.c.name))
    return sorted({r[0] for q in (by_name, by_uri, by_alias) for r in session.execute(q)})


def forget_dag(session: Session, dag_id: str) -> None:
    """A deleted DAG consumes nothing any more: drop its references and waiting deliveries."""
    session.execute(delete(_R).where(_R.c.dag_id == dag_id))
    session.execute(delete(_D).where(_D.c.dag_id == dag_id, _D.c.run_id.is_(None)))


# -- events ---------------------------------------------------------------------------------------


def _consumers(asset_id: int, name: str, uri: str):
    """The DAGs scheduled on this asset (SELECT of dag_id)."""
    alias_names = select(_AL.c.name).join(_AA, _AA.c.alias_id == _AL.c.id).where(
        _AA.c.asset_id == asset_id)
    return select(_R.c.dag_id).where(
        _R.c.kind == "schedule",
        or_(and_(_R.c.target_type.in_(("asset", "name")), _R.c.target == name),
            and_(_R.c.target_type == "uri", _R.c.target == uri),
            and_(_R.c.target_type == "alias", _R.c.target.in_(alias_names)))).distinct()


def record_event(session: Session, *, asset_id: int, extra: Mapping[str, Any] | None,
                 source: str, now: datetime, source_dag_id: str | None = None,
                 source_run_id: str | None = None, source_task_id: str | None = None,
                 source_map_index: int | None = None, source_try_number: int | None = None,
                 aliases: Iterable[str] = (), msg_id: str | None = None) -> int:
    """Write one event of the asset ``asset_id`` and its deliveries; the event's id."""
    name, uri = session.execute(select(_A.c.name, _A.c.uri).where(_A.c.id == asset_id)).one()
    event_id = session.execute(insert(_E).values(
        asset_id=asset_id, extra=dict(extra or {}), source=source,
        source_dag_id=source_dag_id, source_run_id=source_run_id,
        source_task_id=source_task_id, source_map_index=source_map_index,
        source_try_number=source_try_number,
        source_aliases=sorted(set(aliases)) or sql_null(),
        msg_id=msg_id, timestamp=now)).inserted_primary_key[0]
    consumers = _consumers(asset_id, name, uri).subquery()
    session.execute(insert(_D).from_select(
        ["dag_id", "event_id", "asset_id", "created_at"],
        select(consumers.c.dag_id, literal(event_id), literal(asset_id),
               literal(now, type_=_D.c.created_at.type))))
    return event_id


def find_asset(session: Session, *, name: str | None = None,
               uri: str | None = None) -> Any | None:
    """The asset row named ``name`` (or, without a name, the first with ``uri``)."""
    query = select(_A)
    if name:
        query = query.where(_A.c.name == name)
        if uri:
            query = query.where(_A.c.uri == uri)
    elif uri:
        query = query.where(_A.c.uri == uri).order_by(_A.c.id)
    else:
        return None
    return session.execute(query.limit(1)).first()


def record_task_events(session: Session, *, dag_id: str, run_id: str, task_id: str,
                       map_index: int, try_number: int, events: Iterable[Mapping[str, Any]],
                       now: datetime) -> list[int]:
    """Record a successful try's outlet events (``OutletEventAccessors.events_for``): one
    per outlet asset, one per (asset, extra) added through outlet aliases."""
    ids: list[int] = []
    source = {"source_dag_id": dag_id, "source_run_id": run_id, "source_task_id": task_id,
              "source_map_index": map_index, "source_try_number": try_number}
    through_aliases: dict[tuple[str, str], tuple[dict, dict, set[str]]] = {}
    import json

    for event in events:
        if "alias" in event:
            key = (event["asset"]["name"], json.dumps(event.get("extra") or {},
                                                      sort_keys=True, default=str))
            entry = through_aliases.setdefault(key, (event["asset"], event.get("extra") or {},
                                                     set()))
            entry[2].add(event["alias"])
            continue
        if "asset" in event:
            asset_id = ensure_asset(session, event["asset"], now, update_definition=False)
        else:
            ref = event["asset_ref"]
            row = find_asset(session, name=ref.get("name"), uri=ref.get("uri"))
            if row is None:
                log.warning("Task %s.%s has an outlet reference %s that no DAG defines: no "
                            "event recorded for it", dag_id, task_id, ref)
                continue
            asset_id = row.id
        ids.append(record_event(session, asset_id=asset_id, extra=event.get("extra"),
                                source="task", now=now, **source))
    for definition, extra, alias_names in through_aliases.values():
        asset_id = ensure_asset(session, definition, now, update_definition=False)
        for alias in sorted(alias_names):
            _link_alias(session, ensure_alias(session, alias), asset_id)
        ids.append(record_event(session, asset_id=asset_id, extra=extra, source="task",
                                now=now, aliases=alias_names, **source))
    return ids


def record_outside_event(session: Session, *, name: str, extra: Mapping[str, Any] | None,
                         source: str, now: datetime, msg_id: str | None = None
                         ) -> tuple[int, bool]:
    """An event from outside (NATS, API, CLI, a watcher) for the known asset ``name``:
    ``(event id, False)``, or ``(the earlier event's id, True)`` when ``msg_id`` was seen.
    Raises UnknownAsset for a name no DAG defines or refers to."""
    if msg_id is not None:
        seen = session.execute(select(_E.c.id).where(_E.c.msg_id == msg_id)).scalar()
        if seen is not None:
            return seen, True
    row = find_asset(session, name=name)
    if row is None:
        raise UnknownAsset(name)
    try:
        with session.begin_nested():
            return record_event(session, asset_id=row.id, extra=extra, source=source,
                                now=now, msg_id=msg_id), False
    except IntegrityError:
        seen = session.execute(select(_E.c.id).where(_E.c.msg_id == msg_id)).scalar()
        if seen is None:
            raise
        return seen, True


def any_asset_consumer(session: Session) -> bool:
    """Whether any DAG is scheduled on an asset (only then can an event start a run)."""
    from updraft.store.models import AssetReference

    return session.execute(select(AssetReference.id).where(
        AssetReference.kind == "schedule").limit(1)).first() is not None


def newest_event_id(session: Session) -> int:
    """The highest event id (0: none yet)."""
    return session.execute(select(func.max(_E.c.id))).scalar() or 0


# -- consuming ------------------------------------------------------------------------------------


def dags_with_waiting_events(session: Session, limit: int = 500) -> list[str]:
    """DAGs that may consume now: unpaused, active, parsed without errors, with at least one
    unconsumed delivery. Paused, broken and inactive DAGs keep theirs."""
    waiting = select(_D.c.dag_id).where(_D.c.dag_id == DagModel.dag_id,
                                        _D.c.run_id.is_(None)).exists()
    return list(session.scalars(select(DagModel.dag_id).where(
        DagModel.is_paused.is_(False), DagModel.is_active.is_(True),
        DagModel.has_import_errors.is_(False), waiting).order_by(DagModel.dag_id).limit(limit)))


def waiting_chunk(session: Session, dag_id: str, after_event_id: int, limit: int) -> list[Any]:
    """The next ``limit`` unconsumed deliveries of ``dag_id`` after an event id, oldest
    first: (event_id, asset_id, timestamp)."""
    return session.execute(
        select(_D.c.event_id, _D.c.asset_id, _E.c.timestamp)
        .join(_E, _E.c.id == _D.c.event_id)
        .where(_D.c.dag_id == dag_id, _D.c.run_id.is_(None), _D.c.event_id > after_event_id)
        .order_by(_D.c.event_id).limit(limit)).all()


def asset_keys(session: Session, asset_ids: Iterable[int]) -> dict[int, set[tuple[str, str]]]:
    """For each asset id, the keys a schedule condition may name it by: ("asset", name),
    ("name", name), ("uri", uri) and ("alias", a) for each alias that resolved to it."""
    ids = sorted(set(asset_ids))
    keys: dict[int, set[tuple[str, str]]] = {i: set() for i in ids}
    if not ids:
        return keys
    for row in session.execute(select(_A.c.id, _A.c.name, _A.c.uri).where(_A.c.id.in_(ids))):
        keys[row.id] |= {("asset", row.name), ("name", row.name), ("uri", row.uri)}
    for row in session.execute(select(_AA.c.asset_id, _AL.c.name).join(
            _AL, _AL.c.id == _AA.c.alias_id).where(_AA.c.asset_id.in_(ids))):
        keys[row.asset_id].add(("alias", row.name))
    return keys


def claim_deliveries(session: Session, dag_id: str, run_id: str, up_to_event_id: int) -> int:
    """Consume for run ``run_id`` every unconsumed delivery of ``dag_id`` up to an event id
    (one UPDATE: a delivery is consumed once, whoever else tries); how many."""
    return session.execute(update(_D).where(
        _D.c.dag_id == dag_id, _D.c.run_id.is_(None), _D.c.event_id <= up_to_event_id,
    ).values(run_id=run_id)).rowcount


def waiting_count(session: Session, dag_id: str) -> int:
    return session.execute(select(func.count()).select_from(_D).where(
        _D.c.dag_id == dag_id, _D.c.run_id.is_(None))).scalar() or 0


# -- reading (API, UI, CLI, task services) -------------------------------------------------------


def event_json(row: Any, asset_row: Any | None = None) -> dict[str, Any]:
    """An event as plain JSON (with its asset's name and URI when joined)."""
    data = {"id": row.id, "extra": row.extra or {}, "source": row.source,
            "source_dag_id": row.source_dag_id, "source_run_id": row.source_run_id,
            "source_task_id": row.source_task_id, "source_map_index": row.source_map_index,
            "source_aliases": list(row.source_aliases or []),
            "timestamp": row.timestamp}
    names = asset_row if asset_row is not None else row
    data.update(asset_name=getattr(names, "asset_name", None) or getattr(names, "name", None),
                asset_uri=getattr(names, "asset_uri", None) or getattr(names, "uri", None),
                asset_group=getattr(names, "asset_group", None))
    return data


def _event_query():
    return select(_E.c.id, _E.c.extra, _E.c.source, _E.c.source_dag_id, _E.c.source_run_id,
                  _E.c.source_task_id, _E.c.source_map_index, _E.c.source_aliases,
                  _E.c.timestamp, _A.c.name.label("asset_name"),
                  _A.c.uri.label("asset_uri"), _A.c.asset_group).join(
        _A, _A.c.id == _E.c.asset_id)


def _filtered_events(query, *, name: str | None = None, uri: str | None = None,
                     alias: str | None = None, after: Any = None, before: Any = None):
    if alias is not None:
        alias_assets = select(_AA.c.asset_id).join(_AL, _AL.c.id == _AA.c.alias_id).where(
            _AL.c.name == alias)
        query = query.where(_E.c.asset_id.in_(alias_assets))
    if name is not None:
        query = query.where(_A.c.name == name)
    if uri is not None:
        query = query.where(_A.c.uri == uri)
    if after is not None:
        query = query.where(_E.c.timestamp >= _as_dt(after))
    if before is not None:
        query = query.where(_E.c.timestamp <= _as_dt(before))
    return query


def _as_dt(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    from updraft.schedules import coerce_datetime

    return coerce_datetime(value)


def list_events(session: Session, *, name: str | None = None, uri: str | None = None,
                alias: str | None = None, after: Any = None, before: Any = None,
                ascending: bool = True, offset: int = 0, limit: int = 100,
                source_dag_id: str | None = None, source_run_id: str | None = None
                ) -> list[dict[str, Any]]:
    """Events, oldest first (or newest first), filtered; a page of them."""
    query = _filtered_events(_event_query(), name=name, uri=uri, alias=alias, after=after,
                             before=before)
    if source_dag_id is not None:
        query = query.where(_E.c.source_dag_id == source_dag_id)
    if source_run_id is not None:
        query = query.where(_E.c.source_run_id == source_run_id)
    order = _E.c.id if ascending else _E.c.id.desc()
    rows = session.execute(query.order_by(order).offset(offset).limit(limit)).all()
    return [event_json(r) for r in rows]


def count_events(session: Session, *, name: str | None = None, uri: str | None = None,
                 alias: str | None = None, after: Any = None, before: Any = None) -> int:
    query = _filtered_events(select(func.count()).select_from(_E.join(_A, _A.c.id ==
                                                                       _E.c.asset_id)),
                             name=name, uri=uri, alias=alias, after=after, before=before)
    return session.execute(query).scalar() or 0


def run_triggering_events(session: Session, dag_id: str, run_id: str,
                          limit: int | None = None) -> list[dict[str, Any]]:
    """The events a run consumed (its triggering events), oldest first."""
    query = _event_query().join(_D, _D.c.event_id == _E.c.id).where(
        _D.c.dag_id == dag_id, _D.c.run_id == run_id).order_by(_E.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [event_json(r) for r in session.execute(query).all()]


def count_run_triggering_events(session: Session, dag_id: str, run_id: str) -> int:
    return session.execute(select(func.count()).select_from(_D).where(
        _D.c.dag_id == dag_id, _D.c.run_id == run_id)).scalar() or 0


def list_assets(session: Session, *, offset: int = 0, limit: int = 100,
                search: str | None = None) -> list[dict[str, Any]]:
    """Assets by name, each with its event count and newest event time."""
    stats = select(_E.c.asset_id, func.count().label("events"),
                   func.max(_E.c.timestamp).label("last_event")).group_by(
        _E.c.asset_id).subquery()
    query = select(_A, stats.c.events, stats.c.last_event).outerjoin(
        stats, stats.c.asset_id == _A.c.id)
    if search:
        query = query.where(or_(_A.c.name.contains(search), _A.c.uri.contains(search)))
    rows = session.execute(query.order_by(_A.c.name).offset(offset).limit(limit)).all()
    return [asset_json(r, events=r.events or 0, last_event=r.last_event) for r in rows]


def count_assets(session: Session, search: str | None = None) -> int:
    query = select(func.count()).select_from(_A)
    if search:
        query = query.where(or_(_A.c.name.contains(search), _A.c.uri.contains(search)))
    return session.execute(query).scalar() or 0


def asset_json(row: Any, **more: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "uri": row.uri, "group": row.asset_group,
            "extra": row.extra or {}, "watchers": list(row.watchers or []),
            "created_at": row.created_at, "updated_at": row.updated_at, **more}


def asset_details(session: Session, name: str) -> dict[str, Any] | None:
    """An asset with the DAGs that produce it, consume it (schedule on it) and read it,
    the aliases it resolved through, and its event count."""
    row = session.execute(select(_A).where(_A.c.name == name)).first()
    if row is None:
        return None
    alias_names = [r[0] for r in session.execute(select(_AL.c.name).join(
        _AA, _AA.c.alias_id == _AL.c.id).where(_AA.c.asset_id == row.id).order_by(_AL.c.name))]
    matches = or_(and_(_R.c.target_type.in_(("asset", "name")), _R.c.target == row.name),
                  and_(_R.c.target_type == "uri", _R.c.target == row.uri),
                  and_(_R.c.target_type == "alias", _R.c.target.in_(alias_names or [""])))
    refs = session.execute(select(_R.c.dag_id, _R.c.kind, _R.c.task_id).where(matches)
                           .order_by(_R.c.dag_id, _R.c.task_id)).all()
    producers = sorted({(r.dag_id, r.task_id) for r in refs if r.kind == "outlet"})
    producing_dags = {dag for dag, _t in producers}
    # Events name who produced them even when the producer's outlet was an alias.
    for dag_id, task_id in session.execute(select(_E.c.source_dag_id, _E.c.source_task_id)
                                           .where(_E.c.asset_id == row.id,
                                                  _E.c.source_dag_id.is_not(None))
                                           .distinct().limit(100)):
        if (dag_id, task_id) not in producers:
            producers.append((dag_id, task_id))
            producing_dags.add(dag_id)
    consumers = sorted({r.dag_id for r in refs if r.kind == "schedule"})
    waiting = dict(session.execute(select(_D.c.dag_id, func.count()).where(
        _D.c.asset_id == row.id, _D.c.run_id.is_(None)).group_by(_D.c.dag_id)).all())
    return asset_json(
        row,
        events=session.execute(select(func.count()).select_from(_E).where(
            _E.c.asset_id == row.id)).scalar() or 0,
        aliases=alias_names,
        producing_tasks=[{"dag_id": d, "task_id": t} for d, t in sorted(producers)],
        consuming_dags=[{"dag_id": d, "waiting_events": int(waiting.get(d, 0))}
                        for d in consumers],
        reading_tasks=[{"dag_id": r.dag_id, "task_id": r.task_id} for r in refs
                       if r.kind == "inlet"])


def dag_asset_references(session: Session, dag_id: str) -> list[dict[str, Any]]:
    """What a DAG does with assets (schedule, outlets, inlets)."""
    rows = session.execute(select(_R.c.kind, _R.c.task_id, _R.c.target_type, _R.c.target)
                           .where(_R.c.dag_id == dag_id).order_by(_R.c.kind, _R.c.task_id,
                                                                  _R.c.target)).all()
    return [{"kind": r.kind, "task_id": r.task_id or None, "type": r.target_type,
             "target": r.target} for r in rows]


def asset_graph(session: Session, limit: int = 2000) -> dict[str, list]:
    """Producer -> asset -> consumer edges over every asset (for the UI's graph)."""
    assets = session.execute(select(_A.c.id, _A.c.name, _A.c.uri).order_by(_A.c.name)
                             .limit(limit)).all()
    by_name = {a.name: a for a in assets}
    by_uri: dict[str, list] = {}
    for a in assets:
        by_uri.setdefault(a.uri, []).append(a)
    alias_map: dict[str, list[str]] = {}
    for alias, asset_id in session.execute(select(_AL.c.name, _AA.c.asset_id).join(
            _AA, _AA.c.alias_id == _AL.c.id)):
        alias_map.setdefault(alias, []).extend(a.name for a in assets if a.id == asset_id)
    edges: set[tuple[str, str, str]] = set()
    for r in session.execute(select(_R.c.dag_id, _R.c.kind, _R.c.target_type, _R.c.target)
                             .where(_R.c.kind.in_(("outlet", "schedule")))):
        if r.target_type in ("asset", "name"):
            names = [r.target] if r.target in by_name else []
        elif r.target_type == "uri":
            names = [a.name for a in by_uri.get(r.target, [])]
        else:
            names = alias_map.get(r.target, [])
        for name in names:
            edges.add((r.kind, r.dag_id, name))
    for dag_id, name in session.execute(select(_E.c.source_dag_id, _A.c.name).join(
            _A, _A.c.id == _E.c.asset_id).where(_E.c.source_dag_id.is_not(None)).distinct()
            .limit(limit)):
        edges.add(("outlet", dag_id, name))
    return {"assets": [a.name for a in assets],
            "produces": sorted((d, n) for k, d, n in edges if k == "outlet"),
            "consumes": sorted((n, d) for k, d, n in edges if k == "schedule")}


__all__ = ["SOURCES", "UnknownAsset", "asset_details", "asset_graph", "asset_json",
           "asset_keys", "claim_deliveries", "count_assets", "count_events",
           "count_run_triggering_events", "dag_asset_references", "dags_with_waiting_events",
           "ensure_alias", "ensure_asset", "find_asset", "forget_dag", "list_assets",
           "list_events", "newest_event_id", "record_event", "record_outside_event",
           "record_task_events", "run_triggering_events", "sync_dag_assets", "waiting_chunk",
           "waiting_count"]
