"""Lists to browse: the runs of one DAG or of all (filtered by state, type, logical date and
run id, paged), and a DAG's events (its part of the audit log: triggers, clears, marks,
pauses, with who did them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import abort, render_template, request
from sqlalchemy import func, select

from updraft.state import DagRunType
from updraft.store.models import DagRunModel, LogEvent
from web.auth.permissions import READ, require
from web.ui.blueprint import bp
from web.ui.helpers import MAX_INT, RUN_STATES, int_param, store

RUNS_PAGE = 50
EVENTS_PAGE = 100
RUN_TYPES = tuple(str(t) for t in DagRunType)


def _day(name: str) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        abort(400, f"{name} must be a date like 2024-01-31, got {raw[:40]!r}")


def run_filters() -> dict:
    """The runs list's filters from the query string (a 400 naming a bad one)."""
    state = request.args.get("state", "")
    if state and state not in RUN_STATES:
        abort(400, f"state must be one of {', '.join(RUN_STATES)}, got {state[:40]!r}")
    run_type = request.args.get("run_type", "")
    if run_type and run_type not in RUN_TYPES:
        abort(400, f"run_type must be one of {', '.join(RUN_TYPES)}, got {run_type[:40]!r}")
    return {"state": state, "run_type": run_type, "start": _day("start"), "end": _day("end"),
            "search": request.args.get("search", "").strip(),
            "dag_id": request.args.get("dag_id", "").strip()}


def list_runs(session, dag_id: str | None, filters: dict, page: int) -> tuple[list, int]:
    """One page of runs (newest first) and how many match."""
    query = select(DagRunModel)
    if dag_id:
        query = query.where(DagRunModel.dag_id == dag_id)
    elif filters["dag_id"]:
        query = query.where(DagRunModel.dag_id.contains(filters["dag_id"], autoescape=True))
    if filters["state"]:
        query = query.where(DagRunModel.state == filters["state"])
    if filters["run_type"]:
        query = query.where(DagRunModel.run_type == filters["run_type"])
    if filters["start"] is not None:
        query = query.where(DagRunModel.logical_date >= filters["start"])
    if filters["end"] is not None:
        query = query.where(DagRunModel.logical_date < filters["end"] + timedelta(days=1))
    if filters["search"]:
        query = query.where(DagRunModel.run_id.contains(filters["search"], autoescape=True))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(DagRunModel.id.desc())
                                .offset((page - 1) * RUNS_PAGE).limit(RUNS_PAGE)))
    return rows, total


def _args_without_page() -> list[tuple[str, str]]:
    return [(k, v) for k, v in request.args.items() if k != "page" and v]


@bp.route("/dags/<dag_id>/runs")
@require(READ)
def dag_runs(dag_id: str):
    """The Runs tab: this DAG's runs with state, type, date and run id filters."""
    from web.ui.dags import _chosen_run, _dag_or_404, _runs

    filters = run_filters()
    page = int_param("page", 1, minimum=1, maximum=MAX_INT // RUNS_PAGE)
    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        recent = _runs(session, dag_id)
        rows, total = list_runs(session, dag_id, filters, page)
        return render_template("dag_runs.html", row=row, dag=dag, runs=recent,
                               run=_chosen_run(recent, request.args.get("run_id")),
                               rows=rows, total=total, page=page, page_size=RUNS_PAGE,
                               filters=filters, run_types=RUN_TYPES,
                               args=_args_without_page(), now=datetime.now(UTC))


@bp.route("/runs")
@require(READ)
def all_runs():
    """Every DAG's runs, with the same filters and a DAG id filter."""
    filters = run_filters()
    page = int_param("page", 1, minimum=1, maximum=MAX_INT // RUNS_PAGE)
    with store() as session:
        rows, total = list_runs(session, None, filters, page)
    return render_template("runs.html", rows=rows, total=total, page=page,
                           page_size=RUNS_PAGE, filters=filters, run_types=RUN_TYPES,
                           args=_args_without_page(), now=datetime.now(UTC))


@bp.route("/dags/<dag_id>/events")
@require(READ)
def dag_events_tab(dag_id: str):
    """The Events tab: this DAG's entries of the audit log, newest first."""
    from web.ui.dags import _chosen_run, _dag_or_404, _runs

    page = int_param("page", 1, minimum=1, maximum=MAX_INT // EVENTS_PAGE)
    event = request.args.get("event", "").strip()
    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        recent = _runs(session, dag_id)
        query = select(LogEvent).where(LogEvent.dag_id == dag_id)
        if event:
            query = query.where(LogEvent.event == event)
        names = list(session.scalars(select(LogEvent.event).where(LogEvent.dag_id == dag_id)
                                     .distinct().order_by(LogEvent.event).limit(100)))
        rows = list(session.scalars(query.order_by(LogEvent.dttm.desc(), LogEvent.id.desc())
                                    .offset((page - 1) * EVENTS_PAGE).limit(EVENTS_PAGE + 1)))
        return render_template("dag_events.html", row=row, dag=dag, runs=recent,
                               run=_chosen_run(recent, request.args.get("run_id")),
                               rows=rows[:EVENTS_PAGE], more=len(rows) > EVENTS_PAGE,
                               page=page, event=event, names=names,
                               args=_args_without_page())
