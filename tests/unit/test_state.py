"""The task instance state machine: the transition table of updraft/state.py, the sets of
states, and the one helper every state write goes through (updraft/store/ti_state.py)."""

from __future__ import annotations

import ast
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from updraft import state as states
from updraft.state import (
    TASK_TRANSITIONS,
    InvalidStateTransition,
    TaskInstanceState as TI,
    check_transition,
    is_allowed,
)

ROOT = Path(__file__).resolve().parents[2]

#: Every move the code makes, with who makes it. The table must allow each one.
ALLOWED = [
    (TI.NONE, TI.SCHEDULED, "the scheduler finds its dependencies met"),
    (TI.NONE, TI.QUEUED, "dag.test and `tasks test` queue at once"),
    (TI.NONE, TI.SKIPPED, "an upstream skipped, a branch not taken, an empty mapping"),
    (TI.NONE, TI.UPSTREAM_FAILED, "an upstream failed"),
    (TI.NONE, TI.REMOVED, "the task left the DAG"),
    (TI.SCHEDULED, TI.QUEUED, "dispatch queues a try"),
    (TI.SCHEDULED, TI.SKIPPED, "upstreams cleared and decided again"),
    (TI.SCHEDULED, TI.UPSTREAM_FAILED, "upstreams cleared and decided again"),
    (TI.SCHEDULED, TI.REMOVED, "the task left the DAG"),
    (TI.SCHEDULED, TI.UP_FOR_RETRY, "a NATS try delivered max_deliver times, lost"),
    (TI.QUEUED, TI.RUNNING, "the worker claims the try (ADR 2)"),
    (TI.QUEUED, TI.SCHEDULED, "the try never reached a worker: it counts nothing"),
    (TI.QUEUED, TI.UP_FOR_RETRY, "a NATS try delivered max_deliver times, lost"),
    (TI.QUEUED, TI.SKIPPED, "dagrun_timeout"),
    (TI.RUNNING, TI.SUCCESS, "the try's outcome"),
    (TI.RUNNING, TI.FAILED, "the try's outcome, or a lost try with no retry left"),
    (TI.RUNNING, TI.UP_FOR_RETRY, "the try's outcome, an interruption, a lost try"),
    (TI.RUNNING, TI.UP_FOR_RESCHEDULE, "a sensor in reschedule mode"),
    (TI.RUNNING, TI.SKIPPED, "the task skipped itself; dagrun_timeout"),
    (TI.UP_FOR_RETRY, TI.SCHEDULED, "its retry time came"),
    (TI.UP_FOR_RETRY, TI.QUEUED, "dag.test queues at once"),
    (TI.UP_FOR_RESCHEDULE, TI.SCHEDULED, "its reschedule time came"),
    (TI.UP_FOR_RESCHEDULE, TI.QUEUED, "dag.test queues at once"),
    (TI.UP_FOR_RETRY, TI.REMOVED, "the task left the DAG"),
    (TI.UP_FOR_RESCHEDULE, TI.REMOVED, "the task left the DAG"),
]

#: Moves nothing may make, and why.
FORBIDDEN = [
    (TI.SUCCESS, TI.QUEUED, "a finished task instance runs again only after a clear"),
    (TI.FAILED, TI.UP_FOR_RETRY, "a finished task instance runs again only after a clear"),
    (TI.SKIPPED, TI.SCHEDULED, "a finished task instance runs again only after a clear"),
    (TI.REMOVED, TI.QUEUED, "a removed task comes back only by a clear"),
    (TI.UPSTREAM_FAILED, TI.RUNNING, "a finished task instance runs again only after a clear"),
    (TI.NONE, TI.RUNNING, "the claim accepts only queued (ADR 2)"),
    (TI.SCHEDULED, TI.RUNNING, "the claim accepts only queued: pools and limits hold"),
    (TI.UP_FOR_RETRY, TI.RUNNING, "the claim accepts only queued"),
    (TI.RUNNING, TI.QUEUED, "a running try ends with an outcome; requeueing is a clear"),
    (TI.RUNNING, TI.SCHEDULED, "a try that reached a worker counts (ADR 2)"),
    (TI.RUNNING, TI.REMOVED, "a try under way is not removed under its worker"),
    (TI.RUNNING, TI.UPSTREAM_FAILED, "upstreams decide only what has not started"),
    (TI.QUEUED, TI.REMOVED, "a queued try is claimed or sent back first"),
    (TI.QUEUED, TI.UPSTREAM_FAILED, "upstreams decide only what has not started"),
    (TI.NONE, TI.UP_FOR_RETRY, "only a try can fail and wait for a retry"),
    (TI.NONE, TI.UP_FOR_RESCHEDULE, "only a sensor's try reschedules"),
]


