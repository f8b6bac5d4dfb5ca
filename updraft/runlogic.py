"""What happens next in a DAG run: the pure core shared by ``dag.test`` and the scheduler.

``decide(tasks, tis, now, past)`` takes the shape of the DAG and the states of a run's task
instances and returns decisions: which task instances change state (skipped,
upstream_failed, removed) and why, which are ready to queue, which mapped tasks must be
expanded first, and whether the run is over. It reads no clock, store or network, so tests
drive it directly; the caller applies the decisions and calls it again.

The rules are Airflow's: trigger rules on direct upstreams (counting each map index of a
mapped upstream), early skip/upstream_failed propagation, depends_on_past and
wait_for_downstream, setup/teardown, and the run's state decided by its leaves.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from updraft.state import (
    FAILED_STATES,
    FINISHED_STATES as FINISHED,
    RUN_GOES_ON_STATES,
    SCHEDULABLE_STATES,
    SUCCESS_LIKE_STATES as SUCCESS_LIKE,
    DagRunState,
)
from updraft.state import TaskInstanceState as TI
from updraft.state import TriggerRule as TR


@dataclass(frozen=True)
class TaskSpec:
    """What the run logic needs to know about one task."""

    task_id: str
    upstream: frozenset[str]
    downstream: frozenset[str]
    trigger_rule: str = TR.ALL_SUCCESS
    is_mapped: bool = False
    is_setup: bool = False
    is_teardown: bool = False
    on_failure_fail_dagrun: bool = False
    depends_on_past: bool = False
    wait_for_downstream: bool = False
    ignore_first_depends_on_past: bool = True
    start_date: datetime | None = None


@dataclass
class TiView:
    """One task instance as the run logic sees it."""

    task_id: str
    map_index: int
    state: TI
    next_retry_at: datetime | None = None

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.map_index


_TI_BY_VALUE = {str(state): state for state in TI}


class RunSnapshot:
    """The states of a run's task instances, indexed for ``decide``; updatable in place, so a
    scheduler can apply only the rows that changed since its last pass."""

    __slots__ = ("retry_at", "states", "tis_by_task")

    def __init__(self) -> None:
        self.states: dict[tuple[str, int], TI] = {}
        self.retry_at: dict[tuple[str, int], datetime] = {}
        self.tis_by_task: dict[str, list[int]] = {}

    @classmethod
    def from_views(cls, views: Iterable[TiView]) -> RunSnapshot:
        snapshot = cls()
        snapshot.update(views)
        return snapshot

    def update(self, views: Iterable) -> None:
        """Add or replace task instances (objects with task_id, map_index, state,
        next_retry_at)."""
        states, retry_at, by_task = self.states, self.retry_at, self.tis_by_task
        for ti in views:
            key = (ti.task_id, ti.map_index)
            state = ti.state
            if key not in states:
                indexes = by_task.get(ti.task_id)
                if indexes is None:
                    by_task[ti.task_id] = [ti.map_index]
                else:
                    indexes.append(ti.map_index)
                    indexes.sort()
            states[key] = state if state.__class__ is TI else _TI_BY_VALUE.get(state) or TI(state)
            if ti.next_retry_at is not None:
                retry_at[key] = ti.next_retry_at
            else:
                retry_at.pop(key, None)

    def forget(self, keys: Iterable[tuple[str, int]]) -> None:
        """Drop task instances that no longer exist (a mapped task collapsed by a clear)."""
        for key in keys:
            if self.states.pop(key, None) is not None:
                self.retry_at.pop(key, None)
                indexes = self.tis_by_task.get(key[0], [])
                if key[1] in indexes:
                    indexes.remove(key[1])


@dataclass
class PastView:
    """The previous run of the DAG, for depends_on_past; ``exists`` False when there is none."""

    exists: bool = False
    logical_date: datetime | None = None
    states: Mapping[tuple[str, int], TI] = field(default_factory=dict)
    #: Task ids that have a task instance in any earlier run (ignore_first_depends_on_past).
    tasks_with_history: frozenset[str] = frozenset()


@dataclass
class Decision:
    """What ``decide`` found."""

    changes: list[tuple[str, int, TI, str]] = field(default_factory=list)
    ready: list[tuple[str, int]] = field(default_factory=list)
    expand: list[str] = field(default_factory=list)
    run_state: DagRunState | None = None
    run_reason: str = ""
    #: The earliest time a waiting retry or reschedule becomes ready.
    wake_at: datetime | None = None
    #: Why each task instance that cannot run yet is waiting (the "why not running" story).
    waiting: dict[tuple[str, int], str] = field(default_factory=dict)
    blocked_by_past: bool = False


def effective_leaves(tasks: Mapping[str, TaskSpec]) -> set[str]:
    """Tasks whose states decide the run's state: leaves, looking through teardowns."""

    def is_leaf(spec: TaskSpec) -> bool:
        for down in spec.downstream:
            down_spec = tasks[down]
            if not down_spec.is_teardown or down_spec.on_failure_fail_dagrun:
                return False
        return not spec.is_teardown or spec.on_failure_fail_dagrun

    leaves = {tid for tid, spec in tasks.items() if is_leaf(spec)}
    return leaves or {tid for tid, spec in tasks.items() if not spec.downstream}


