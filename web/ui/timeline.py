"""Time views of a DAG: the Gantt chart of one run (each try of each task on a time axis,
queued time lighter than running time) and the calendar (a year of days, each coloured by
the worst state of that day's runs). Both are SVG drawn here; the page script redraws the
Gantt (``?partial=1``) when a state event of its run arrives.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from html import escape

from flask import render_template, request, url_for
from sqlalchemy import func, select

from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry
from web.auth.permissions import READ, require
from web.ui.blueprint import bp
from web.ui.helpers import display_tz, fmt_dt, fmt_duration, int_param, store

ROW_H = 22
LABEL_W = 220
CHART_W = 860
AXIS_H = 28
#: Nice tick steps in seconds, the first that gives at most about eight ticks wins.
TICK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
              43200, 86400, 172800, 604800)
#: Worst first: a calendar day shows the first of these any of its runs has.
RUN_PRIORITY = ("failed", "running", "queued", "success")
CELL = 16
GAP = 3


def gantt_bars(session, dag, run, now: datetime) -> list[dict]:
    """Every try of every task instance of ``run`` (recorded tries and the one under way)."""
    tis = session.execute(select(
        TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state,
        TaskInstanceModel.try_number, TaskInstanceModel.start_date, TaskInstanceModel.end_date,
        TaskInstanceModel.queued_dttm).where(
        TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id == run.run_id)).all()
    tries = session.execute(select(
        TaskInstanceTry.task_id, TaskInstanceTry.map_index, TaskInstanceTry.try_number,
        TaskInstanceTry.state, TaskInstanceTry.start_date, TaskInstanceTry.end_date).where(
        TaskInstanceTry.dag_id == dag.dag_id, TaskInstanceTry.run_id == run.run_id)).all()
    bars: list[dict] = []
    recorded = set()
    # The store keeps the time a task instance was queued for its latest try only.
    queued = {(ti.task_id, ti.map_index, ti.try_number): ti.queued_dttm for ti in tis}
    for t in tries:
        recorded.add((t.task_id, t.map_index, t.try_number))
        if t.start_date is not None:
            bars.append({"task_id": t.task_id, "map_index": t.map_index, "try": t.try_number,
                         "state": t.state, "start": t.start_date, "end": t.end_date or now,
                         "queued": queued.get((t.task_id, t.map_index, t.try_number))})
    for ti in tis:
        if ti.start_date is None or (ti.task_id, ti.map_index, ti.try_number) in recorded:
            continue
        bars.append({"task_id": ti.task_id, "map_index": ti.map_index, "try": ti.try_number,
                     "state": ti.state, "start": ti.start_date,
                     "end": ti.end_date or now, "queued": ti.queued_dttm})
    return bars


def _tick_step(span: float) -> int:
    for step in TICK_STEPS:
        if span / step <= 8:
            return step
    return TICK_STEPS[-1]


def gantt_svg(dag, run, bars: list[dict], order: list[str]) -> str:
    """The chart: one row per task (and per copy of a mapped task), tries side by side."""
    if not bars:
        return ""
    keys = {(b["task_id"], b["map_index"]) for b in bars}
    keys |= {(t, -1) for t in order if not any(k[0] == t for k in keys)}  # not started
    rows: list[tuple[str, int]] = sorted(keys,
                                         key=lambda k: (order.index(k[0]) if k[0] in order
                                                        else len(order), k[1]))
    begin = min([b["queued"] or b["start"] for b in bars] + ([run.start_date] if
                                                              run.start_date else []))
    end = max(b["end"] for b in bars)
    span = max((end - begin).total_seconds(), 1.0)
    scale = CHART_W / span
    height = AXIS_H + ROW_H * len(rows) + 8
    width = LABEL_W + CHART_W + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" id="gantt-svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Gantt chart of run {escape(run.run_id)}">']
    step = _tick_step(span)
    tick = 0
    while tick <= span:
        x = LABEL_W + tick * scale
        when = begin + timedelta(seconds=tick)
        label = when.astimezone(display_tz()).strftime("%H:%M:%S" if step < 86400 else "%m-%d")
        out.append(f'<line class="gridline" x1="{x:.1f}" x2="{x:.1f}" y1="{AXIS_H - 6}" '
                   f'y2="{height}"/><text class="axis" x="{x:.1f}" y="{AXIS_H - 10}" '
                   f'text-anchor="middle">{label}</text>')
        tick += step
    index = {key: i for i, key in enumerate(rows)}
    for (task_id, map_index), i in index.items():
        y = AXIS_H + i * ROW_H
        name = task_id + (f" [{map_index}]" if map_index >= 0 else "")
        out.append(f'<text class="gantt-label" x="{LABEL_W - 8}" y="{y + 15}" '
                   f'text-anchor="end">{escape(name[-34:])}</text>')
        if i % 2:
            out.append(f'<rect class="gantt-stripe" x="0" y="{y}" width="{width}" '
                       f'height="{ROW_H}"/>')
    previous_end: dict[tuple[str, int], datetime] = {}
    for b in sorted(bars, key=lambda b: b["start"]):
        key = (b["task_id"], b["map_index"])
        if b["queued"] is not None and key in previous_end:
            b["queued"] = max(b["queued"], previous_end[key])  # never over the try before
        previous_end[key] = b["end"]
    for b in bars:
        y = AXIS_H + index[(b["task_id"], b["map_index"])] * ROW_H + 3
        href = url_for("ui.task_instance", dag_id=dag.dag_id, run_id=run.run_id,
                       task_id=b["task_id"], map_index=b["map_index"], **{"try": b["try"]})
        x0 = LABEL_W + (b["start"] - begin).total_seconds() * scale
        w = max((b["end"] - b["start"]).total_seconds() * scale, 2.0)
        seconds = (b["end"] - b["start"]).total_seconds()
        title = (f'{b["task_id"]} try {b["try"]}: {b["state"]}\n{fmt_dt(b["start"])} to '
                 f'{fmt_dt(b["end"])} ({fmt_duration(seconds)})')
        out.append(f'<a href="{escape(href)}" class="gantt-bar" data-task-id="'
                   f'{escape(b["task_id"])}" data-try="{b["try"]}">')
        if b["queued"] is not None and b["queued"] < b["start"]:
            qx = LABEL_W + (b["queued"] - begin).total_seconds() * scale
            out.append(f'<rect class="gantt-queued" x="{qx:.1f}" y="{y + 4}" '
                       f'width="{max(x0 - qx, 1):.1f}" height="{ROW_H - 14}"><title>queued '
                       f'{fmt_duration((b["start"] - b["queued"]).total_seconds())}</title></rect>')
        out.append(f'<rect class="bar state-{escape(b["state"] or "none")}" x="{x0:.1f}" y="{y}" '
                   f'width="{w:.1f}" height="{ROW_H - 6}" rx="3"><title>{escape(title)}</title>'
                   f'</rect></a>')
    out.append("</svg>")
    return "".join(out)


@bp.route("/dags/<dag_id>/gantt")
@require(READ)
def dag_gantt(dag_id: str):
    """The Gantt tab: the chosen run's tries on a time axis (``?partial=1``: the chart)."""
    from web.ui.dags import _chosen_run, _dag_or_404, _runs
    from web.ui.grid import task_order

    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        if run is None and request.args.get("run_id"):
            run = session.scalar(select(DagRunModel).where(
                DagRunModel.dag_id == dag_id, DagRunModel.run_id == request.args["run_id"]))
        svg = ""
        if run is not None:
            svg = gantt_svg(dag, run, gantt_bars(session, dag, run, datetime.now(UTC)),
                            task_order(dag))
        if request.args.get("partial"):
            return svg or '<p class="hint">No task of this run has started yet.</p>'
        return render_template("dag_gantt.html", row=row, dag=dag, runs=runs, run=run, svg=svg)


