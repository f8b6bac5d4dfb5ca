"""The DAG list's reads: two SQL queries whatever the number of DAGs.

1. every active DAG's light columns (id, owners, tags, paused, schedule, next run) plus the
   number of import errors as a scalar subquery; search, tag and owner filters and paging are
   applied in Python to these rows (a few thousand rows of short strings);
2. for the DAGs on the page, their ``RECENT_RUNS`` newest runs (a window function) joined to
   the counts of their task instances by state.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass
class DagListing:
    dags: list[DagRow]
    total: int
    all_tags: list[str]
    all_owners: list[str]
    import_errors: int


def list_dags(session: Session, *, search: str = "", tags: list[str] | None = None,
              owner: str = "", paused: str = "all", offset: int = 0,
              limit: int = 100) -> DagListing:
    """One page of the DAG list, with the filters' choices and the recent runs."""
    errors = select(func.count(ImportError_.id)).scalar_subquery()
    rows = session.execute(
        select(DagModel.dag_id, DagModel.owners, DagModel.tags, DagModel.is_paused,
               DagModel.schedule_description, DagModel.next_dagrun, DagModel.description,
               DagModel.has_import_errors, errors.label("errors"))
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
                               bool(r.has_import_errors)))
    page = matching[offset:offset + limit]
    _attach_recent_runs(session, page)
    return DagListing(page, len(matching), sorted(all_tags), sorted(all_owners),
                      int(import_errors or 0))


def _attach_recent_runs(session: Session, page: list[DagRow]) -> None:
    if not page:
        return
    ranked = (select(DagRunModel.dag_id, DagRunModel.run_id, DagRunModel.state,
                     DagRunModel.logical_date,
                     func.row_number().over(partition_by=DagRunModel.dag_id,
                                            order_by=DagRunModel.id.desc()).label("rn"))
              .where(DagRunModel.dag_id.in_([d.dag_id for d in page])).subquery())
    recent = select(ranked).where(ranked.c.rn <= RECENT_RUNS).subquery()
    query = (select(recent.c.dag_id, recent.c.run_id, recent.c.state, recent.c.logical_date,
                    recent.c.rn, TaskInstanceModel.state.label("ti_state"),
                    func.count(TaskInstanceModel.task_id).label("n"))
             .select_from(recent)
             .outerjoin(TaskInstanceModel, and_(TaskInstanceModel.dag_id == recent.c.dag_id,
                                                TaskInstanceModel.run_id == recent.c.run_id))
             .group_by(recent.c.dag_id, recent.c.run_id, recent.c.state, recent.c.logical_date,
                       recent.c.rn, TaskInstanceModel.state)
             .order_by(recent.c.dag_id, recent.c.rn))
    runs: dict[str, dict[str, RecentRun]] = defaultdict(dict)
    for r in session.execute(query):
        run = runs[r.dag_id].get(r.run_id)
        if run is None:
            run = runs[r.dag_id][r.run_id] = RecentRun(r.run_id, r.state, r.logical_date)
        if r.ti_state is not None:
            run.ti_counts[r.ti_state] = r.n
    for dag in page:
        dag.runs = list(runs.get(dag.dag_id, {}).values())
