"""The DAG list's reads: two SQL queries whatever the number of DAGs.

1. every active DAG's light columns (id, owners, tags, paused, schedule, next run) plus the
   number of import errors and of the DAG's failed runs as scalar subqueries; search, tag
   and owner filters and paging are applied in Python to these rows (a few thousand rows of
   short strings);
2. for the DAGs on the page, their ``RECENT_RUNS`` newest runs (a window function) joined to
   the counts of their task instances by state.

Filtering or sorting by the last run adds one query: every DAG's newest run (by id).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from updraft.store.models import DagModel, DagRunModel, ImportError_, TaskInstanceModel

RECENT_RUNS = 5


@dataclass
class RecentRun:
    run_id: str
    state: str
    logical_date: datetime | None
    ti_counts: dict[str, int] = field(default_factory=dict)
    start_date: datetime | None = None
    end_date: datetime | None = None


@dataclass
class DagRow:
    dag_id: str
    owners: list[str]
    tags: list[str]
    is_paused: bool
    schedule: str
    next_run: datetime | None
    description: str | None
    has_import_errors: bool
    runs: list[RecentRun] = field(default_factory=list)
    failed_runs: int = 0


@dataclass
class DagListing:
    dags: list[DagRow]
    total: int
    all_tags: list[str]
    all_owners: list[str]
    import_errors: int


def list_dags(session: Session, *, search: str = "", tags: list[str] | None = None,
              owner: str = "", paused: str = "all", offset: int = 0,
              limit: int = 100, last_state: str = "", sort: str = "dag_id") -> DagListing:
    """One page of the DAG list, with the filters' choices and the recent runs.

    ``last_state`` keeps the DAGs whose newest run is in that state (``none``: never run);
    ``sort`` is ``dag_id``, ``-dag_id``, ``last_run`` (newest first), ``next_run`` or
    ``failed`` (last run failed first, then by last run).
    """
    errors = select(func.count(ImportError_.id)).scalar_subquery()
    # Per DAG, an index lookup on dag_run (state, dag_id).
    failed = select(func.count(DagRunModel.id)).where(
        DagRunModel.state == "failed", DagRunModel.dag_id == DagModel.dag_id
    ).correlate(DagModel).scalar_subquery()
    rows = session.execute(
        select(DagModel.dag_id, DagModel.owners, DagModel.tags, DagModel.is_paused,
               DagModel.schedule_description, DagModel.next_dagrun, DagModel.description,
               DagModel.has_import_errors, errors.label("errors"), failed.label("failed"))
        .where(DagModel.is_active.is_(True)).order_by(DagModel.dag_id)).all()
    import_errors = rows[0].errors if rows else session.scalar(select(func.count(ImportError_.id)))
    all_tags: set[str] = set()
    all_owners: set[str] = set()
    matching: list[DagRow] = []
    needle = search.strip().lower()
    wanted_tags = set(tags or [])
    for r in rows:
        owners = [o.strip() for o in (r.owners or "").split(",") if o.strip()]
        row_tags = [str(t) for t in (r.tags or [])]
        all_tags.update(row_tags)
        all_owners.update(owners)
        if needle and needle not in r.dag_id.lower() and not any(
                needle in t.lower() for t in row_tags):
            continue
        if wanted_tags and not wanted_tags & set(row_tags):
            continue
        if owner and owner not in owners:
            continue
        if paused == "active" and r.is_paused or paused == "paused" and not r.is_paused:
            continue
        matching.append(DagRow(r.dag_id, owners, row_tags, bool(r.is_paused),
                               r.schedule_description or "None", r.next_dagrun, r.description,
                               bool(r.has_import_errors), failed_runs=int(r.failed or 0)))
    if last_state or sort in ("last_run", "failed"):
        latest = _latest_runs(session)
        if last_state == "none":
            matching = [d for d in matching if d.dag_id not in latest]
        elif last_state:
            matching = [d for d in matching if latest.get(d.dag_id, ("", None))[0] == last_state]
        never = datetime.min.replace(tzinfo=UTC)
        if sort == "last_run":
            matching.sort(key=lambda d: latest.get(d.dag_id, ("", None))[1] or never,
                          reverse=True)
        elif sort == "failed":
            matching.sort(key=lambda d: (latest.get(d.dag_id, ("", None))[0] == "failed",
                                         latest.get(d.dag_id, ("", None))[1] or never),
                          reverse=True)
    if sort == "-dag_id":
        matching.reverse()
    elif sort == "next_run":
        far = datetime.max.replace(tzinfo=UTC)
        matching.sort(key=lambda d: d.next_run or far)
    page = matching[offset:offset + limit]
    _attach_recent_runs(session, page)
    return DagListing(page, len(matching), sorted(all_tags), sorted(all_owners),
                      int(import_errors or 0))


def _latest_runs(session: Session) -> dict[str, tuple[str, datetime | None]]:
    """Every DAG's newest run: dag id -> (state, when it started or was queued)."""
    newest = select(func.max(DagRunModel.id)).group_by(DagRunModel.dag_id)
    return {r.dag_id: (r.state, r.start_date or r.queued_at) for r in session.execute(
        select(DagRunModel.dag_id, DagRunModel.state, DagRunModel.start_date,
               DagRunModel.queued_at).where(DagRunModel.id.in_(newest)))}


def _attach_recent_runs(session: Session, page: list[DagRow]) -> None:
    if not page:
        return
    ranked = (select(DagRunModel.dag_id, DagRunModel.run_id, DagRunModel.state,
                     DagRunModel.logical_date, DagRunModel.start_date, DagRunModel.end_date,
                     func.row_number().over(partition_by=DagRunModel.dag_id,
                                            order_by=DagRunModel.id.desc()).label("rn"))
              .where(DagRunModel.dag_id.in_([d.dag_id for d in page])).subquery())
    recent = select(ranked).where(ranked.c.rn <= RECENT_RUNS).subquery()
    query = (select(recent.c.dag_id, recent.c.run_id, recent.c.state, recent.c.logical_date,
                    recent.c.start_date, recent.c.end_date, recent.c.rn,
                    TaskInstanceModel.state.label("ti_state"),
                    func.count(TaskInstanceModel.task_id).label("n"))
             .select_from(recent)
             .outerjoin(TaskInstanceModel, and_(TaskInstanceModel.dag_id == recent.c.dag_id,
                                                TaskInstanceModel.run_id == recent.c.run_id))
             .group_by(recent.c.dag_id, recent.c.run_id, recent.c.state, recent.c.logical_date,
                       recent.c.start_date, recent.c.end_date, recent.c.rn,
                       TaskInstanceModel.state)
             .order_by(recent.c.dag_id, recent.c.rn))
    runs: dict[str, dict[str, RecentRun]] = defaultdict(dict)
    for r in session.execute(query):
        run = runs[r.dag_id].get(r.run_id)
        if run is None:
            run = runs[r.dag_id][r.run_id] = RecentRun(r.run_id, r.state, r.logical_date,
                                                       start_date=r.start_date,
                                                       end_date=r.end_date)
        if r.ti_state is not None:
            run.ti_counts[r.ti_state] = r.n
    for dag in page:
        dag.runs = list(runs.get(dag.dag_id, {}).values())
