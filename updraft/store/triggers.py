"""The store side of deferral (ADR 11): a try that defers, triggerers that lease triggers,
and the wake-up of a deferred task when its trigger fires, fails or times out.

- ``record_deferral`` (the task runner, in the try's outcome transaction): a ``trigger`` row
  and ``running -> deferred`` compare-and-set on the try (ADR 2), naming the trigger and
  where the try resumes (``next_method``, ``next_kwargs``);
- ``claim_triggers`` / ``renew_leases`` (a triggerer): a trigger belongs to one triggerer
  until its ``lease_until`` passes; each triggerer renews its leases every loop, so a dead
  one's triggers are free again after one lease and the next triggerer to look takes them;
- ``fire`` / ``fail`` / ``time_out_deferred``: ``deferred -> scheduled`` compare-and-set on
  the task instance's state and trigger, with the event (or ``__fail__`` and the reason)
  in ``next_kwargs``; the scheduler then queues the same try again. An event that ends the
  task from the trigger (``TaskSuccessEvent``...) moves it to its end state instead.

Each function takes the caller's session and never commits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from updraft.exceptions import DEFERRAL_TIMEOUT_ERROR as TIMEOUT_ERROR
from updraft.state import TaskInstanceState as TI
from updraft.store.engine import dialect_of
from updraft.store.models import TaskInstanceModel, TriggerModel
from updraft.store.runs import add_events
from updraft.store.ti_state import write_state

log = logging.getLogger(__name__)

_T = TriggerModel.__table__
_TI = TaskInstanceModel.__table__


def encode(value: Any) -> str:
    """Trigger kwargs (before ``seal_kwargs``) and next_kwargs as stored: XCom-style JSON
    text (datetimes, timedeltas, tuples... come back as such)."""
    from updraft.models.xcom import serialize_value

    return serialize_value(value)


def decode(text: str | None) -> Any:
    from updraft.models.xcom import deserialize_value

    return deserialize_value(text)


def seal_kwargs(text: str) -> str:
    """A trigger's kwargs (``encode``d) as stored: encrypted with the Fernet key, as
    Airflow does (they may name hosts, paths or tokens)."""
    from updraft.secrets import encrypt

    return encrypt(text)


def open_kwargs(token: str) -> Any:
    """A trigger's kwargs from their stored form."""
    from updraft.secrets import decrypt

    return decode(decrypt(token, what="a trigger's kwargs"))


# -- a try defers ------------------------------------------------------------------------------

def record_deferral(session: Session, request, deferral: dict[str, Any], *, now: datetime,
                    duration: float, node: str | None, xcoms: dict[str, Any]) -> bool:
    """Store the trigger and move the try ``running -> deferred``; False if the store
    refused the move (the task instance changed meanwhile: nothing is written)."""
    trigger_id = session.execute(insert(_T).values(
        classpath=deferral["classpath"], kwargs=seal_kwargs(deferral["kwargs"]),
        created_date=now,
    )).inserted_primary_key[0]
    changed = write_state(
        session, TI.RUNNING, TI.DEFERRED,
        _TI.c.dag_id == request.dag_id, _TI.c.run_id == request.run_id,
        _TI.c.task_id == request.task_id, _TI.c.map_index == request.map_index,
        _TI.c.try_number == request.try_number,
        _TI.c.try_id.is_not_distinct_from(request.try_id),
        writer="record_deferral", trigger_id=trigger_id,
        trigger_timeout=deferral.get("timeout_at"), next_method=deferral["method_name"],
        next_kwargs=deferral["next_kwargs"], duration=duration, updated_at=now)
    if not changed:
        session.execute(delete(_T).where(_T.c.id == trigger_id))
        return False
    from updraft.models.xcom import set_xcom

    for key, value in xcoms.items():
        set_xcom(session, dag_id=request.dag_id, run_id=request.run_id,
                 task_id=request.task_id, map_index=request.map_index, key=key, value=value)
    timeout = deferral.get("timeout_at")
    add_events(session, [dict(
        dag_id=request.dag_id, run_id=request.run_id, task_id=request.task_id,
        map_index=request.map_index, try_number=request.try_number, old_state=str(TI.RUNNING),
        new_state=str(TI.DEFERRED), node=node, timestamp=now,
        cause=f"deferred: waits for trigger {trigger_id} {deferral.get('label', '')}"
              + (f" until {timeout.isoformat()}" if timeout else "")
              + f"; resumes in {deferral['method_name']}")])
    return True


