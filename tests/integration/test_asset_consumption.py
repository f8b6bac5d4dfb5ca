"""The consumption rule of ADR 10 on a real store: every asset event is consumed by exactly
one run of each consuming DAG, in event order, batched by ``asset_batch_size`` and never by
timing; paused and broken consumers keep their events; a new scheduler (a restart) picks up
where the last one stopped; ``max_active_runs`` limits runs, not events; a backlog of 50,000
events is consumed with bounded memory.

The scheduler's run creation (``scheduler.assets.AssetRuns``) is driven directly, pass by
pass, with ``now`` passed in, against SQLite (and PostgreSQL and MariaDB where row locks
matter)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select, update

from scheduler.assets import AssetRuns
from updraft import DAG, Asset
from updraft.operators.empty import EmptyOperator
from updraft.store.assets import record_outside_event, run_triggering_events
from updraft.store.dags import read_dag, write_dag
from updraft.store.engine import session_scope
from updraft.store.models import AssetDelivery, AssetEventModel, DagModel, DagRunModel

pytestmark = pytest.mark.timeout(120)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
ORDERS = Asset(name="orders", uri="s3://lake/orders")
CUSTOMERS = Asset(name="customers", uri="s3://lake/customers")


def store_dag(url, dag_id, schedule, *, paused=False, **kwargs):
    with DAG(dag_id, schedule=schedule, start_date=datetime(2024, 1, 1), **kwargs) as dag:
        EmptyOperator(task_id="consume")
    with session_scope(url) as session:
        write_dag(session, dag, file_hash=dag_id, now=NOW)
        session.get(DagModel, dag_id).is_paused = paused
    return dag


def event(url, name, **extra):
    with session_scope(url) as session:
        return record_outside_event(session, name=name, extra=extra, source="api", now=NOW)[0]


def create(url, creator, when=NOW):
    with session_scope(url) as session:
        return creator.create_runs(session, when, read_dag)


def consumed(url, dag_id):
    """``{run_id: [event ids]}`` of the DAG's runs, in run order."""
    with session_scope(url) as session:
        run_ids = session.scalars(select(DagRunModel.run_id).where(
            DagRunModel.dag_id == dag_id).order_by(DagRunModel.id)).all()
        return {r: [e["id"] for e in run_triggering_events(session, dag_id, r)]
                for r in run_ids}


def finish_runs(url, dag_id):
    with session_scope(url) as session:
        session.execute(update(DagRunModel).where(DagRunModel.dag_id == dag_id)
                        .values(state="success"))


def test_each_event_is_one_run_per_consumer_in_event_order(store_url):
    store_dag(store_url, "one", [ORDERS])
    store_dag(store_url, "two", [ORDERS])
    ids = [event(store_url, "orders", n=n) for n in range(3)]
    runs = create(store_url, AssetRuns())
    assert len(runs) == 6
    for dag_id in ("one", "two"):
        assert list(consumed(store_url, dag_id).values()) == [[i] for i in ids]
    assert create(store_url, AssetRuns()) == []  # nothing is consumed twice
    with session_scope(store_url) as session:
        run = session.scalars(select(DagRunModel).where(DagRunModel.dag_id == "one")).first()
        assert (run.run_type, run.state, run.triggered_by) == ("asset_triggered", "queued",
                                                              "asset")


def test_and_condition_and_batch_size_cut_batches_by_event_order(store_url):
    store_dag(store_url, "both", [ORDERS, CUSTOMERS])
    store_dag(store_url, "either", ORDERS | CUSTOMERS)
    store_dag(store_url, "threes", [ORDERS], asset_batch_size=3)
    o1, o2, c3, o4, o5 = (event(store_url, n) for n in
                          ("orders", "orders", "customers", "orders", "orders"))
    creator = AssetRuns()
    create(store_url, creator)
    assert list(consumed(store_url, "both").values()) == [[o1, o2, c3]]
    assert list(consumed(store_url, "either").values()) == [[o1], [o2], [c3], [o4], [o5]]
    assert list(consumed(store_url, "threes").values()) == [[o1, o2, o4]]
    # The open batches wait; the next events close them, read from where the walk stopped.
    c6 = event(store_url, "customers")
    o7 = event(store_url, "orders")
    create(store_url, creator)
    assert list(consumed(store_url, "both").values()) == [[o1, o2, c3], [o4, o5, c6]]
    assert list(consumed(store_url, "threes").values()) == [[o1, o2, o4]]  # o5, o7 wait
    assert [e for r in consumed(store_url, "either").values() for e in r] == \
        [o1, o2, c3, o4, o5, c6, o7]


def test_grouping_does_not_depend_on_when_the_scheduler_looks(store_url):
    """The same events give the same runs whether the scheduler looks after each event or
    once after all of them."""
    store_dag(store_url, "eager", [ORDERS, CUSTOMERS])
    store_dag(store_url, "late", [ORDERS, CUSTOMERS], paused=True)
    eager = AssetRuns()
    names = ["orders", "customers", "customers", "orders", "orders", "customers", "orders"]
    for name in names:
        event(store_url, name)
        create(store_url, eager)
    with session_scope(store_url) as session:
        session.get(DagModel, "late").is_paused = False
    create(store_url, AssetRuns())
    assert list(consumed(store_url, "eager").values()) == \
        list(consumed(store_url, "late").values())
    assert len(consumed(store_url, "eager")) == 3


