"""Task instance and DAG run states, the transitions allowed between them, and trigger rules.

Every state change in Updraft goes through :func:`check_transition`, so an impossible change
(say ``success -> queued`` without a clear) raises instead of silently corrupting a run.
"""

from __future__ import annotations

from enum import Enum


class TaskInstanceState(str, Enum):
    """The life cycle of one task instance (one task in one run, one map index)."""

    NONE = "none"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    REMOVED = "removed"

    def __str__(self) -> str:
        return self.value


class DagRunState(str, Enum):
    """The life cycle of one DAG run."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value


class DagRunType(str, Enum):
    """How a DAG run came to be; part of its run id."""

    SCHEDULED = "scheduled"
    MANUAL = "manual"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"

    def __str__(self) -> str:
        return self.value

    def generate_run_id(self, logical_date) -> str:
        """Return the run id Airflow would give a run of this type at ``logical_date``."""
        return f"{self.value}__{logical_date.isoformat()}"


TI = TaskInstanceState

#: States after which a try is over and nothing more happens without a clear.
FINISHED_STATES = frozenset({TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.REMOVED})
#: States a task instance is in while a try of it is under way.
ACTIVE_STATES = frozenset({TI.QUEUED, TI.RUNNING})
#: States whose task instance may still become runnable.
UNFINISHED_STATES = frozenset(
    {TI.NONE, TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE}
)
#: Finished states that count as failure when deciding a run's state.
FAILED_STATES = frozenset({TI.FAILED, TI.UPSTREAM_FAILED})

_ALL = frozenset(TI)

#: For each state, the states it may move to. Clearing (back to NONE) is allowed from any
#: state, as is marking SUCCESS/FAILED/SKIPPED by hand; both are listed here explicitly.
TASK_TRANSITIONS: dict[TI, frozenset[TI]] = {
    TI.NONE: frozenset({TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.SKIPPED, TI.UPSTREAM_FAILED,
                        TI.REMOVED, TI.SUCCESS, TI.FAILED}),
    TI.SCHEDULED: frozenset({TI.QUEUED, TI.RUNNING, TI.NONE, TI.SKIPPED, TI.UPSTREAM_FAILED,
                             TI.REMOVED, TI.SUCCESS, TI.FAILED}),
    TI.QUEUED: frozenset({TI.RUNNING, TI.SCHEDULED, TI.NONE, TI.SUCCESS, TI.FAILED,
                          TI.UP_FOR_RETRY, TI.SKIPPED, TI.REMOVED}),
    TI.RUNNING: frozenset({TI.SUCCESS, TI.FAILED, TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE,
                           TI.SKIPPED, TI.NONE, TI.REMOVED}),
    TI.UP_FOR_RETRY: frozenset({TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.NONE, TI.FAILED,
                                TI.SUCCESS, TI.SKIPPED, TI.REMOVED}),
    TI.UP_FOR_RESCHEDULE: frozenset({TI.SCHEDULED, TI.QUEUED, TI.RUNNING, TI.NONE, TI.FAILED,
                                     TI.SUCCESS, TI.SKIPPED, TI.REMOVED}),
    TI.SUCCESS: frozenset({TI.NONE, TI.FAILED, TI.SKIPPED, TI.REMOVED}),
    TI.FAILED: frozenset({TI.NONE, TI.SUCCESS, TI.SKIPPED, TI.REMOVED}),
    TI.SKIPPED: frozenset({TI.NONE, TI.SUCCESS, TI.FAILED, TI.REMOVED}),
    TI.UPSTREAM_FAILED: frozenset({TI.NONE, TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.REMOVED}),
    TI.REMOVED: frozenset({TI.NONE}),
}

RUN_TRANSITIONS: dict[DagRunState, frozenset[DagRunState]] = {
    DagRunState.QUEUED: frozenset({DagRunState.RUNNING, DagRunState.SUCCESS, DagRunState.FAILED}),
    DagRunState.RUNNING: frozenset({DagRunState.SUCCESS, DagRunState.FAILED, DagRunState.QUEUED}),
    DagRunState.SUCCESS: frozenset({DagRunState.QUEUED, DagRunState.RUNNING, DagRunState.FAILED}),
    DagRunState.FAILED: frozenset({DagRunState.QUEUED, DagRunState.RUNNING, DagRunState.SUCCESS}),
}


class InvalidStateTransition(ValueError):
    """A state change that the transition table does not allow."""


def check_transition(old: TI | str | None, new: TI | str) -> TI:
    """Return ``new`` as a state if a task instance may move there from ``old``; else raise."""
    old_state = TI(old or TI.NONE)
    new_state = TI(new)
    if old_state == new_state:
        return new_state
    if new_state not in TASK_TRANSITIONS[old_state]:
        raise InvalidStateTransition(f"task instance cannot go from {old_state} to {new_state}")
    return new_state


def check_run_transition(old: DagRunState | str, new: DagRunState | str) -> DagRunState:
    """Return ``new`` as a run state if a run may move there from ``old``; else raise."""
    old_state, new_state = DagRunState(old), DagRunState(new)
    if old_state != new_state and new_state not in RUN_TRANSITIONS[old_state]:
        raise InvalidStateTransition(f"dag run cannot go from {old_state} to {new_state}")
    return new_state


class TriggerRule(str, Enum):
    """When a task may run, given the states of its direct upstream tasks."""

    ALL_SUCCESS = "all_success"
    ALL_FAILED = "all_failed"
    ALL_DONE = "all_done"
    ALL_DONE_SETUP_SUCCESS = "all_done_setup_success"
    ONE_SUCCESS = "one_success"
    ONE_FAILED = "one_failed"
    ONE_DONE = "one_done"
    NONE_FAILED = "none_failed"
    NONE_FAILED_MIN_ONE_SUCCESS = "none_failed_min_one_success"
    NONE_SKIPPED = "none_skipped"
    ALL_SKIPPED = "all_skipped"
    ALWAYS = "always"
    # Airflow 1 name, still found in DAG files.
    NONE_FAILED_OR_SKIPPED = "none_failed_or_skipped"
    DUMMY = "dummy"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def is_valid(cls, value: str) -> bool:
        """Return whether ``value`` names a trigger rule."""
        return value in cls._value2member_map_

    @classmethod
    def all_triggers(cls) -> set[str]:
        """Return the names of every trigger rule."""
        return set(cls._value2member_map_)