@pytest.mark.parametrize("old,new,why", ALLOWED, ids=lambda v: str(v) if isinstance(v, TI)
                         else "")
def test_the_table_allows_what_the_code_does(old, new, why):
    assert is_allowed(old, new), why
    assert check_transition(old, new) is new


@pytest.mark.parametrize("old,new,why", FORBIDDEN, ids=lambda v: str(v) if isinstance(v, TI)
                         else "")
def test_the_table_forbids(old, new, why):
    assert not is_allowed(old, new), why
    with pytest.raises(InvalidStateTransition, match=f"from {old} to {new}"):
        check_transition(old, new)


@pytest.mark.parametrize("old", list(TI), ids=str)
def test_a_clear_and_a_mark_are_allowed_from_every_state(old):
    for new in (TI.NONE, TI.SUCCESS, TI.FAILED, TI.SKIPPED):
        assert is_allowed(old, new)


def test_every_state_has_a_row_and_finished_states_move_only_by_hand():
    assert set(TASK_TRANSITIONS) == set(TI)
    for old in states.FINISHED_STATES:
        assert TASK_TRANSITIONS[old] == {TI.NONE} | states.MARKED_STATES - {old}
    for old, targets in TASK_TRANSITIONS.items():
        assert old not in targets
    assert check_transition(TI.SUCCESS, TI.SUCCESS) is TI.SUCCESS  # staying is no move
    assert is_allowed(None, TI.QUEUED)  # a row not read yet counts as none


def test_outside_validate_mode_a_forbidden_move_is_logged_once_and_allowed(monkeypatch,
                                                                          caplog):
    monkeypatch.setenv("UPDRAFT__CORE__VALIDATE_STATE_TRANSITIONS", "false")
    from updraft.config import conf

    conf.reload()
    states._LOGGED.clear()
    with caplog.at_level(logging.ERROR, logger="updraft.state"):
        assert check_transition("success", "queued", where="a test") is TI.QUEUED
        check_transition("success", "queued", where="a test")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["task instance cannot go from success to queued (a test): the state "
                        "transition table forbids this move; written anyway"]


def test_the_sets_of_states_agree():
    every = frozenset(TI)
    assert states.FINISHED_STATES | states.UNFINISHED_STATES == every
    assert not states.FINISHED_STATES & states.UNFINISHED_STATES
    assert states.ACTIVE_STATES < states.IN_FLIGHT_STATES < states.UNFINISHED_STATES
    assert states.UNCLAIMED_STATES < states.IN_FLIGHT_STATES
    assert states.SCHEDULABLE_STATES < states.UNFINISHED_STATES
    assert states.FAILED_STATES < states.FINISHED_STATES
    assert states.SUCCESS_LIKE_STATES < states.FINISHED_STATES
    # A value read from the store is found in a set of states, and the other way round.
    assert "running" in states.ACTIVE_STATES and TI.RUNNING in {"running"}
    assert states.state_values(states.ACTIVE_STATES) == ["queued", "running"]
    assert all(type(v) is str for v in states.state_values(states.FINISHED_STATES))


# -- the helper ------------------------------------------------------------------------------


@pytest.fixture
def session():
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from updraft.store.models import Base, TaskInstanceModel

    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        session.execute(insert(TaskInstanceModel.__table__), [
            dict(dag_id="d", run_id="r", task_id=t, map_index=-1, state=s, try_number=1,
                 max_tries=0, pool="default_pool", pool_slots=1, queue="default",
                 priority_weight=1, operator="EmptyOperator",
                 updated_at=datetime(2026, 1, 1, tzinfo=UTC))
            for t, s in (("a", "success"), ("b", "running"), ("c", "none"))])
        yield session
    engine.dispose()


