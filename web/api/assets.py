"""Assets: list, details (producers and consumers), events, the events that triggered a
run, and recording an event (over the bus: the scheduler records it, ADR 10)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from updraft.store.engine import session_scope
from web import queries
from web.api import bp
from web.api.common import (
    date_arg,
    json_body,
    not_found,
    page,
    page_args,
    send_command,
    str_arg,
)
from web.auth.permissions import READ, RUN_TRIGGER, require


def _plain(value: Any) -> Any:
    """Dates as RFC 3339 text, the rest as is (recursively)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return queries.iso(value)
    return value


def event_json(event: dict) -> dict:
    """The API form of an asset event."""
    keys = ("id", "asset_name", "asset_uri", "extra", "source", "source_dag_id",
            "source_run_id", "source_task_id", "source_map_index", "source_aliases",
            "timestamp")
    return _plain({k: event.get(k) for k in keys})


@bp.get("/assets")
@require(READ)
def list_assets():
    """A page of assets by name, each with its event count and newest event time."""
    from updraft.store.assets import count_assets, list_assets as listed

    limit, offset = page_args()
    search = str_arg("search")
    with session_scope() as session:
        rows = listed(session, offset=offset, limit=limit, search=search)
        return page("assets", [_plain(r) for r in rows], count_assets(session, search))


@bp.get("/assets/events")
@require(READ)
def list_asset_events():
    """A page of asset events, newest first; by asset and by producing DAG or run."""
    from updraft.store.assets import count_events, find_asset, list_events

    limit, offset = page_args()
    name = str_arg("asset_name")
    after, before = date_arg("timestamp_gte"), date_arg("timestamp_lte")
    dag_id, run_id = str_arg("source_dag_id"), str_arg("source_run_id")
    with session_scope() as session:
        if name is not None and find_asset(session, name=name) is None:
            raise not_found(f"asset {name!r}")
        rows = list_events(session, name=name, after=after, before=before, ascending=False,
                           offset=offset, limit=limit, source_dag_id=dag_id,
                           source_run_id=run_id)
        total = count_events(session, name=name, after=after, before=before) \
            if dag_id is None and run_id is None else None
        if total is None:  # filtered by producer: count the same filter
            total = offset + len(rows) + (1 if len(rows) == limit else 0)
        return page("asset_events", [event_json(r) for r in rows], total)


@bp.post("/assets/events")
@require(RUN_TRIGGER)
def create_asset_event():
    """Record an event of an asset (the scheduler does it and starts the consumers' runs);
    ``id`` makes it idempotent."""
    body = json_body("AssetEventCreate")
    result = send_command("asset_event", {"name": body["asset_name"],
                                          "extra": body.get("extra") or {},
                                          "id": body.get("id")})
    with session_scope() as session:
        from updraft.store.assets import list_events

        found = [e for e in list_events(session, name=body["asset_name"], ascending=False,
                                        limit=50) if e["id"] == result.get("event_id")]
    answer = event_json(found[0]) if found else {"id": result.get("event_id"),
                                                 "asset_name": body["asset_name"]}
    answer["duplicate"] = bool(result.get("duplicate"))
    return jsonify(answer), (200 if answer["duplicate"] else 201)


@bp.get("/assets/<path:name>")
@require(READ)
def get_asset(name: str):
    """An asset with the tasks that produce it, the DAGs that consume it (and how many of its
    events each has waiting), the tasks that read it and its aliases."""
    from updraft.store.assets import asset_details

    with session_scope() as session:
        found = asset_details(session, name)
    if found is None:
        raise not_found(f"asset {name!r}")
    return jsonify(_plain(found))


@bp.get("/dags/<dag_id>/dagRuns/<run_id>/upstreamAssetEvents")
@require(READ)
def run_asset_events(dag_id: str, run_id: str):
    """The asset events that triggered a run (the events it consumed)."""
    from updraft.store.assets import run_triggering_events

    with session_scope() as session:
        if queries.get_run(session, dag_id, run_id) is None:
            raise not_found(f"run {run_id!r} of DAG {dag_id!r}")
        rows = run_triggering_events(session, dag_id, run_id)
        return page("asset_events", [event_json(r) for r in rows], len(rows))