def start_resumed_try(session: Session, request) -> None:
    """The claim of a resumed try read ``next_method``: clear it, so that a later try (a
    retry, a try after a lost worker) starts in ``execute`` again, as in Airflow."""
    session.execute(update(_TI).where(
        _TI.c.dag_id == request.dag_id, _TI.c.run_id == request.run_id,
        _TI.c.task_id == request.task_id, _TI.c.map_index == request.map_index,
        _TI.c.try_number == request.try_number).values(next_method=None, next_kwargs=None))


# -- triggerers ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClaimedTrigger:
    """A trigger a triggerer now runs, with the task instance it wakes."""

    id: int
    classpath: str
    kwargs: dict[str, Any]
    dag_id: str | None
    run_id: str | None
    task_id: str | None
    map_index: int | None
    try_number: int | None

    @property
    def label(self) -> str:
        if self.task_id is None:
            return f"trigger {self.id} ({self.classpath})"
        index = f"[{self.map_index}]" if self.map_index is not None and self.map_index >= 0 \
            else ""
        return (f"trigger {self.id} ({self.classpath.rpartition('.')[2]}) of "
                f"{self.dag_id}.{self.task_id}{index} {self.run_id}")


def _free(now: datetime):
    return or_(_T.c.triggerer_id.is_(None), _T.c.lease_until < now)


def claim_triggers(session: Session, triggerer_id: str, *, capacity: int, now: datetime,
                   lease: timedelta) -> list[ClaimedTrigger]:
    """Take up to ``capacity`` minus what this triggerer runs of the free triggers (never
    leased, or whose lease has passed: their triggerer is gone), oldest first; return them.

    PostgreSQL and MariaDB lock the candidates with SKIP LOCKED, so triggerers claiming at
    once take different triggers; on SQLite the UPDATE's condition is the compare-and-set."""
    held = session.scalar(select(func.count()).select_from(_T).where(
        _T.c.triggerer_id == triggerer_id)) or 0
    room = capacity - held
    if room <= 0:
        return []
    query = select(_T.c.id).where(_free(now)).order_by(_T.c.id).limit(room)
    if dialect_of(session).name in ("postgresql", "mysql", "mariadb"):
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return []
    won: list[int] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        session.execute(update(_T).where(_T.c.id.in_(chunk), _free(now)).values(
            triggerer_id=triggerer_id, lease_until=now + lease))
        won.extend(session.scalars(select(_T.c.id).where(
            _T.c.id.in_(chunk), _T.c.triggerer_id == triggerer_id)))
    return load_triggers(session, won)


def load_triggers(session: Session, ids: Iterable[int]) -> list[ClaimedTrigger]:
    """The triggers ``ids`` with the deferred task instance each wakes."""
    ids = list(ids)
    found: list[ClaimedTrigger] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        tis = {r.trigger_id: r for r in session.execute(select(
            _TI.c.trigger_id, _TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.map_index,
            _TI.c.try_number).where(_TI.c.trigger_id.in_(chunk),
                                    _TI.c.state == str(TI.DEFERRED)))}
        for row in session.execute(select(_T.c.id, _T.c.classpath, _T.c.kwargs).where(
                _T.c.id.in_(chunk))):
            ti = tis.get(row.id)
            found.append(ClaimedTrigger(
                row.id, row.classpath, open_kwargs(row.kwargs) or {},
                ti.dag_id if ti else None, ti.run_id if ti else None,
                ti.task_id if ti else None, ti.map_index if ti else None,
                ti.try_number if ti else None))
    return found


def renew_leases(session: Session, triggerer_id: str, *, now: datetime,
                 lease: timedelta) -> set[int]:
    """Extend this triggerer's leases; return the ids of the triggers it still holds (one it
    lost, to a lease that passed or a trigger deleted, must be cancelled)."""
    session.execute(update(_T).where(_T.c.triggerer_id == triggerer_id).values(
        lease_until=now + lease))
    return set(session.scalars(select(_T.c.id).where(_T.c.triggerer_id == triggerer_id)))


