"""The store side of deferral on SQLite, PostgreSQL and MariaDB (ADR 11): triggerers lease
triggers (SKIP LOCKED where the store has it), a lease that passes frees them for another,
only the holder fires, firing and timeouts are compare-and-set. Time is passed in."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select

from updraft.store.engine import session_scope
from updraft.store.models import (
    DagModel,
    DagRunModel,
    TaskInstanceModel,
    TiEvent,
    TriggerModel,
)
from updraft.store import triggers as store
from updraft.triggers.temporal import DateTimeTrigger
from updraft.utils.timezone import utcnow

LEASE = timedelta(seconds=5)


def seed(url: str, n: int, now, *, timeout_at=None) -> None:
    with session_scope(url) as session:
        session.add(DagModel(dag_id="d", fileloc="/dev/null", is_paused=False))
        session.add(DagRunModel(dag_id="d", run_id="r", state="running", run_type="manual",
                                logical_date=now))
        session.flush()
        for i in range(n):
            classpath, kwargs = DateTimeTrigger(now + timedelta(hours=1)).serialize()
            trigger_id = session.execute(insert(TriggerModel.__table__).values(
                classpath=classpath, kwargs=store.seal_kwargs(store.encode(kwargs)),
                created_date=now,
            )).inserted_primary_key[0]
            session.execute(insert(TaskInstanceModel.__table__).values(
                dag_id="d", run_id="r", task_id=f"t{i}", map_index=-1, state="deferred",
                try_number=1, max_tries=0, pool="default_pool", pool_slots=1,
                priority_weight=1, trigger_id=trigger_id, trigger_timeout=timeout_at,
                next_method="execute_complete", next_kwargs=store.encode({"carried": i})))


def rows(url: str) -> dict[str, TaskInstanceModel]:
    with session_scope(url) as session:
        found = {r.task_id: r for r in session.scalars(select(TaskInstanceModel))}
        session.expunge_all()
    return found


def test_leases_takeover_and_compare_and_set_firing(store_url):
    now = utcnow()
    seed(store_url, 10, now)
    with session_scope(store_url) as session:
        first = store.claim_triggers(session, "A", capacity=6, now=now, lease=LEASE)
    with session_scope(store_url) as session:
        second = store.claim_triggers(session, "B", capacity=20, now=now, lease=LEASE)
    assert len(first) == 6 and len(second) == 4
    assert not {t.id for t in first} & {t.id for t in second}
    assert {t.task_id for t in first + second} == {f"t{i}" for i in range(10)}
    assert first[0].kwargs["moment"] > now  # the kwargs come back as datetimes
    # A renews, B finds nothing more; once A's lease has passed B takes its triggers.
    later = now + timedelta(seconds=3)
    with session_scope(store_url) as session:
        assert store.renew_leases(session, "A", now=later, lease=LEASE) == \
            {t.id for t in first}
        assert store.claim_triggers(session, "B", capacity=20, now=later, lease=LEASE) == []
    with session_scope(store_url) as session:
        store.renew_leases(session, "B", now=later, lease=LEASE)
    dead = later + LEASE + timedelta(seconds=1)
    with session_scope(store_url) as session:
        store.renew_leases(session, "B", now=dead, lease=LEASE)
        taken = store.claim_triggers(session, "B", capacity=20, now=dead, lease=LEASE)
    assert {t.id for t in taken} == {t.id for t in first}
    with session_scope(store_url) as session:
        assert store.renew_leases(session, "A", now=dead, lease=LEASE) == set()
    # Only the holder fires; the event reaches the task instance with its kwargs.
    victim = first[0]
    with session_scope(store_url) as session:
        assert store.fire(session, [(victim.id, "late")], triggerer_id="A", now=dead) == []
    with session_scope(store_url) as session:
        assert store.fire(session, [(t.id, f"event {t.task_id}") for t in first[:3]],
                          triggerer_id="B", now=dead) == [("d", "r")]
    after = rows(store_url)
    for t in first[:3]:
        row = after[t.task_id]
        assert (row.state, row.trigger_id, row.next_method) == \
            ("scheduled", None, "execute_complete")
        assert store.decode(row.next_kwargs) == {"carried": int(t.task_id[1:]),
                                                 "event": f"event {t.task_id}"}
    # Firing twice changes nothing (the trigger row is gone).
    with session_scope(store_url) as session:
        assert store.fire(session, [(first[0].id, "again")], triggerer_id="B", now=dead) == []
    # A cleared task instance's trigger is dropped as unused.
    with session_scope(store_url) as session:
        session.execute(TaskInstanceModel.__table__.update().where(
            TaskInstanceModel.task_id == first[3].task_id).values(state="none"))
        assert store.clean_unused(session) == 1  # the cleared one; the fired ones are gone
    with session_scope(store_url) as session:
        story = [e.cause for e in session.scalars(select(TiEvent).where(
            TiEvent.task_id == first[0].task_id))]
    assert any("fired" in line for line in story)


def test_a_deferral_past_its_timeout_resumes_in_fail(store_url):
    now = utcnow()
    seed(store_url, 2, now, timeout_at=now + timedelta(seconds=10))
    with session_scope(store_url) as session:
        assert store.time_out_deferred(session, now + timedelta(seconds=5)) == []
        assert store.time_out_deferred(session, now + timedelta(seconds=11)) == [("d", "r")] * 2
    for row in rows(store_url).values():
        assert (row.state, row.next_method, row.trigger_id) == ("scheduled", "__fail__", None)
        assert store.decode(row.next_kwargs)["error"] == "Trigger/execution timeout"
    with session_scope(store_url) as session:
        assert session.scalar(select(TriggerModel.id)) is None


def test_a_pool_counts_deferred_slots_only_if_it_includes_them(store_url):
    from web import crud

    seed(store_url, 3, utcnow())
    with session_scope(store_url) as session:
        session.execute(TaskInstanceModel.__table__.update().values(pool="narrow"))
        shown = crud.save_pool(session, "narrow", {"slots": 5})
        assert (shown["deferred_slots"], shown["include_deferred"], shown["open_slots"]) == \
            (3, False, 5)
        shown = crud.save_pool(session, "narrow", {"include_deferred": True})
        assert (shown["deferred_slots"], shown["occupied_slots"], shown["open_slots"]) == \
            (3, 3, 2)
