"""The grid tab: runs as columns (newest right) with their dates and a bar scaled by each
run's duration, tasks as rows nested in their task groups, and the side panel a click on a
cell opens (a task instance, a group in a run, or a run).

Two queries whatever the DAG's size: one page of runs (``limit`` of them, ``offset`` newest
skipped) and the task instances of those runs. The page's script folds groups, opens the
panel, and swaps in ``?partial=1`` (the grid alone) when a run it does not show appears.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote

from flask import abort, render_template, request, url_for
from sqlalchemy import func, select

from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry, TiEvent
from web.auth.permissions import READ, require
from web.ui.blueprint import bp
from web.ui.helpers import MAX_INT, int_param, store

PAGE_SIZES = (25, 50, 100, 365)
#: Bars are 1 to ``BAR_STEPS`` steps of 4 px high (CSS classes ``bh-N``: the
#: Content-Security-Policy allows no inline style).
BAR_STEPS = 16


@dataclass
class GridRow:
    """A line of the grid: a task, or a task group (whose cells show its worst state)."""

    kind: str  # "task" or "group"
    row_id: str  # task id or group id
    label: str
    depth: int
    parents: list[str]  # enclosing groups, outermost first
    task_ids: list[str] = field(default_factory=list)  # a group's tasks, nested included
    is_mapped: bool = False
    quoted: str = ""  # row_id quoted for a URL (the cells' links are joined, not url_for'd)


@dataclass
class GridRun:
    run_id: str
    state: str
    run_type: str
    date: datetime | None
    start: datetime | None
    end: datetime | None
    duration: float | None
    bar_steps: int = 1
    href: str = ""  # the run's page; its task instances are href + "/tasks/<task>"
    panel: str = ""  # the side panel of the run; cells add "&task_id=" or "&group_id="


def grid_rows(dag) -> list[GridRow]:
    """Tasks and groups in the order of the serialized tree, each level sorted by the graph's
    left-to-right order (a group where its first task is)."""
    from web.ui.graph import parse_groups

    groups, _chains = parse_groups(dag.task_group_json)
    rank = {t: i for i, t in enumerate(task_order(dag))}
    rows: list[GridRow] = []

    def first(node) -> int:
        if isinstance(node, str):
            return rank.get(node, len(rank))
        members = groups[node["group_id"]].task_ids
        return min((rank.get(t, len(rank)) for t in members), default=len(rank))

    def walk(node, parents: list[str]) -> None:
        for child in sorted(node.get("children", []), key=first):
            if isinstance(child, str):
                task = dag.task_dict.get(child)
                if task is None:
                    continue
                label = child[len(parents[-1]) + 1:] if parents and child.startswith(
                    parents[-1] + ".") else child
                rows.append(GridRow("task", child, label, len(parents), list(parents),
                                    [child], bool(task.is_mapped)))
            else:
                gid = child["group_id"]
                info = groups[gid]
                label = gid[len(parents[-1]) + 1:] if parents and gid.startswith(
                    parents[-1] + ".") else info.label
                rows.append(GridRow("group", gid, label, len(parents), list(parents),
                                    list(info.task_ids)))
                walk(child, parents + [gid])

    walk(dag.task_group_json, [])
    return rows


def task_order(dag) -> list[str]:
    """Task ids left to right, top to bottom, as the graph draws them."""
    from web.ui.graph import layout_dag

    layout = layout_dag(dag)
    nodes = [n for n in layout.nodes.values() if n.kind == "task"]
    nodes.sort(key=lambda n: (n.x, n.y))
    return [n.task_ids[0] for n in nodes]


def _duration(start: datetime | None, end: datetime | None, now: datetime) -> float | None:
    if start is None:
        return None
    return max(((end or now) - start).total_seconds(), 0.0)


def grid_data(session, dag, *, offset: int, limit: int, now: datetime | None = None) -> dict:
    """One page of the grid: runs (oldest left), rows, cells by (run id, row id)."""
    from web.ui.graph import aggregate_state

    now = now or datetime.now(UTC)
    total = session.scalar(select(func.count(DagRunModel.id))
                           .where(DagRunModel.dag_id == dag.dag_id)) or 0
    newest_first = session.execute(select(
        DagRunModel.run_id, DagRunModel.state, DagRunModel.run_type, DagRunModel.logical_date,
        DagRunModel.queued_at, DagRunModel.start_date, DagRunModel.end_date)
        .where(DagRunModel.dag_id == dag.dag_id)
        .order_by(DagRunModel.id.desc()).offset(offset).limit(limit)).all()
    runs = [GridRun(r.run_id, r.state, r.run_type, r.logical_date or r.queued_at or r.start_date,
                    r.start_date, r.end_date, _duration(r.start_date, r.end_date, now))
            for r in reversed(newest_first)]
    longest = max((r.duration or 0.0 for r in runs), default=0.0)
    for r in runs:
        if longest > 0 and r.duration is not None:
            r.bar_steps = max(1, round(BAR_STEPS * r.duration / longest))
    rows = grid_rows(dag)
    # url_for per cell is most of the page's time with hundreds of runs: join strings.
    panel = url_for("ui.grid_panel", dag_id=dag.dag_id)
    for r in runs:
        r.href = url_for("ui.run_page", dag_id=dag.dag_id, run_id=r.run_id)
        r.panel = f"{panel}?run_id={quote(r.run_id, safe='')}"
    for row in rows:
        row.quoted = quote(row.row_id, safe="")
    cells: dict[tuple[str, str], dict] = {}
    if runs:
        found: dict[tuple[str, str], list] = defaultdict(list)
        for r in session.execute(select(
                TaskInstanceModel.run_id, TaskInstanceModel.task_id, TaskInstanceModel.state,
                TaskInstanceModel.try_number, TaskInstanceModel.duration,
                TaskInstanceModel.start_date).where(
                TaskInstanceModel.dag_id == dag.dag_id,
                TaskInstanceModel.run_id.in_([r.run_id for r in runs]))):
            found[(r.run_id, r.task_id)].append(r)
        for key, tis in found.items():
            durations = [t.duration for t in tis if t.duration is not None]
            cells[key] = {"state": tis[0].state if len(tis) == 1 else
                          aggregate_state(t.state for t in tis),
                          "try_number": max(t.try_number for t in tis), "count": len(tis),
                          "duration": max(durations) if durations else None}
        for row in rows:
            if row.kind != "group":
                continue
            for run in runs:
                states = [cells[(run.run_id, t)]["state"] for t in row.task_ids
                          if (run.run_id, t) in cells]
                if states:
                    cells[(run.run_id, row.row_id)] = {"state": aggregate_state(states),
                                                       "count": len(states)}
    return {"runs": runs, "rows": rows, "cells": cells, "total": total, "offset": offset,
            "limit": limit, "longest": longest}


def _page_args() -> tuple[int, int]:
    limit = int_param("limit", PAGE_SIZES[0], minimum=1, maximum=PAGE_SIZES[-1])
    offset = int_param("offset", 0, minimum=0, maximum=MAX_INT)
    return offset, limit


@bp.route("/dags/<dag_id>/grid")
@require(READ)
def dag_grid(dag_id: str):
    """The grid tab: a page of runs by tasks and groups; ``?partial=1`` is the grid alone."""
    from web.ui.dags import _chosen_run, _dag_or_404, _runs

    offset, limit = _page_args()
    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        grid = grid_data(session, dag, offset=offset, limit=limit)
        if request.args.get("partial"):
            return render_template("_grid_table.html", dag=dag, grid=grid,
                                   page_sizes=PAGE_SIZES)
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        return render_template("dag_grid.html", row=row, dag=dag, runs=runs, run=run,
                               grid=grid, page_sizes=PAGE_SIZES)


@bp.route("/dags/<dag_id>/panel")
@require(READ)
def grid_panel(dag_id: str):
    """The side panel (an HTML fragment): a task instance (``task_id``), a group in a run
    (``group_id``) or a run (``run_id`` alone)."""
    from web.ui.dags import _dag_or_404
    from web.ui.graph import parse_groups

    run_id = request.args.get("run_id") or abort(400, "run_id is required")
    task_id = request.args.get("task_id")
    group_id = request.args.get("group_id")
    map_index = int_param("map_index", -1, minimum=-1)
    with store() as session:
        _row, dag = _dag_or_404(session, dag_id)
        run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                       DagRunModel.run_id == run_id))
        if run is None:
            abort(404, f"run {run_id!r} of DAG {dag_id!r} not found")
        now = datetime.now(UTC)
        context = {"dag": dag, "run": run, "run_duration": _duration(run.start_date,
                                                                      run.end_date, now)}
        if task_id:
            copies = list(session.scalars(select(TaskInstanceModel).where(
                TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                TaskInstanceModel.task_id == task_id).order_by(TaskInstanceModel.map_index)))
            ti = next((c for c in copies if c.map_index == map_index), copies[0] if copies
                      else None)
            tries = []
            story = []
            if ti is not None:
                tries = list(session.execute(select(
                    TaskInstanceTry.try_number, TaskInstanceTry.state, TaskInstanceTry.start_date,
                    TaskInstanceTry.end_date, TaskInstanceTry.duration).where(
                    TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
                    TaskInstanceTry.task_id == task_id,
                    TaskInstanceTry.map_index == ti.map_index)
                    .order_by(TaskInstanceTry.try_number)))
                known = {t.try_number for t in tries}
                if ti.try_number and ti.try_number not in known:
                    tries.append({"try_number": ti.try_number, "state": ti.state,
                                  "start_date": ti.start_date, "end_date": ti.end_date,
                                  "duration": ti.duration})
                story = list(session.scalars(select(TiEvent).where(
                    TiEvent.dag_id == dag_id, TiEvent.run_id == run_id,
                    TiEvent.task_id == task_id, TiEvent.map_index == ti.map_index)
                    .order_by(TiEvent.id.desc()).limit(5)))
            from updraft.store.waiting import waiting_reasons

            waiting = waiting_reasons(session, dag, run, ti) if ti is not None else []
            context.update(kind="task", task_id=task_id, ti=ti, copies=copies,
                           task=dag.task_dict.get(task_id), tries=tries, story=story,
                           waiting=waiting)
        elif group_id:
            groups, _ = parse_groups(dag.task_group_json)
            info = groups.get(group_id) or abort(404, f"no task group {group_id!r} in {dag_id}")
            states = dict(session.execute(select(TaskInstanceModel.task_id,
                                                 TaskInstanceModel.state).where(
                TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                TaskInstanceModel.task_id.in_(info.task_ids))).all())
            context.update(kind="group", group=info, states=states)
        else:
            counts = dict(session.execute(select(TaskInstanceModel.state, func.count()).where(
                TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id)
                .group_by(TaskInstanceModel.state)).all())
            context.update(kind="run", counts=counts)
    return render_template("_grid_panel.html", **context)