_TOPO_CACHE: dict[int, tuple[Mapping[str, TaskSpec], list[str]]] = {}


def _topological(tasks: Mapping[str, TaskSpec]) -> list[str]:
    cached = _TOPO_CACHE.get(id(tasks))
    if cached is not None and cached[0] is tasks:
        return cached[1]
    order = _topological_order(tasks)
    if len(_TOPO_CACHE) > 256:
        _TOPO_CACHE.clear()
    _TOPO_CACHE[id(tasks)] = (tasks, order)
    return order


_POSITION_CACHE: dict[int, tuple[Mapping[str, TaskSpec], dict[str, int]]] = {}


def _topological_positions(tasks: Mapping[str, TaskSpec]) -> dict[str, int]:
    """Each task's place in a topological order (cached per task mapping)."""
    cached = _POSITION_CACHE.get(id(tasks))
    if cached is not None and cached[0] is tasks:
        return cached[1]
    positions = {task_id: i for i, task_id in enumerate(_topological(tasks))}
    if len(_POSITION_CACHE) > 256:
        _POSITION_CACHE.clear()
    _POSITION_CACHE[id(tasks)] = (tasks, positions)
    return positions


def _topological_order(tasks: Mapping[str, TaskSpec]) -> list[str]:
    indegree = {tid: len(spec.upstream) for tid, spec in tasks.items()}
    order = [tid for tid, n in indegree.items() if n == 0]
    i = 0
    while i < len(order):
        for down in tasks[order[i]].downstream:
            indegree[down] -= 1
            if indegree[down] == 0:
                order.append(down)
        i += 1
    return order