def _run_day(value: datetime | None) -> date | None:
    return value.astimezone(UTC).date() if value is not None else None


def calendar_days(session, dag_id: str, year: int) -> dict[date, dict[str, int]]:
    """Per UTC day of ``year``: how many runs are in each state (by logical date, or the
    time they were queued when they have none)."""
    when = func.coalesce(DagRunModel.logical_date, DagRunModel.queued_at)
    start = datetime(year, 1, 1, tzinfo=UTC)
    days: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for moment, state in session.execute(select(when, DagRunModel.state).where(
            DagRunModel.dag_id == dag_id, when >= start,
            when < start.replace(year=year + 1))):
        if isinstance(moment, str):  # SQLite hands COALESCE back as text
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        days[_run_day(moment)][state] += 1
    return days


def calendar_svg(dag_id: str, year: int, days: dict[date, dict[str, int]]) -> str:
    """A year as weeks (columns) by weekdays (rows, Monday on top), months labelled."""
    first = date(year, 1, 1)
    offset = first.weekday()
    count = (date(year + 1, 1, 1) - first).days
    weeks = (offset + count + 6) // 7
    left, top = 34, 22
    width = left + weeks * (CELL + GAP) + 10
    height = top + 7 * (CELL + GAP) + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="calendar" id="calendar-svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Runs of {escape(dag_id)} in {year}">']
    for i, name in enumerate(("Mon", "", "Wed", "", "Fri", "", "Sun")):
        if name:
            out.append(f'<text class="axis" x="{left - 6}" y="{top + i * (CELL + GAP) + 12}" '
                       f'text-anchor="end">{name}</text>')
    for n in range(count):
        day = first + timedelta(days=n)
        week, weekday = divmod(offset + n, 7)
        x, y = left + week * (CELL + GAP), top + weekday * (CELL + GAP)
        if day.day == 1:
            out.append(f'<text class="axis" x="{x}" y="{top - 8}">{day.strftime("%b")}</text>')
        states = days.get(day)
        if not states:
            out.append(f'<rect class="day empty" x="{x}" y="{y}" width="{CELL}" height="{CELL}" '
                       f'rx="2" data-date="{day.isoformat()}"><title>{day.isoformat()}: no '
                       f'run</title></rect>')
            continue
        worst = next((s for s in RUN_PRIORITY if states.get(s)), next(iter(states)))
        summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        href = url_for("ui.dag_runs_of_day", dag_id=dag_id, day=day.isoformat())
        out.append(f'<a href="{escape(href)}"><rect class="day state-{escape(worst)}" x="{x}" '
                   f'y="{y}" width="{CELL}" height="{CELL}" rx="2" data-date="{day.isoformat()}"'
                   f' data-state="{escape(worst)}"><title>{day.isoformat()}: {escape(summary)}'
                   f'</title></rect></a>')
    out.append("</svg>")
    return "".join(out)


