"""The DAG list and a DAG's pages: graph, code, details, durations, trigger, pause (the grid
is in ``grid``, the Gantt and calendar in ``timeline``)."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from urllib.parse import urlencode

from flask import abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from updraft.store.models import DagCode, DagModel, DagRunModel, TaskInstanceModel
from web.auth.permissions import DAG_PAUSE, READ, RUN_TRIGGER, require
from web.masking import shown
from web.ui.blueprint import bp
from web.ui.commands import send_command
from web.ui.helpers import MAX_INT, flash_outcome, int_param, owner_name, store

RUNS_SHOWN = 25
PAGE_SIZE = 100
#: The DAG list's sort orders (value -> label) and last-run states to filter on.
SORTS = {"dag_id": "DAG id", "-dag_id": "DAG id, Z to A", "last_run": "last run, newest first",
         "failed": "last run failed first", "next_run": "next run, soonest first"}
LAST_STATES = ("success", "failed", "running", "queued", "none")


@bp.route("/")
def index():
    return redirect(url_for("ui.dag_list"))


@bp.route("/dags")
@require(READ)
def dag_list():
    """Every active DAG, searchable and filterable, with its recent runs."""
    from web.ui.queries import list_dags

    search = request.args.get("search", "")
    tags = [t for t in request.args.getlist("tag") if t]
    owner = request.args.get("owner", "")
    paused = request.args.get("paused", "all")
    last_state = request.args.get("last_state", "")
    if last_state and last_state not in LAST_STATES:
        abort(400, f"last_state must be one of {', '.join(LAST_STATES)}, got {last_state[:40]!r}")
    sort = request.args.get("sort", "dag_id")
    if sort not in SORTS:
        abort(400, f"sort must be one of {', '.join(SORTS)}, got {sort[:40]!r}")
    page = int_param("page", 1, minimum=1, maximum=MAX_INT // PAGE_SIZE)
    with store() as session:
        listing = list_dags(session, search=search, tags=tags, owner=owner, paused=paused,
                            offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE,
                            last_state=last_state, sort=sort)
    pages = max((listing.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    template = "_dag_table.html" if request.args.get("partial") else "dags.html"
    return render_template(template, listing=listing, search=search, tags=tags, owner=owner,
                           paused=paused, page=page, pages=pages, last_state=last_state,
                           sort=sort, sorts=SORTS, last_states=LAST_STATES)


def _dag_or_404(session, dag_id: str):
    from updraft.store.dags import read_dag

    row = session.get(DagModel, dag_id)
    if row is None:
        abort(404, f"DAG {dag_id!r} is not in the store (no DAG file defines it, or the "
                   "scheduler has not parsed it yet)")
    dag = read_dag(session, dag_id)
    if dag is None:
        abort(404, f"DAG {dag_id!r} has no serialized version in the store yet")
    return row, dag


def _runs(session, dag_id: str, limit: int = RUNS_SHOWN) -> list:
    return list(session.scalars(select(DagRunModel).where(DagRunModel.dag_id == dag_id)
                                .order_by(DagRunModel.id.desc()).limit(limit)))


def _chosen_run(runs: list, run_id: str | None):
    if run_id:
        for run in runs:
            if run.run_id == run_id:
                return run
        return None
    return runs[0] if runs else None


def run_states(session, dag_id: str, run_id: str) -> dict[str, str]:
    """task id -> state in one run (mapped tasks: the worst state of their copies)."""
    from web.ui.graph import aggregate_state

    per_task: dict[str, list[str]] = defaultdict(list)
    for task_id, state in session.execute(
            select(TaskInstanceModel.task_id, TaskInstanceModel.state)
            .where(TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id)):
        per_task[task_id].append(state)
    return {t: (s[0] if len(s) == 1 else aggregate_state(s)) for t, s in per_task.items()}


def _collapsed_arg() -> list[str]:
    raw = request.args.get("collapsed", "")
    return [g for g in raw.split(",") if g]


def _graph_svg(session, dag, run, collapsed: list[str]) -> str:
    from web.ui.graph import layout_dag, render_svg

    layout = layout_dag(dag, collapsed)
    states = run_states(session, dag.dag_id, run.run_id) if run is not None else {}
    task_href = {}
    if run is not None:
        task_href = {t: url_for("ui.task_instance", dag_id=dag.dag_id, run_id=run.run_id,
                                task_id=t) for t in dag.task_dict}
    group_href = {}
    base = {"run_id": run.run_id} if run is not None else {}
    for gid in layout.all_groups:
        toggled = set(collapsed) ^ {gid}
        args = dict(base, collapsed=",".join(sorted(toggled)))
        group_href[gid] = url_for("ui.dag_graph", dag_id=dag.dag_id) + "?" + urlencode(args)
    return render_svg(layout, states, task_href=task_href, group_href=group_href,
                      collapsed=collapsed)


def _page(template: str, dag_id: str, **extra):
    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        context = {"row": row, "dag": dag, "runs": runs, "run": run}
        for name, build in extra.items():
            context[name] = build(session, dag, runs, run)
        return render_template(template, **context)


@bp.route("/dags/<dag_id>")
@require(READ)
def dag_page(dag_id: str):
    kept = {k: v for k, v in request.args.items() if k in ("run_id", "collapsed")}
    return redirect(url_for("ui.dag_graph", dag_id=dag_id, **kept))


@bp.route("/dags/<dag_id>/graph")
@require(READ)
def dag_graph(dag_id: str):
    """The graph tab: the DAG's tasks as an SVG, coloured by the chosen run."""
    collapsed = _collapsed_arg()
    return _page("dag_graph.html", dag_id, collapsed=lambda *_: ",".join(collapsed),
                 svg=lambda s, d, _r, run: _graph_svg(s, d, run, collapsed))