class _Evaluation:
    def __init__(self, tasks, states, tis_by_task, past):
        self.tasks = tasks
        self.states = states
        self.tis_by_task = tis_by_task
        self.past = past

    def upstream_counts(self, spec: TaskSpec):
        # The hot loop of a pass over a wide join: plain dict counting, no per-item calls.
        counter: Counter = Counter()
        total = 0
        setups_total = setups_success = setups_skipped = 0
        states, tis_by_task, tasks = self.states, self.tis_by_task, self.tasks
        for up in spec.upstream:
            indexes = tis_by_task.get(up, ())
            total += len(indexes)
            if tasks[up].is_setup:
                for map_index in indexes:
                    state = states[(up, map_index)]
                    setups_total += 1
                    setups_success += state == TI.SUCCESS
                    setups_skipped += state == TI.SKIPPED
            for map_index in indexes:
                state = states[(up, map_index)]
                if state in FINISHED:
                    counter[state] += 1
        return counter, total, (setups_total, setups_success, setups_skipped)

    def evaluate(self, spec: TaskSpec, map_index: int) -> tuple[TI | None, bool, str]:
        """(state to set or None, whether it may run now, why not)."""
        rule = TR(spec.trigger_rule)
        if not spec.upstream or rule == TR.ALWAYS:
            return None, True, ""
        counter, upstream, (setups, setup_success, setup_skipped) = self.upstream_counts(spec)
        success = counter[TI.SUCCESS]
        skipped = counter[TI.SKIPPED]
        failed = counter[TI.FAILED]
        upstream_failed = counter[TI.UPSTREAM_FAILED]
        removed = counter[TI.REMOVED]
        done = success + skipped + failed + upstream_failed + removed
        upstream_done = done >= upstream
        new_state: TI | None = None
        cause = ""
        if rule == TR.ALL_SUCCESS:
            if upstream_failed or failed:
                new_state, cause = TI.UPSTREAM_FAILED, "an upstream task failed"
            elif skipped:
                new_state, cause = TI.SKIPPED, "an upstream task was skipped"
        elif rule == TR.ALL_FAILED:
            if success or skipped:
                new_state, cause = TI.SKIPPED, "an upstream task did not fail (all_failed)"
        elif rule == TR.ONE_SUCCESS:
            if upstream_done and done == skipped:
                new_state, cause = TI.SKIPPED, "all upstream tasks were skipped (one_success)"
            elif upstream_done and success <= 0:
                new_state, cause = TI.UPSTREAM_FAILED, "no upstream task succeeded (one_success)"
        elif rule == TR.ONE_FAILED:
            if upstream_done and not (failed or upstream_failed):
                new_state, cause = TI.SKIPPED, "no upstream task failed (one_failed)"
        elif rule == TR.ONE_DONE:
            if upstream_done and not (failed or success):
                new_state, cause = TI.SKIPPED, "no upstream task succeeded or failed (one_done)"
        elif rule == TR.NONE_FAILED:
            if upstream_failed or failed:
                new_state, cause = TI.UPSTREAM_FAILED, "an upstream task failed (none_failed)"
        elif rule == TR.NONE_FAILED_MIN_ONE_SUCCESS:
            if upstream_failed or failed:
                new_state, cause = TI.UPSTREAM_FAILED, "an upstream task failed"
            elif skipped == upstream:
                new_state, cause = TI.SKIPPED, "all upstream tasks were skipped"
        elif rule == TR.NONE_SKIPPED:
            if skipped:
                new_state, cause = TI.SKIPPED, "an upstream task was skipped (none_skipped)"
        elif rule == TR.ALL_SKIPPED:
            if success or failed or upstream_failed:
                new_state, cause = TI.SKIPPED, "an upstream task was not skipped (all_skipped)"
        elif rule == TR.ALL_DONE_SETUP_SUCCESS:
            if upstream_done and setups and setup_skipped >= setups:
                new_state, cause = TI.SKIPPED, "all its setup tasks were skipped"
            elif upstream_done and setups and setup_success == 0:
                new_state, cause = TI.UPSTREAM_FAILED, "none of its setup tasks succeeded"
        if new_state is not None:
            return new_state, False, cause

        mapped_removed = removed if map_index > -1 else 0
        wait = ""
        if rule == TR.ONE_SUCCESS:
            if success <= 0:
                wait = "waits for one upstream task to succeed (one_success)"
        elif rule == TR.ONE_FAILED:
            if not failed and not upstream_failed:
                wait = "waits for one upstream task to fail (one_failed)"
        elif rule == TR.ONE_DONE:
            if success + failed <= 0:
                wait = "waits for one upstream task to succeed or fail (one_done)"
        elif rule == TR.ALL_SUCCESS:
            if upstream - success - mapped_removed > 0:
                wait = (f"waits for all upstream tasks to succeed: {success} of {upstream} "
                        "done (all_success)")
        elif rule == TR.ALL_FAILED:
            if upstream - failed - upstream_failed - mapped_removed > 0:
                wait = "waits for all upstream tasks to fail (all_failed)"
        elif rule == TR.ALL_DONE:
            if not upstream_done:
                wait = f"waits for all upstream tasks to finish: {done} of {upstream} (all_done)"
        elif rule == TR.ALL_DONE_SETUP_SUCCESS:
            if not upstream_done:
                wait = f"waits for all upstream tasks to finish: {done} of {upstream}"
            elif setups and not setup_success:
                wait = "waits for one of its setup tasks to succeed"
        elif rule in (TR.NONE_FAILED, TR.NONE_FAILED_MIN_ONE_SUCCESS):
            if upstream - success - skipped - mapped_removed > 0:
                wait = f"waits for upstream tasks to finish without failing ({rule})"
        elif rule == TR.NONE_SKIPPED:
            if not upstream_done or skipped > 0:
                wait = "waits for all upstream tasks to finish (none_skipped)"
        elif rule == TR.ALL_SKIPPED:
            if upstream - skipped > 0:
                wait = "waits for all upstream tasks to be skipped (all_skipped)"
        return None, not wait, wait

    def past_allows(self, spec: TaskSpec, map_index: int) -> tuple[bool, str]:
        if not spec.depends_on_past:
            return True, ""
        past = self.past
        if past is None or not past.exists:
            return True, ""
        if spec.start_date and past.logical_date and past.logical_date < spec.start_date:
            return True, ""
        prev = past.states.get((spec.task_id, map_index))
        if prev is None:
            if spec.ignore_first_depends_on_past and spec.task_id not in past.tasks_with_history:
                return True, ""
            return False, ("depends_on_past is true for this task, but the previous task "
                           "instance has not run yet")
        if prev not in SUCCESS_LIKE:
            return False, (f"depends_on_past is true for this task, but the previous task "
                           f"instance is in the state '{prev}' which is not a successful state")
        if spec.wait_for_downstream:
            for down in spec.downstream:
                down_state = past.states.get((down, map_index), past.states.get((down, -1)))
                if down_state not in SUCCESS_LIKE:
                    return False, ("wait_for_downstream is true for this task, but the "
                                   "downstream tasks of the previous run are not done")
        return True, ""


