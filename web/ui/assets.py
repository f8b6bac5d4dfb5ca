"""The Assets pages: the list with the producer -> asset -> consumer graph, an asset's page
with its events and their extras, and recording an event (a command to the scheduler)."""

from __future__ import annotations

import json

from flask import abort, redirect, render_template, request, url_for

from web.auth.permissions import READ, RUN_TRIGGER, require
from web.masking import shown
from web.ui.blueprint import bp
from web.ui.commands import send_command
from web.ui.helpers import flash_outcome, int_param, owner_name, store

PAGE_SIZE = 50
#: Boxes of the graph: width, height, the gap between rows and between columns.
BOX_W, BOX_H, ROW_GAP, COL_GAP = 220, 28, 12, 90


def graph_layout(graph: dict) -> dict:
    """Positions of producer DAGs, assets and consumer DAGs in three columns, and the edges
    between them, for the page's SVG."""
    producers = sorted({d for d, _a in graph["produces"]})
    consumers = sorted({d for _a, d in graph["consumes"]})
    columns = [("dag", producers), ("asset", graph["assets"]), ("dag", consumers)]
    nodes, where = [], {}
    for col, (kind, names) in enumerate(columns):
        for row, name in enumerate(names):
            x, y = col * (BOX_W + COL_GAP), row * (BOX_H + ROW_GAP)
            nodes.append({"kind": kind, "name": name, "x": x, "y": y, "col": col})
            where[(col, name)] = (x, y)
    edges = []
    for dag, asset in graph["produces"]:
        edges.append((where[(0, dag)], where[(1, asset)]))
    for asset, dag in graph["consumes"]:
        edges.append((where[(1, asset)], where[(2, dag)]))
    lines = [{"x1": a[0] + BOX_W, "y1": a[1] + BOX_H / 2, "x2": b[0], "y2": b[1] + BOX_H / 2}
             for a, b in edges]
    rows = max([len(n) for _k, n in columns] + [1])
    return {"nodes": nodes, "lines": lines, "width": 3 * BOX_W + 2 * COL_GAP,
            "height": rows * (BOX_H + ROW_GAP), "box_w": BOX_W, "box_h": BOX_H}


@bp.route("/assets")
@require(READ)
def assets():
    """Every asset with its event count and newest event, and the graph of who produces and
    who consumes what."""
    from updraft.store.assets import asset_graph, count_assets, list_assets

    search = (request.args.get("search") or "").strip() or None
    page = int_param("page", 1, minimum=1, maximum=100_000)
    with store() as session:
        rows = list_assets(session, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
                           search=search)
        total = count_assets(session, search)
        graph = graph_layout(asset_graph(session)) if not search else None
    return render_template("assets.html", rows=rows, total=total, page=page, search=search,
                           more=page * PAGE_SIZE < total, graph=graph,
                           args={"search": search} if search else {})


@bp.route("/assets/<path:name>")
@require(READ)
def asset_page(name: str):
    """One asset: its definition, producers, consumers (with their waiting events) and its
    events, newest first, with their extras."""
    from updraft.store.assets import asset_details, list_events

    page = int_param("page", 1, minimum=1, maximum=100_000)
    with store() as session:
        found = asset_details(session, name)
        if found is None:
            abort(404, f"asset {name!r} not found")
        events = list_events(session, name=name, ascending=False,
                             offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    for event in events:
        event["extra_text"] = json.dumps(shown(event["extra"]), indent=1, sort_keys=True,
                                         default=str)
    return render_template("asset.html", asset=found, events=events, page=page,
                           more=page * PAGE_SIZE < found["events"], args={},
                           extra_text=json.dumps(shown(found["extra"]), sort_keys=True))


@bp.route("/assets/<path:name>/event", methods=["POST"])
@require(RUN_TRIGGER)
def record_asset_event(name: str):
    """Record an event of the asset with the extra typed in the form (over the bus)."""
    back = url_for("ui.asset_page", name=name)
    text = (request.form.get("extra") or "").strip() or "{}"
    try:
        extra = json.loads(text)
    except ValueError as exc:
        from flask import flash

        flash(f"Refused: the extra is not valid JSON: {exc}", "error")
        return redirect(back)
    if not isinstance(extra, dict):
        from flask import flash

        flash(f"Refused: the extra must be a JSON object, got {type(extra).__name__}", "error")
        return redirect(back)
    outcome = send_command("asset_event", {"name": name, "extra": extra,
                                           "owner": owner_name()})
    flash_outcome(outcome, f"Recorded event {outcome.result.get('event_id')} of {name}; "
                           "the scheduler starts the runs of the DAGs scheduled on it")
    return redirect(back)


def triggering_events(session, dag_id: str, run_id: str) -> list[dict]:
    """The events a run consumed, for its page (with their extras as text)."""
    from updraft.store.assets import run_triggering_events

    events = run_triggering_events(session, dag_id, run_id, limit=200)
    for event in events:
        event["extra_text"] = json.dumps(shown(event["extra"]), sort_keys=True, default=str)
    return events