@bp.route("/dags/<dag_id>/calendar")
@require(READ)
def dag_calendar(dag_id: str):
    """The calendar tab: a year of days coloured by their runs' states (``?year=``)."""
    from web.ui.dags import _chosen_run, _dag_or_404, _runs

    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        runs = _runs(session, dag_id)
        run = _chosen_run(runs, request.args.get("run_id"))
        latest = runs[0].logical_date or runs[0].queued_at if runs else None
        default_year = (latest or datetime.now(UTC)).year
        year = int_param("year", default_year, minimum=1970, maximum=9999)
        days = calendar_days(session, dag_id, year)
        totals: dict[str, int] = defaultdict(int)
        for states in days.values():
            for state, n in states.items():
                totals[state] += n
        return render_template("dag_calendar.html", row=row, dag=dag, runs=runs, run=run,
                               year=year, svg=calendar_svg(dag_id, year, days),
                               totals=dict(totals))


@bp.route("/dags/<dag_id>/calendar/<day>")
@require(READ)
def dag_runs_of_day(dag_id: str, day: str):
    """The runs of one calendar day: the grid page of the newest of them."""
    from flask import abort, redirect

    try:
        start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    except ValueError:
        abort(400, f"day must be a date like 2024-01-31, got {day[:40]!r}")
    when = func.coalesce(DagRunModel.logical_date, DagRunModel.queued_at)
    with store() as session:
        newest_id = session.scalar(select(func.max(DagRunModel.id)).where(
            DagRunModel.dag_id == dag_id, when >= start, when < start + timedelta(days=1)))
        if newest_id is None:
            abort(404, f"no run of {dag_id!r} on {day}")
        newer = session.scalar(select(func.count(DagRunModel.id)).where(
            DagRunModel.dag_id == dag_id, DagRunModel.id > newest_id)) or 0
        run_id = session.scalar(select(DagRunModel.run_id).where(DagRunModel.id == newest_id))
    limit = 25
    return redirect(url_for("ui.dag_grid", dag_id=dag_id, offset=newer // limit * limit,
                            limit=limit, run_id=run_id))