def decide(tasks: Mapping[str, TaskSpec], tis: Iterable[TiView], now: datetime,
           past: PastView | None = None) -> Decision:
    """Evaluate every unfinished task instance of one run; see the module docstring."""
    snapshot = tis if isinstance(tis, RunSnapshot) else RunSnapshot.from_views(tis)
    states = snapshot.states  # copied before the cascade below changes a state
    retry_at = snapshot.retry_at
    tis_by_task = snapshot.tis_by_task
    evaluation = _Evaluation(tasks, states, tis_by_task, past)
    decision = Decision()

    position = _topological_positions(tasks)
    # Scheduled ones were found ready before and wait for a slot: nothing to decide again.
    scheduled = [k for k, st in states.items() if st is TI.SCHEDULED]
    decision.waiting.update(dict.fromkeys(scheduled, SCHEDULED_WAIT))
    pending = sorted((k for k, st in states.items() if st in _UNDECIDED and
                      k[0] in position), key=lambda k: (position[k[0]], k[1]))
    # Tasks with at least one finished task instance; grows as the cascade below decides.
    finished_tasks = {task_id for (task_id, _i), st in states.items() if st in FINISHED}
    for key in pending:
        task_id, map_index = key
        spec = tasks[task_id]
        state = states[key]
        if state == TI.NONE and spec.upstream and spec.trigger_rule != TR.ALWAYS and \
                spec.upstream.isdisjoint(finished_tasks):
            # No upstream task has finished: no trigger rule can fire or fail yet. This
            # fast path keeps a pass over a 10,000-task run cheap.
            decision.waiting[key] = WAITING_FOR_UPSTREAM
            continue
        new_state, may_run, why = evaluation.evaluate(spec, map_index)
        if new_state is not None:
            if states is snapshot.states:
                states = evaluation.states = dict(states)
            states[key] = new_state
            finished_tasks.add(task_id)
            decision.changes.append((task_id, map_index, new_state, why))
            continue
        if not may_run:
            decision.waiting[key] = why
            continue
        allowed, why_past = evaluation.past_allows(spec, map_index)
        if not allowed:
            decision.waiting[key] = why_past
            decision.blocked_by_past = True
            continue
        if state in (TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE):
            at = retry_at.get(key)
            if at is not None and at > now:
                kind = "retry" if state == TI.UP_FOR_RETRY else "reschedule"
                decision.waiting[key] = f"waits for its {kind} time {at.isoformat()}"
                if decision.wake_at is None or at < decision.wake_at:
                    decision.wake_at = at
                continue
        if spec.is_mapped and map_index < 0:
            decision.expand.append(task_id)
            decision.waiting[key] = EXPANDING_WAIT
            continue
        decision.ready.append(key)

    _decide_run_state(tasks, states, decision)
    return decision


