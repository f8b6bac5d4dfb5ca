"""Asset-triggered runs: each consuming DAG's waiting deliveries, cut into batches (ADR 10).

``AssetRuns.create_runs`` walks the unconsumed deliveries of every DAG that may consume
(unpaused, active, importable) in event-id order, in chunks of ``CHUNK`` rows, and ends a batch
at the first event after which the DAG's asset condition holds on the batch and the batch
holds ``asset_batch_size`` events. Each batch becomes one queued run whose creation claims its
deliveries, in one transaction. Only the current batch's asset keys and counts are kept in
memory, so a backlog of any size costs a bounded amount; where a DAG's walk stopped without
a full batch is remembered, so the next pass reads only the events that came since.

A DAG gets at most ``max_active_runs`` unfinished runs this way; the rest waits as deliveries.
``gated_batch`` serves ``AssetAndTimeSchedule``: its clock tick consumes every waiting
delivery once the condition holds on them.

Functions take the caller's session and ``now``; nothing here reads the clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from updraft.assets import evaluate_condition
from updraft.state import DagRunState, DagRunType
from updraft.store.assets import (
    asset_keys,
    claim_deliveries,
    dags_with_waiting_events,
    waiting_chunk,
)
from updraft.store.models import AssetDelivery, DagModel, DagRunModel

log = logging.getLogger("updraft.scheduler.assets")

#: Deliveries read per query.
CHUNK = 1000


@dataclass
class _Batch:
    """A batch being gathered: where it starts and ends, and what it holds."""

    first_event: int
    last_event: int = 0
    count: int = 0
    keys: set = field(default_factory=set)
    first_at: datetime | None = None
    last_at: datetime | None = None
    dag_hash: str = ""


def _asset_condition(dag) -> dict | None:
    """The DAG's asset condition (JSON form), if asset events start its runs."""
    timetable = dag.timetable
    if getattr(timetable, "gated_by_time", False):
        return None
    condition = getattr(timetable, "condition_json", None)
    return condition if isinstance(condition, dict) else None


def _locked(session: Session, dag_id: str) -> bool:
    """Lock the DAG's row (PostgreSQL, MariaDB) so one scheduler consumes for it at a time;
    False when another holds it."""
    if session.get_bind().dialect.name not in ("postgresql", "mysql", "mariadb"):
        return True
    found = session.scalar(select(DagModel.dag_id).where(DagModel.dag_id == dag_id)
                           .with_for_update(skip_locked=True))
    return found is not None


def _unfinished(session: Session, dag_id: str) -> int:
    return session.scalar(select(func.count()).select_from(DagRunModel).where(
        DagRunModel.dag_id == dag_id,
        DagRunModel.state.in_([str(DagRunState.QUEUED), str(DagRunState.RUNNING)]))) or 0


def _oldest_waiting(session: Session, dag_id: str) -> int | None:
    return session.scalar(select(func.min(AssetDelivery.event_id)).where(
        AssetDelivery.dag_id == dag_id, AssetDelivery.run_id.is_(None)))


