"""The home dashboard: health of the store, the bus and each node, runs by state over the
last 24 hours (totals and an hourly chart), task instances that failed in that time, import
errors, pool usage and the depth of the queue (scheduled, queued, running, deferred). A
handful of small queries; the page follows run states live like the DAG list."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from html import escape

from flask import render_template, request
from sqlalchemy import func, select

from updraft.store.models import DagRunModel, ImportError_, TaskInstanceModel
from web.auth.permissions import READ, require
from web.ui.blueprint import bp
from web.ui.helpers import display_tz, store

HOURS = 24
RUN_ORDER = ("success", "failed", "running", "queued")
QUEUE_STATES = ("scheduled", "queued", "running", "deferred", "up_for_retry",
                "up_for_reschedule")


def runs_by_hour(session, now: datetime) -> tuple[dict[str, int], list[dict[str, int]]]:
    """Runs started (or queued) in the last ``HOURS`` hours: totals by state, and per hour."""
    since = now - timedelta(hours=HOURS)
    when = func.coalesce(DagRunModel.start_date, DagRunModel.queued_at)
    totals: dict[str, int] = defaultdict(int)
    hours: list[dict[str, int]] = [defaultdict(int) for _ in range(HOURS)]
    for moment, state in session.execute(select(when, DagRunModel.state).where(when >= since)):
        if isinstance(moment, str):  # SQLite hands COALESCE back as text
            moment = datetime.fromisoformat(moment)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        totals[state] += 1
        slot = min(int((moment - since).total_seconds() // 3600), HOURS - 1)
        hours[slot][state] += 1
    return dict(totals), [dict(h) for h in hours]


def hourly_svg(hours: list[dict[str, int]], now: datetime) -> str:
    """Stacked bars, one an hour, oldest left."""
    width, height, left, bottom = 760, 150, 34, 22
    bar = (width - left - 10) / HOURS
    peak = max([sum(h.values()) for h in hours] + [1])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart hourly" id="runs-chart" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="Runs per hour over the last {HOURS} hours">']
    plot = height - bottom - 8
    for value in sorted({max(1, round(peak * i / 3)) for i in (1, 2, 3)}):
        y = 8 + plot - plot * value / peak
        out.append(f'<line class="gridline" x1="{left}" x2="{width - 10}" y1="{y:.1f}" '
                   f'y2="{y:.1f}"/><text class="axis" x="{left - 4}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{value}</text>')
    start = now - timedelta(hours=HOURS)
    for i, counts in enumerate(hours):
        x = left + i * bar
        y = 8 + plot
        for state in RUN_ORDER + tuple(s for s in counts if s not in RUN_ORDER):
            n = counts.get(state, 0)
            if not n:
                continue
            h = plot * n / peak
            y -= h
            out.append(f'<rect class="state-{escape(state)}" x="{x + 1:.1f}" y="{y:.1f}" '
                       f'width="{bar - 2:.1f}" height="{h:.1f}"><title>{n} {escape(state)}'
                       f'</title></rect>')
        if i % 4 == 0:
            label = (start + timedelta(hours=i)).astimezone(display_tz()).strftime("%H:00")
            out.append(f'<text class="axis" x="{x:.1f}" y="{height - 6}">{label}</text>')
    out.append("</svg>")
    return "".join(out)


def dashboard(session, now: datetime) -> dict:
    """Everything the home page shows."""
    from web import crud

    totals, hours = runs_by_hour(session, now)
    since = now - timedelta(hours=HOURS)
    failed = list(session.execute(select(
        TaskInstanceModel.dag_id, TaskInstanceModel.run_id, TaskInstanceModel.task_id,
        TaskInstanceModel.map_index, TaskInstanceModel.end_date, TaskInstanceModel.try_number)
        .where(TaskInstanceModel.state == "failed", TaskInstanceModel.end_date >= since)
        .order_by(TaskInstanceModel.end_date.desc()).limit(20)))
    failed_count = session.scalar(select(func.count()).select_from(TaskInstanceModel).where(
        TaskInstanceModel.state == "failed", TaskInstanceModel.end_date >= since)) or 0
    queue = dict(session.execute(select(TaskInstanceModel.state, func.count())
                                 .where(TaskInstanceModel.state.in_(QUEUE_STATES))
                                 .group_by(TaskInstanceModel.state)).all())
    errors = list(session.execute(select(ImportError_.filename, ImportError_.timestamp)
                                  .order_by(ImportError_.timestamp.desc()).limit(5)))
    error_count = session.scalar(select(func.count(ImportError_.id))) or 0
    pools, _total = crud.list_pools(session)
    return {"totals": totals, "chart": hourly_svg(hours, now), "failed": failed,
            "failed_count": failed_count, "queue": queue, "errors": errors,
            "error_count": error_count, "pools": pools}


@bp.route("/home")
@require(READ)
def home():
    """The dashboard (``?partial=1``: its body, which the script swaps in live)."""
    from web.ui.admin import health_report

    now = datetime.now(UTC)
    with store() as session:
        data = dashboard(session, now)
    template = "_home_body.html" if request.args.get("partial") else "home.html"
    return render_template(template, d=data, report=health_report(), hours=HOURS,
                           queue_states=QUEUE_STATES)