WAITING_FOR_UPSTREAM = "waits for its upstream tasks: none has finished yet"
SCHEDULED_WAIT = "waits for a free slot (scheduled)"
EXPANDING_WAIT = "is about to be expanded"


def waiting_check(reason: str) -> str:
    """The check a ``Decision.waiting`` reason belongs to, named as the UI and API name it:
    ``dependencies`` (trigger rules), ``depends_on_past``, ``retry delay``, ``reschedule``,
    ``slot`` (scheduled: dispatch knows which limit) or ``expanding``."""
    if reason.startswith(("depends_on_past", "wait_for_downstream")):
        return "depends_on_past"
    if reason.startswith("waits for its retry time"):
        return "retry delay"
    if reason.startswith("waits for its reschedule time"):
        return "reschedule"
    if reason == SCHEDULED_WAIT:
        return "slot"
    if reason == EXPANDING_WAIT:
        return "expanding"
    return "dependencies"


_UNDECIDED = SCHEDULABLE_STATES - {TI.SCHEDULED}


def _decide_run_state(tasks: Mapping[str, TaskSpec], states: Mapping[tuple[str, int], TI],
                      decision: Decision) -> None:
    if any(s in RUN_GOES_ON_STATES for s in states.values()):
        return  # something is on its way, running or deferred: the run goes on
    unfinished = [k for k, s in states.items() if s not in FINISHED]
    if unfinished:
        if not decision.ready and not decision.expand and \
                decision.wake_at is None and not decision.blocked_by_past:
            decision.run_state = DagRunState.FAILED
            stuck = ", ".join(f"{t}[{i}]" if i >= 0 else t for t, i in sorted(unfinished)[:10])
            decision.run_reason = f"deadlock: no task can run any more ({stuck})"
        return
    leaves = effective_leaves(tasks)
    leaf_states = [s for (tid, _i), s in states.items() if tid in leaves and s != TI.REMOVED]
    if any(s in FAILED_STATES for s in leaf_states):
        decision.run_state = DagRunState.FAILED
        failed = sorted({tid for (tid, _i), s in states.items()
                         if tid in leaves and s in FAILED_STATES})
        decision.run_reason = f"leaf task(s) failed: {', '.join(failed)}"
    else:
        decision.run_state = DagRunState.SUCCESS
        decision.run_reason = "all leaf tasks succeeded or were skipped"


def specs_from_dag(dag) -> dict[str, TaskSpec]:
    """TaskSpecs of a DAG object (the scheduler builds them from the serialized form)."""
    return {t.task_id: spec_from_task(t) for t in dag.tasks}


def spec_from_task(task) -> TaskSpec:
    return TaskSpec(
        task_id=task.task_id,
        upstream=frozenset(task.upstream_task_ids),
        downstream=frozenset(task.downstream_task_ids),
        trigger_rule=str(task.trigger_rule),
        is_mapped=bool(getattr(task, "is_mapped", False)),
        is_setup=bool(task.is_setup),
        is_teardown=bool(task.is_teardown),
        on_failure_fail_dagrun=bool(getattr(task, "on_failure_fail_dagrun", False)),
        depends_on_past=bool(task.depends_on_past),
        wait_for_downstream=bool(task.wait_for_downstream),
        ignore_first_depends_on_past=bool(getattr(task, "ignore_first_depends_on_past", True)),
        start_date=task.start_date,
    )