def release(session: Session, triggerer_id: str) -> int:
    """Give up every trigger of this triggerer (it is stopping): others take them at once."""
    return session.execute(update(_T).where(_T.c.triggerer_id == triggerer_id).values(
        triggerer_id=None, lease_until=None)).rowcount


def clean_unused(session: Session) -> int:
    """Delete the triggers no deferred task instance waits for (cleared, marked, timed
    out): their triggerers cancel them at the next renewal."""
    waited = select(_TI.c.trigger_id).where(_TI.c.state == str(TI.DEFERRED),
                                            _TI.c.trigger_id.is_not(None))
    return session.execute(delete(_T).where(_T.c.id.not_in(waited))).rowcount


# -- waking deferred task instances ------------------------------------------------------------

_END_STATES = {"success": TI.SUCCESS, "failed": TI.FAILED, "skipped": TI.SKIPPED}


def _wake(session: Session, trigger_id: int, *, now: datetime, node: str | None,
          cause: str, next_method: str | None = None, event: Any = None,
          failure: dict[str, Any] | None = None, end_state: TI | None = None,
          xcoms: dict[str, Any] | None = None) -> tuple[str, str] | None:
    """``deferred -> scheduled`` (or an end state) for the task instance waiting for
    ``trigger_id``; returns its (dag_id, run_id) if it moved."""
    ti = session.execute(select(
        _TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.map_index, _TI.c.try_number,
        _TI.c.next_method, _TI.c.next_kwargs, _TI.c.start_date).where(
        _TI.c.trigger_id == trigger_id, _TI.c.state == str(TI.DEFERRED))).first()
    if ti is None:
        return None
    key = (_TI.c.dag_id == ti.dag_id, _TI.c.run_id == ti.run_id, _TI.c.task_id == ti.task_id,
           _TI.c.map_index == ti.map_index, _TI.c.trigger_id == trigger_id)
    if end_state is not None:
        new_state = end_state
        values: dict[str, Any] = dict(next_method=None, next_kwargs=None, end_date=now)
    elif failure is not None:
        new_state = TI.SCHEDULED
        values = dict(next_method="__fail__", next_kwargs=encode(failure))
    else:
        new_state = TI.SCHEDULED
        kwargs = dict(decode(ti.next_kwargs) or {})
        kwargs["event"] = event
        values = dict(next_method=next_method or ti.next_method, next_kwargs=encode(kwargs))
    changed = write_state(session, TI.DEFERRED, new_state, *key, writer="trigger wake-up",
                          trigger_id=None, trigger_timeout=None, updated_at=now,
                          scheduled_dttm=now, **values)
    if not changed:
        return None
    if end_state is not None:
        # The try ends here, in the triggerer: it counts once, as any try (ADR 2).
        from updraft.store.models import TaskInstanceTry

        started = ti.start_date or now
        session.execute(insert(TaskInstanceTry.__table__).values(
            dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=ti.map_index,
            try_number=ti.try_number, state=str(end_state), start_date=started, end_date=now,
            duration=(now - started).total_seconds(), hostname=node, executor="triggerer",
            error=None if end_state != TI.FAILED else cause[:4000]))
    if xcoms:
        from updraft.models.xcom import set_xcom

        for name, value in xcoms.items():
            set_xcom(session, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                     map_index=ti.map_index, key=name, value=value)
    add_events(session, [dict(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id,
                              map_index=ti.map_index, try_number=ti.try_number,
                              old_state=str(TI.DEFERRED), new_state=str(new_state),
                              cause=cause, node=node, timestamp=now)])
    return (ti.dag_id, ti.run_id)


def _chunks(items: list, size: int = 500):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _take_owned(session: Session, ids: list[int], triggerer_id: str | None) -> set[int]:
    """Delete the triggers of ``ids`` this triggerer holds (None: whoever holds them);
    return their ids."""
    owned: set[int] = set()
    for chunk in _chunks(ids):
        if triggerer_id is None:
            owned.update(session.scalars(select(_T.c.id).where(_T.c.id.in_(chunk))))
        else:
            owned.update(session.scalars(select(_T.c.id).where(
                _T.c.id.in_(chunk), _T.c.triggerer_id == triggerer_id)))
    for chunk in _chunks(sorted(owned)):
        session.execute(delete(_T).where(_T.c.id.in_(chunk)))
    return owned