class AssetRuns:
    """Creates asset-triggered runs; remembers unfinished batches between passes."""

    def __init__(self) -> None:
        self._open: dict[str, _Batch] = {}

    def forget(self, dag_id: str | None = None) -> None:
        """Walk again from the oldest waiting delivery (all DAGs, or one)."""
        if dag_id is None:
            self._open.clear()
        else:
            self._open.pop(dag_id, None)

    def create_runs(self, session: Session, now: datetime, read_dag,
                    limit_dags: int = 500) -> list[tuple[str, str]]:
        """Create the runs whose batches are complete, within ``max_active_runs``; their
        (dag_id, run_id), queued. The caller commits."""
        created: list[tuple[str, str]] = []
        for dag_id in dags_with_waiting_events(session, limit=limit_dags):
            dag = read_dag(session, dag_id)
            condition = _asset_condition(dag) if dag is not None else None
            if condition is None:
                continue
            free = (dag.max_active_runs or 16) - _unfinished(session, dag_id)
            if free <= 0 or not _locked(session, dag_id):
                continue
            created += self._consume(session, dag, condition, free, now)
        return created

    def _consume(self, session: Session, dag, condition: dict, free: int,
                 now: datetime) -> list[tuple[str, str]]:
        dag_id = dag.dag_id
        oldest = _oldest_waiting(session, dag_id)
        if oldest is None:
            self._open.pop(dag_id, None)
            return []
        batch = self._open.get(dag_id)
        if batch is None or batch.first_event != oldest or batch.dag_hash != dag.dag_hash:
            batch = _Batch(first_event=oldest, last_event=oldest - 1, dag_hash=dag.dag_hash)
        size = max(1, int(getattr(dag, "asset_batch_size", 1) or 1))
        # Logical dates (and so run ids) grow with each run, whatever the clock says.
        newest = session.scalar(select(func.max(DagRunModel.logical_date)).where(
            DagRunModel.dag_id == dag_id))
        if newest is not None and newest >= now:
            now = newest + timedelta(microseconds=1)
        created: list[tuple[str, str]] = []
        while free > 0:
            rows = waiting_chunk(session, dag_id, batch.last_event, CHUNK)
            if not rows:
                break
            keys = asset_keys(session, {r.asset_id for r in rows})
            for row in rows:
                batch.keys |= keys.get(row.asset_id, set())
                batch.count += 1
                batch.last_event = row.event_id
                batch.first_at = batch.first_at or row.timestamp
                batch.last_at = row.timestamp
                if batch.count >= size and evaluate_condition(
                        condition, lambda kind, key, held=batch.keys: (kind, key) in held):
                    created.append(self._create_run(session, dag, batch, now, len(created)))
                    free -= 1
                    batch = _Batch(first_event=row.event_id + 1, last_event=row.event_id,
                                   dag_hash=dag.dag_hash)
                    if free <= 0:
                        break
        if batch.count:
            self._open[dag_id] = batch
        else:
            self._open.pop(dag_id, None)
        return created

    @staticmethod
    def _create_run(session: Session, dag, batch: _Batch, now: datetime,
                    index: int) -> tuple[str, str]:
        from updraft.store.runs import create_dag_run, row_defaults_for

        logical = now + timedelta(microseconds=index)
        run_id = DagRunType.ASSET_TRIGGERED.generate_run_id(logical)
        create_dag_run(session, dag_id=dag.dag_id, run_id=run_id,
                       run_type=DagRunType.ASSET_TRIGGERED, logical_date=logical,
                       data_interval=(batch.first_at or logical, batch.last_at or logical),
                       conf={}, tasks=row_defaults_for(dag.task_dict),
                       state=DagRunState.QUEUED, dag_hash=dag.dag_hash,
                       triggered_by="asset", now=now)
        claimed = claim_deliveries(session, dag.dag_id, run_id, batch.last_event)
        log.info("Created run %s of %s for %d asset event(s) up to event %d", run_id,
                 dag.dag_id, claimed, batch.last_event)
        return dag.dag_id, run_id


def gated_batch(session: Session, dag) -> int | None:
    """For ``AssetAndTimeSchedule``: the newest waiting event id when the DAG's condition
    holds on all its waiting deliveries (its tick may start a run that consumes them), else
    None (the tick waits for events)."""
    timetable = dag.timetable
    condition = getattr(timetable, "condition_json", None)
    if condition is None:
        return None
    held: set = set()
    last = 0
    while True:
        rows = waiting_chunk(session, dag.dag_id, last, CHUNK)
        if not rows:
            break
        keys = asset_keys(session, {r.asset_id for r in rows})
        for row in rows:
            held |= keys.get(row.asset_id, set())
        last = rows[-1].event_id
    if last and evaluate_condition(condition, lambda kind, key: (kind, key) in held):
        return last
    return None


def claim_for_tick(session: Session, dag_id: str, run_id: str, up_to_event_id: int) -> int:
    """A gated tick's run consumes the waiting deliveries up to ``up_to_event_id``."""
    return claim_deliveries(session, dag_id, run_id, up_to_event_id)


__all__ = ["CHUNK", "AssetRuns", "claim_for_tick", "gated_batch"]