def _states(session) -> dict[str, str]:
    from sqlalchemy import select

    from updraft.store.models import TaskInstanceModel as T

    return dict(session.execute(select(T.task_id, T.state)).all())


def test_write_state_is_a_compare_and_set_and_refuses_a_forbidden_move(session):
    from updraft.store.models import TaskInstanceModel as T
    from updraft.store.ti_state import write_state

    assert write_state(session, TI.RUNNING, TI.SUCCESS, T.task_id == "b", writer="t") == 1
    # The expected state no longer holds: nothing changes (the CAS of ADR 2).
    assert write_state(session, TI.RUNNING, TI.FAILED, T.task_id == "b", writer="t") == 0
    with pytest.raises(InvalidStateTransition, match="from success to queued"):
        write_state(session, TI.SUCCESS, TI.QUEUED, T.task_id == "a", writer="t")
    # A bulk write checks every state it expects, before running.
    with pytest.raises(InvalidStateTransition, match="from none to running"):
        write_state(session, [TI.QUEUED, TI.NONE], TI.RUNNING, writer="t")
    assert _states(session) == {"a": "success", "b": "success", "c": "none"}


def test_update_many_checks_each_change_and_writes_in_one_go(session):
    from updraft.store.ti_state import update_many

    now = datetime(2026, 1, 2, tzinfo=UTC)
    done = update_many(session, "d", "r", [
        (("c", -1), "none", 1, {"state": "scheduled", "updated_at": now}),
        (("a", -1), "none", 1, {"state": "scheduled", "updated_at": now}),  # a stale read
    ], writer="t")
    assert done == {("c", -1)}
    with pytest.raises(InvalidStateTransition, match="from success to scheduled"):
        update_many(session, "d", "r", [
            (("a", -1), "success", 1, {"state": "scheduled", "updated_at": now})], writer="t")
    assert _states(session) == {"a": "success", "b": "running", "c": "scheduled"}


def test_outside_validate_mode_the_helper_logs_and_writes(session, monkeypatch, caplog):
    from updraft.config import conf
    from updraft.store.models import TaskInstanceModel as T
    from updraft.store.ti_state import write_state

    monkeypatch.setenv("UPDRAFT__CORE__VALIDATE_STATE_TRANSITIONS", "false")
    conf.reload()
    states._LOGGED.clear()
    with caplog.at_level(logging.ERROR, logger="updraft.state"):
        assert write_state(session, TI.SUCCESS, TI.QUEUED, T.task_id == "a",
                           writer="a test") == 1
    assert "cannot go from success to queued (a test)" in caplog.text
    assert _states(session)["a"] == "queued"


#: Modules that may UPDATE task_instance without going through the helper, and why: none of
#: these writes touches the state column.
UPDATES_WITHOUT_STATE = {
    ("updraft/heartbeats.py", "_beat"): "heartbeat_at of running tries",
    ("updraft/store/runs.py", "expand_task"): "the placeholder's map index",
    ("updraft/store/commands.py", "_collapse_mapped"): "map indexes of a cleared mapped task",
    ("updraft/store/triggers.py", "start_resumed_try"): "next_method read by a resumed try",
}
_TI_NAMES = {"TaskInstanceModel", "T", "_TI", "ti", "TI_TABLE"}


def _updates_of_task_instance(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "update" \
                    and node.args:
                target = node.args[0]
                name = target.id if isinstance(target, ast.Name) else \
                    getattr(getattr(target, "value", None), "id", None)
                if name in _TI_NAMES:
                    yield func.name


def test_every_state_write_goes_through_the_helper():
    found = set()
    for package in ("updraft", "scheduler", "executors", "bus", "web", "composition",
                    "triggerer"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative == "updraft/store/ti_state.py" or "/migrations/" in relative:
                continue
            found.update((relative, name) for name in _updates_of_task_instance(path))
    assert found == set(UPDATES_WITHOUT_STATE), (
        "an UPDATE of task_instance outside updraft/store/ti_state.py: write states through "
        "write_state/cas_update/update_many, or list a write that sets no state here")
