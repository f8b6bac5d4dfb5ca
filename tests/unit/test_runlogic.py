"""Run logic: trigger rules (Airflow's TriggerRuleDep), run state by leaves, deadlock, past."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from updraft.runlogic import PastView, TaskSpec, TiView, decide, effective_leaves
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI
from updraft.state import TriggerRule as TR

NOW = datetime(2024, 1, 1, 12, tzinfo=UTC)

S, F, UF, SK, N, R = TI.SUCCESS, TI.FAILED, TI.UPSTREAM_FAILED, TI.SKIPPED, TI.NONE, TI.RUNNING
RUN, WAIT = "run", "wait"


def build(edges, rules=None, **flags) -> dict[str, TaskSpec]:
    """TaskSpecs from (upstream, downstream) edges; ``flags`` maps a task id to TaskSpec kwargs."""
    rules = rules or {}
    ids: list[str] = []
    for a, b in edges:
        for t in (a, b):
            if t not in ids:
                ids.append(t)
    for t in list(rules) + list(flags):
        if t not in ids:
            ids.append(t)
    return {t: TaskSpec(task_id=t,
                        upstream=frozenset(a for a, b in edges if b == t),
                        downstream=frozenset(b for a, b in edges if a == t),
                        trigger_rule=rules.get(t, TR.ALL_SUCCESS), **flags.get(t, {}))
            for t in ids}


def views(states: dict) -> list[TiView]:
    result = []
    for key, state in states.items():
        task_id, map_index = key if isinstance(key, tuple) else (key, -1)
        result.append(TiView(task_id, map_index, state))
    return result


def outcome_of(decision, key=("t", -1)):
    for task_id, map_index, state, _why in decision.changes:
        if (task_id, map_index) == key:
            return state
    if key in decision.ready:
        return RUN
    assert key in decision.waiting, decision
    return WAIT


# (rule, upstream states, whether u1 is a setup task, expected)
CASES = [
    (TR.ALL_SUCCESS, [S, S], RUN),
    (TR.ALL_SUCCESS, [S, N], WAIT),
    (TR.ALL_SUCCESS, [S, F], UF),
    (TR.ALL_SUCCESS, [S, UF], UF),
    (TR.ALL_SUCCESS, [S, SK], SK),
    (TR.ALL_SUCCESS, [F, N], UF),
    (TR.ALL_SUCCESS, [SK, N], SK),
    (TR.ALL_SUCCESS, [SK, F], UF),
    (TR.ALL_FAILED, [F, F], RUN),
    (TR.ALL_FAILED, [F, UF], RUN),
    (TR.ALL_FAILED, [F, N], WAIT),
    (TR.ALL_FAILED, [F, S], SK),
    (TR.ALL_FAILED, [F, SK], SK),
    (TR.ALL_FAILED, [S, N], SK),
    (TR.ALL_DONE, [S, F], RUN),
    (TR.ALL_DONE, [SK, UF], RUN),
    (TR.ALL_DONE, [S, N], WAIT),
    (TR.ALL_DONE, [F, R], WAIT),
    (TR.ONE_SUCCESS, [S, N], RUN),
    (TR.ONE_SUCCESS, [F, N], WAIT),
    (TR.ONE_SUCCESS, [F, F], UF),
    (TR.ONE_SUCCESS, [F, SK], UF),
    (TR.ONE_SUCCESS, [UF, SK], UF),
    (TR.ONE_SUCCESS, [SK, SK], SK),
    (TR.ONE_FAILED, [F, N], RUN),
    (TR.ONE_FAILED, [UF, N], RUN),
    (TR.ONE_FAILED, [S, N], WAIT),
    (TR.ONE_FAILED, [S, SK], SK),
    (TR.ONE_FAILED, [S, S], SK),
    (TR.ONE_DONE, [S, N], RUN),
    (TR.ONE_DONE, [F, N], RUN),
    (TR.ONE_DONE, [SK, N], WAIT),
    (TR.ONE_DONE, [SK, SK], SK),
    (TR.ONE_DONE, [SK, UF], SK),
    (TR.NONE_FAILED, [S, SK], RUN),
    (TR.NONE_FAILED, [SK, SK], RUN),
    (TR.NONE_FAILED, [S, N], WAIT),
    (TR.NONE_FAILED, [S, F], UF),
    (TR.NONE_FAILED, [SK, UF], UF),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [S, SK], RUN),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [SK, SK], SK),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [SK, N], WAIT),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [SK, F], UF),
    (TR.NONE_FAILED_MIN_ONE_SUCCESS, [S, UF], UF),
    (TR.NONE_SKIPPED, [S, F], RUN),
    (TR.NONE_SKIPPED, [S, UF], RUN),
    (TR.NONE_SKIPPED, [S, N], WAIT),
    (TR.NONE_SKIPPED, [S, SK], SK),
    (TR.NONE_SKIPPED, [SK, N], SK),
    (TR.ALL_SKIPPED, [SK, SK], RUN),
    (TR.ALL_SKIPPED, [SK, N], WAIT),
    (TR.ALL_SKIPPED, [SK, S], SK),
    (TR.ALL_SKIPPED, [SK, F], SK),
    (TR.ALL_SKIPPED, [SK, UF], SK),
    (TR.ALL_SKIPPED, [S, N], SK),
    (TR.ALWAYS, [N, N], RUN),
    (TR.ALWAYS, [F, UF], RUN),
]


@pytest.mark.parametrize(("rule", "upstream", "expected"), CASES,
                         ids=[f"{r}-{'_'.join(map(str, u))}" for r, u, _ in CASES])
def test_trigger_rule(rule, upstream, expected):
    edges = [(f"u{i}", "t") for i in range(len(upstream))]
    states = {f"u{i}": s for i, s in enumerate(upstream)} | {"t": N}
    decision = decide(build(edges, {"t": rule}), views(states), NOW)
    assert outcome_of(decision) == expected


SETUP_CASES = [
    # (setup states, other upstream state, expected)
    ([S], F, RUN),
    ([S], N, WAIT),
    ([F], S, UF),
    ([UF], S, UF),
    ([SK], S, SK),
    ([S, F], S, RUN),       # one successful setup is enough (Airflow)
    ([S, SK], S, RUN),
    ([F, SK], S, UF),
    ([SK, SK], F, SK),
]


@pytest.mark.parametrize(("setups", "other", "expected"), SETUP_CASES)
def test_all_done_setup_success(setups, other, expected):
    edges = [(f"s{i}", "t") for i in range(len(setups))] + [("w", "t")]
    flags = {f"s{i}": {"is_setup": True} for i in range(len(setups))}
    flags["t"] = {"is_teardown": True}
    specs = build(edges, {"t": TR.ALL_DONE_SETUP_SUCCESS}, **flags)
    states = {f"s{i}": s for i, s in enumerate(setups)} | {"w": other, "t": N}
    assert outcome_of(decide(specs, views(states), NOW)) == expected


def test_all_done_setup_success_without_setups_is_all_done():
    specs = build([("a", "t")], {"t": TR.ALL_DONE_SETUP_SUCCESS})
    assert outcome_of(decide(specs, views({"a": F, "t": N}), NOW)) == RUN


def test_root_task_is_ready():
    specs = build([], {"t": TR.ALL_SUCCESS})
    assert decide(specs, views({"t": N}), NOW).ready == [("t", -1)]


def test_mapped_upstream_counts_every_map_index():
    specs = build([("m", "t"), ("m", "o")], {"t": TR.ALL_SUCCESS, "o": TR.ONE_FAILED},
                  m={"is_mapped": True})
    running = {("m", 0): S, ("m", 1): S, ("m", 2): N, "t": N, "o": N}
    d = decide(specs, views(running), NOW)
    assert outcome_of(d) == WAIT
    assert outcome_of(d, ("o", -1)) == WAIT
    done = {("m", 0): S, ("m", 1): F, ("m", 2): S, "t": N, "o": N}
    d = decide(specs, views(done), NOW)
    assert outcome_of(d) == UF
    assert outcome_of(d, ("o", -1)) == RUN
    ok = {("m", 0): S, ("m", 1): S, ("m", 2): S, "t": N, "o": N}
    d = decide(specs, views(ok), NOW)
    assert outcome_of(d) == RUN
    assert outcome_of(d, ("o", -1)) == SK


def test_unexpanded_mapped_task_asks_for_expansion():
    specs = build([("a", "m")], m={"is_mapped": True})
    d = decide(specs, views({"a": S, "m": N}), NOW)
    assert d.expand == ["m"]
    assert d.ready == []
    assert d.run_state is None


def test_failure_propagates_down_a_chain_in_one_pass():
    specs = build([("a", "b"), ("b", "c"), ("c", "d")], {"d": TR.ALL_DONE})
    d = decide(specs, views({"a": F, "b": N, "c": N, "d": N}), NOW)
    assert [(t, s) for t, _i, s, _w in d.changes] == [("b", UF), ("c", UF)]
    assert d.ready == [("d", -1)]
    assert d.run_state is None


def test_skip_propagates_and_run_succeeds():
    specs = build([("a", "b"), ("b", "c")])
    d = decide(specs, views({"a": SK, "b": N, "c": N}), NOW)
    assert [(t, s) for t, _i, s, _w in d.changes] == [("b", SK), ("c", SK)]
    assert d.run_state == DagRunState.SUCCESS


# -- the run's state --------------------------------------------------------------------------

def test_run_succeeds_when_all_leaves_succeed_or_skip():
    specs = build([("a", "b"), ("a", "c")])
    d = decide(specs, views({"a": S, "b": S, "c": SK}), NOW)
    assert d.run_state == DagRunState.SUCCESS


def test_run_fails_when_a_leaf_fails():
    specs = build([("a", "b"), ("a", "c")])
    d = decide(specs, views({"a": S, "b": S, "c": F}), NOW)
    assert d.run_state == DagRunState.FAILED
    assert "c" in d.run_reason


def test_failed_non_leaf_does_not_fail_the_run_if_leaves_succeed():
    specs = build([("a", "b")], {"b": TR.ALL_DONE})
    d = decide(specs, views({"a": F, "b": S}), NOW)
    assert d.run_state == DagRunState.SUCCESS


def test_run_is_not_decided_while_tasks_are_unfinished():
    specs = build([("a", "b"), ("a", "c")])
    d = decide(specs, views({"a": S, "b": F, "c": R}), NOW)
    assert d.run_state is None


def test_teardown_failure_is_ignored_for_run_state():
    specs = build([("s", "w"), ("w", "td"), ("s", "td")], {"td": TR.ALL_DONE_SETUP_SUCCESS},
                  s={"is_setup": True}, td={"is_teardown": True})
    assert effective_leaves(specs) == {"w"}
    d = decide(specs, views({"s": S, "w": S, "td": F}), NOW)
    assert d.run_state == DagRunState.SUCCESS


def test_work_failure_fails_the_run_even_if_teardown_succeeds():
    specs = build([("s", "w"), ("w", "td"), ("s", "td")], {"td": TR.ALL_DONE_SETUP_SUCCESS},
                  s={"is_setup": True}, td={"is_teardown": True})
    d = decide(specs, views({"s": S, "w": F, "td": S}), NOW)
    assert d.run_state == DagRunState.FAILED


def test_teardown_with_on_failure_fail_dagrun_counts():
    specs = build([("s", "w"), ("w", "td"), ("s", "td")], {"td": TR.ALL_DONE_SETUP_SUCCESS},
                  s={"is_setup": True},
                  td={"is_teardown": True, "on_failure_fail_dagrun": True})
    assert effective_leaves(specs) == {"td"}
    d = decide(specs, views({"s": S, "w": S, "td": F}), NOW)
    assert d.run_state == DagRunState.FAILED


def test_teardown_runs_after_work_failure():
    specs = build([("s", "w"), ("w", "td"), ("s", "td")], {"td": TR.ALL_DONE_SETUP_SUCCESS},
                  s={"is_setup": True}, td={"is_teardown": True})
    d = decide(specs, views({"s": S, "w": F, "td": N}), NOW)
    assert d.ready == [("td", -1)]


def test_deadlock_fails_the_run():
    # An upstream removed from a non-mapped task can never satisfy all_success.
    specs = build([("a", "b")])
    d = decide(specs, views({"a": TI.REMOVED, "b": N}), NOW)
    assert d.run_state == DagRunState.FAILED
    assert "deadlock" in d.run_reason
    assert "b" in d.run_reason


def test_retry_waits_for_its_time_and_is_not_a_deadlock():
    specs = build([("a", "b")])
    later = NOW + timedelta(seconds=30)
    d = decide(specs, [TiView("a", -1, TI.UP_FOR_RETRY, later), TiView("b", -1, N)], NOW)
    assert d.ready == []
    assert d.wake_at == later
    assert d.run_state is None
    assert "retry" in d.waiting[("a", -1)]
    d = decide(specs, [TiView("a", -1, TI.UP_FOR_RETRY, NOW - timedelta(seconds=1)),
                       TiView("b", -1, N)], NOW)
    assert d.ready == [("a", -1)]


# -- depends_on_past -------------------------------------------------------------------------

def _past(states=None, history=(), logical=NOW - timedelta(days=1)):
    return PastView(exists=True, logical_date=logical, states=states or {},
                    tasks_with_history=frozenset(history))


DOP = {"t": {"depends_on_past": True}}


def test_depends_on_past_without_previous_run_runs():
    specs = build([], **DOP)
    assert decide(specs, views({"t": N}), NOW, PastView()).ready == [("t", -1)]


@pytest.mark.parametrize("previous", [S, SK])
def test_depends_on_past_previous_success_or_skipped_runs(previous):
    specs = build([], **DOP)
    d = decide(specs, views({"t": N}), NOW, _past({("t", -1): previous}, {"t"}))
    assert d.ready == [("t", -1)]


@pytest.mark.parametrize("previous", [F, UF, N, TI.RUNNING])
def test_depends_on_past_previous_not_successful_blocks(previous):
    specs = build([], **DOP)
    d = decide(specs, views({"t": N}), NOW, _past({("t", -1): previous}, {"t"}))
    assert d.ready == []
    assert d.blocked_by_past
    assert "depends_on_past" in d.waiting[("t", -1)]
    assert d.run_state is None  # blocked by the past is not a deadlock


def test_depends_on_past_new_task_ignores_first_run():
    specs = build([], **DOP)
    assert decide(specs, views({"t": N}), NOW, _past({}, ())).ready == [("t", -1)]
    blocked = decide(specs, views({"t": N}), NOW, _past({}, {"t"}))
    assert blocked.ready == [] and blocked.blocked_by_past
    strict = build([], t={"depends_on_past": True, "ignore_first_depends_on_past": False})
    assert decide(strict, views({"t": N}), NOW, _past({}, ())).ready == []


def test_depends_on_past_previous_run_before_start_date_is_ignored():
    specs = build([], t={"depends_on_past": True, "start_date": NOW})
    d = decide(specs, views({"t": N}), NOW, _past({("t", -1): F}, {"t"}))
    assert d.ready == [("t", -1)]


def test_wait_for_downstream():
    specs = build([("t", "d")], t={"depends_on_past": True, "wait_for_downstream": True})
    past_bad = _past({("t", -1): S, ("d", -1): F}, {"t"})
    assert decide(specs, views({"t": N, "d": N}), NOW, past_bad).ready == []
    past_ok = _past({("t", -1): S, ("d", -1): S}, {"t"})
    assert decide(specs, views({"t": N, "d": N}), NOW, past_ok).ready == [("t", -1)]