_RESUME: dict[str, Any] = {}


def _resume_statement():
    """``deferred -> scheduled`` for one task instance and trigger, with its next_kwargs:
    built once, run as one executemany for a batch of events."""
    if not _RESUME:
        from sqlalchemy import bindparam

        from updraft.store.ti_state import cas_update

        _RESUME["stmt"] = cas_update(
            TI.DEFERRED, TI.SCHEDULED,
            _TI.c.dag_id == bindparam("k_dag"), _TI.c.run_id == bindparam("k_run"),
            _TI.c.task_id == bindparam("k_task"), _TI.c.map_index == bindparam("k_index"),
            _TI.c.trigger_id == bindparam("k_trigger"),
            trigger_id=None, trigger_timeout=None,
            next_method=bindparam("v_method"), next_kwargs=bindparam("v_kwargs"),
            updated_at=bindparam("v_now", type_=_TI.c.updated_at.type),
            scheduled_dttm=bindparam("v_now"))
    return _RESUME["stmt"]


def fire(session: Session, events: Iterable[tuple[int, Any]], *, triggerer_id: str | None,
         now: datetime, node: str | None = None) -> list[tuple[str, str]]:
    """Hand each trigger's event to its task instance; returns the runs that changed. A
    trigger this triggerer no longer holds (its lease passed) changes nothing: the triggerer
    that took it over fires it. Plain events are written in batches (a statement per 500
    triggers and one executemany), so thousands of triggers firing at once cost little."""
    from updraft.store.ti_state import execute
    from updraft.triggers.base import BaseTaskEndEvent

    events = list(events)
    owned = _take_owned(session, [trigger_id for trigger_id, _e in events], triggerer_id)
    plain = {trigger_id: getattr(event, "payload", event) for trigger_id, event in events
             if trigger_id in owned and not isinstance(event, BaseTaskEndEvent)}
    woken: list[tuple[str, str]] = []
    for trigger_id, event in events:
        if trigger_id in owned and isinstance(event, BaseTaskEndEvent):
            state = _END_STATES.get(str(event.task_instance_state), TI.FAILED)
            run = _wake(session, trigger_id, now=now, node=node, end_state=state,
                        xcoms=event.xcoms, cause=f"trigger {trigger_id} ended the task: "
                                                 f"{state} ({_short(event.payload)})")
            if run is not None:
                woken.append(run)
    rows = []
    for chunk in _chunks(sorted(plain)):
        rows.extend(session.execute(select(
            _TI.c.dag_id, _TI.c.run_id, _TI.c.task_id, _TI.c.map_index, _TI.c.try_number,
            _TI.c.trigger_id, _TI.c.next_method, _TI.c.next_kwargs).where(
            _TI.c.trigger_id.in_(chunk), _TI.c.state == str(TI.DEFERRED))))
    if not rows:
        return woken
    params = []
    for row in rows:
        kwargs = dict(decode(row.next_kwargs) or {})
        kwargs["event"] = plain[row.trigger_id]
        params.append({"k_dag": row.dag_id, "k_run": row.run_id, "k_task": row.task_id,
                       "k_index": row.map_index, "k_trigger": row.trigger_id,
                       "v_method": row.next_method, "v_kwargs": encode(kwargs), "v_now": now})
    moves = [(TI.DEFERRED, TI.SCHEDULED)]
    done = execute(session, _resume_statement(), params, moves, where="trigger wake-up").rowcount
    if done != len(params) or not dialect_of(session).supports_sane_multi_rowcount:
        # Some task instance may have changed between the read and the write (a clear, a
        # mark): keep the rows that hold what was written (scheduled at ``now``).
        still: set[tuple] = set()
        by_run: dict[tuple[str, str], list[str]] = {}
        for r in rows:
            by_run.setdefault((r.dag_id, r.run_id), []).append(r.task_id)
        for (dag_id, run_id), task_ids in by_run.items():
            for chunk in _chunks(sorted(set(task_ids))):
                still.update((dag_id, run_id, t, i) for t, i in session.execute(select(
                    _TI.c.task_id, _TI.c.map_index).where(
                    _TI.c.dag_id == dag_id, _TI.c.run_id == run_id, _TI.c.task_id.in_(chunk),
                    _TI.c.state == str(TI.SCHEDULED), _TI.c.updated_at == now)))
        rows = [r for r in rows if (r.dag_id, r.run_id, r.task_id, r.map_index) in still]
    add_events(session, [dict(
        dag_id=r.dag_id, run_id=r.run_id, task_id=r.task_id, map_index=r.map_index,
        try_number=r.try_number, old_state=str(TI.DEFERRED), new_state=str(TI.SCHEDULED),
        node=node, timestamp=now,
        cause=f"trigger {r.trigger_id} fired ({_short(plain[r.trigger_id])}); resumes in "
              "a new run of the same try") for r in rows])
    woken.extend(sorted({(r.dag_id, r.run_id) for r in rows}))
    return woken