def test_paused_and_broken_consumers_keep_their_events(store_url):
    store_dag(store_url, "paused", [ORDERS], paused=True)
    store_dag(store_url, "broken", [ORDERS])
    with session_scope(store_url) as session:
        session.get(DagModel, "broken").has_import_errors = True
    ids = [event(store_url, "orders") for _ in range(4)]
    assert create(store_url, AssetRuns()) == []
    with session_scope(store_url) as session:
        session.get(DagModel, "paused").is_paused = False
        session.get(DagModel, "broken").has_import_errors = False
    create(store_url, AssetRuns(), NOW + timedelta(hours=1))
    for dag_id in ("paused", "broken"):
        assert list(consumed(store_url, dag_id).values()) == [[i] for i in ids]


def test_max_active_runs_limits_runs_not_events_and_a_restart_resumes(store_url):
    """A slow consumer (one run at a time) gets its events one batch per finished run; a
    new AssetRuns (a restarted scheduler) continues from the store."""
    store_dag(store_url, "slow", [ORDERS], max_active_runs=1)
    ids = [event(store_url, "orders") for _ in range(5)]
    first = AssetRuns()
    assert len(create(store_url, first)) == 1
    assert len(create(store_url, first)) == 0  # the run is not finished yet
    finish_runs(store_url, "slow")
    assert len(create(store_url, first)) == 1
    finish_runs(store_url, "slow")
    restarted = AssetRuns()
    for _ in range(3):
        assert len(create(store_url, restarted)) == 1
        finish_runs(store_url, "slow")
    assert list(consumed(store_url, "slow").values()) == [[i] for i in ids]


def test_two_schedulers_never_consume_an_event_twice(store_url):
    import threading

    if store_url.startswith("sqlite"):
        pytest.skip("SQLite serves one scheduler (ADR 4)")

    store_dag(store_url, "shared", [ORDERS], max_active_runs=50)
    ids = [event(store_url, "orders") for _ in range(20)]
    created: list = []
    errors: list = []

    def scheduler():
        try:
            for _ in range(5):
                created.extend(create(store_url, AssetRuns()))
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(created) == 20
    assert sorted(e for r in consumed(store_url, "shared").values() for e in r) == ids


def test_dropping_an_asset_from_the_schedule_drops_its_waiting_events_for_that_dag(store_url):
    store_dag(store_url, "changes", [ORDERS, CUSTOMERS])
    event(store_url, "orders")
    keep = event(store_url, "customers")
    with session_scope(store_url) as session:
        session.get(DagModel, "changes").is_paused = True
    store_dag(store_url, "changes", [CUSTOMERS])
    create(store_url, AssetRuns())
    assert list(consumed(store_url, "changes").values()) == [[keep]]


@pytest.mark.slow
def test_a_backlog_of_50000_events_is_consumed_with_bounded_memory(updraft_home, monkeypatch,
                                                                     _sqlite_template):
    import shutil

    from updraft.config import conf

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", url)
    conf.reload()
    store_dag(url, "backlog", [ORDERS], asset_batch_size=1000, max_active_runs=100)
    event(url, "orders")
    total = 50_000
    with session_scope(url) as session:
        asset_id = session.scalar(select(AssetEventModel.asset_id))
        first = session.scalar(select(func.max(AssetEventModel.id))) + 1
        for start in range(first, first + total - 1, 10_000):
            ids = range(start, min(start + 10_000, first + total - 1))
            session.execute(insert(AssetEventModel.__table__), [
                {"id": i, "asset_id": asset_id, "extra": {"n": i}, "source": "api",
                 "timestamp": NOW} for i in ids])
            session.execute(insert(AssetDelivery.__table__), [
                {"dag_id": "backlog", "event_id": i, "asset_id": asset_id, "created_at": NOW}
                for i in ids])
    tracemalloc.start()
    try:
        runs = create(url, AssetRuns())
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(runs) == 50
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(AssetDelivery).where(
            AssetDelivery.run_id.is_(None))) == 0
    # Chunks of 1,000 rows, never the 50,000 events (each ORM event costs ~1 KB and more).
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"


def test_asset_and_time_schedule_ticks_wait_for_events(store_url):
    """AssetAndTimeSchedule: a due tick starts no run until the assets had events; then one
    run consumes them all, and ticks that passed meanwhile fold into it."""
    from scheduler.runs import create_due_runs
    from updraft import AssetAndTimeSchedule, CronTriggerTimetable

    store_dag(store_url, "gated", AssetAndTimeSchedule(
        timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"),
        assets=[ORDERS, CUSTOMERS]), catchup=False)

    def due(when):
        with session_scope(store_url) as session:
            return create_due_runs(session, when, read_dag)

    assert due(NOW + timedelta(minutes=1)) == []
    o1 = event(store_url, "orders")
    assert due(NOW + timedelta(hours=2, minutes=1)) == []  # customers has had no event
    c2 = event(store_url, "customers")
    o3 = event(store_url, "orders")
    [(dag_id, run_id)] = due(NOW + timedelta(hours=3, minutes=1))
    assert consumed(store_url, "gated") == {run_id: [o1, c2, o3]}
    finish_runs(store_url, "gated")
    assert due(NOW + timedelta(hours=4, minutes=1)) == []  # no new events since