@bp.route("/dags/<dag_id>/graph.svg")
@require(READ)
def dag_graph_svg(dag_id: str):
    """The SVG alone (the page swaps it in when a group is collapsed or expanded)."""
    with store() as session:
        _row, dag = _dag_or_404(session, dag_id)
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        svg = _graph_svg(session, dag, run, _collapsed_arg())
    return svg, 200, {"Content-Type": "image/svg+xml; charset=utf-8"}


@bp.route("/dags/<dag_id>/state.json")
@require(READ)
def dag_state(dag_id: str):
    """States of the recent runs and of the task instances of one run (the polling fallback)."""
    with store() as session:
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        tis = []
        run_ids = [r.run_id for r in runs] if request.args.get("all") else (
            [run.run_id] if run else [])
        if run_ids:
            tis = [{"run_id": r.run_id, "task_id": r.task_id, "map_index": r.map_index,
                    "state": r.state, "try_number": r.try_number}
                   for r in session.execute(select(
                       TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                       TaskInstanceModel.map_index, TaskInstanceModel.state,
                       TaskInstanceModel.try_number).where(
                       TaskInstanceModel.dag_id == dag_id,
                       TaskInstanceModel.run_id.in_(run_ids)))]
        body = {"dag_id": dag_id, "runs": [{"run_id": r.run_id, "state": r.state} for r in runs],
                "task_instances": tis}
    return jsonify(body)


@bp.route("/dags/<dag_id>/code")
@require(READ)
def dag_code(dag_id: str):
    """The DAG file's source, from the store (by file hash); the file is never read. Every
    secret the store knows is masked (a DAG file may hold one as a literal)."""
    def code(session, dag, _runs, _run):
        if not dag.file_hash:
            return None
        row = session.get(DagCode, dag.file_hash)
        if row is None:
            return None
        return SimpleNamespace(fileloc=row.fileloc, last_updated=row.last_updated,
                               file_hash=row.file_hash, source_code=shown(row.source_code))
    return _page("dag_code.html", dag_id, code=code)


@bp.route("/dags/<dag_id>/details")
@require(READ)
def dag_details(dag_id: str):
    """Settings of the DAG, its docs and its tasks."""
    return _page("dag_details.html", dag_id)


def _durations(session, dag, runs, _run):
    from web.ui.charts import duration_chart

    run_ids = [r.run_id for r in reversed(runs)]
    rows = session.execute(select(TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                                  TaskInstanceModel.duration).where(
        TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id.in_(run_ids),
        TaskInstanceModel.duration.is_not(None))) if run_ids else []
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        series[r.task_id][r.run_id] = max(series[r.task_id].get(r.run_id, 0.0), r.duration)
    return duration_chart(run_ids, series)


@bp.route("/dags/<dag_id>/durations")
@require(READ)
def dag_durations(dag_id: str):
    """Task durations over the recent runs, as an inline SVG chart."""
    return _page("dag_durations.html", dag_id, chart=_durations)


@bp.route("/dags/<dag_id>/trigger", methods=["GET", "POST"])
@require(RUN_TRIGGER)
def dag_trigger(dag_id: str):
    """The trigger form generated from the DAG's params; a valid one goes to the scheduler."""
    from flask import flash

    from web.ui.forms import param_fields, read_conf

    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
    errors: dict[str, str] = {}
    values: dict = {}
    status = 200
    if request.method == "POST":
        values, errors = read_conf(dag.params, request.form)
        if not errors:
            outcome = send_command("trigger", {
                "dag_id": dag_id, "conf": values,
                "run_id": request.form.get("run_id", "").strip() or None,
                "logical_date": request.form.get("logical_date", "").strip() or None,
                "owner": owner_name()})
            if outcome.ok:
                run_id = outcome.result.get("run_id")
                flash_outcome(outcome, f"Triggered {dag_id}: run {run_id} is "
                              f"{outcome.result.get('state', 'queued')}")
                return redirect(url_for("ui.dag_graph", dag_id=dag_id, run_id=run_id))
            flash_outcome(outcome, "")
            status = {"too_large": 413, "bad_request": 400, "conflict": 409,
                      "not_found": 404}.get(outcome.code, 503)
        else:
            flash("The form has errors: " + "; ".join(errors.values()), "error")
            status = 400
    fields = param_fields(dag.params, values)
    for field in fields:
        field.error = errors.get(field.name)
    return render_template("trigger.html", row=row, dag=dag, fields=fields, errors=errors,
                           form=request.form, runs=[], run=None), status


@bp.route("/dags/<dag_id>/pause", methods=["POST"])
@require(DAG_PAUSE)
def dag_pause(dag_id: str):
    """Pause or resume a DAG (``paused`` = true/false) through the scheduler."""
    from web.ui.helpers import truthy

    pause = truthy(request.form.get("paused"))
    outcome = send_command("pause" if pause else "unpause",
                           {"dag_id": dag_id, "owner": owner_name()})
    flash_outcome(outcome, f"{dag_id} is {'paused' if pause else 'running (unpaused)'}")
    target = request.form.get("next") or url_for("ui.dag_graph", dag_id=dag_id)
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("ui.dag_list")
    return redirect(target)