def fail(session: Session, failures: Iterable[tuple[int, str, list[str] | None]], *,
         triggerer_id: str | None, now: datetime,
         node: str | None = None) -> list[tuple[str, str]]:
    """Each trigger failed (raised, or ended without an event): its task resumes in
    ``__fail__`` and fails with the reason (under its retry policy, as in Airflow)."""
    failures = list(failures)
    owned = _take_owned(session, [f[0] for f in failures], triggerer_id)
    woken: list[tuple[str, str]] = []
    for trigger_id, error, traceback in failures:
        if trigger_id not in owned:
            continue
        run = _wake(session, trigger_id, now=now, node=node,
                    failure={"error": error, "traceback": traceback},
                    cause=f"trigger {trigger_id} failed: {error}")
        if run is not None:
            woken.append(run)
    return woken


def time_out_deferred(session: Session, now: datetime,
                      node: str | None = None) -> list[tuple[str, str]]:
    """Deferred task instances whose ``trigger_timeout`` has passed resume in ``__fail__``
    with Airflow's reason; returns the runs that changed. Any node may call it (the
    scheduler's slow timer, every triggerer): the writes are compare-and-set."""
    rows = session.execute(select(_TI.c.trigger_id, _TI.c.trigger_timeout).where(
        _TI.c.state == str(TI.DEFERRED), _TI.c.trigger_timeout < now).limit(1000)).all()
    woken: list[tuple[str, str]] = []
    for row in rows:
        run = _wake(session, row.trigger_id, now=now, node=node,
                    failure={"error": TIMEOUT_ERROR, "timeout": True, "traceback": None},
                    cause=f"deferral timed out at {row.trigger_timeout.isoformat()}: the "
                          f"trigger {row.trigger_id} did not fire in time")
        session.execute(delete(_T).where(_T.c.id == row.trigger_id))
        if run is not None:
            woken.append(run)
    return woken


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# -- what a deferred task waits for (UI, API, ``tasks failed-deps``) ----------------------------

def deferral_info(session: Session, ti_row) -> dict[str, Any] | None:
    """The trigger a deferred task instance waits for: class path, kwargs, since when,
    timeout, the triggerer running it; None if it is not deferred."""
    if ti_row is None or ti_row.state != str(TI.DEFERRED) or ti_row.trigger_id is None:
        return None
    trigger = session.execute(select(_T).where(_T.c.id == ti_row.trigger_id)).first()
    info: dict[str, Any] = {
        "trigger_id": ti_row.trigger_id, "timeout": ti_row.trigger_timeout,
        "next_method": ti_row.next_method}
    if trigger is not None:
        info.update(classpath=trigger.classpath, kwargs=open_kwargs(trigger.kwargs),
                    since=trigger.created_date, triggerer_id=trigger.triggerer_id,
                    lease_until=trigger.lease_until)
    return info


__all__ = ["ClaimedTrigger", "TIMEOUT_ERROR", "claim_triggers", "clean_unused", "decode",
           "deferral_info", "encode", "fail", "fire", "load_triggers", "open_kwargs",
           "record_deferral", "seal_kwargs",
           "release", "renew_leases", "start_resumed_try", "time_out_deferred"]
