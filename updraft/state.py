"""Task instance and DAG run states, the sets of them the code uses, the transitions allowed
between them, and trigger rules.

Every write of a task instance's state goes through ``updraft.store.ti_state``, which checks
the move here with :func:`check_transition`: an impossible change (say ``success ->
queued`` without a clear) raises in validate mode (``[core] validate_state_transitions``, on
in the tests) and is logged otherwise.
"""

from __future__ import annotations

from enum import Enum


class TaskInstanceState(str, Enum):
    """The life cycle of one task instance (one task in one run, one map index)."""

    NONE = "none"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    #: The try gave up its slot and waits for a trigger (``BaseOperator.defer``); a
    #: triggerer moves it back to ``scheduled`` when the trigger fires (ADR 11).
    DEFERRED = "deferred"
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

# -- the sets of states every module uses (a state compares and hashes as its value, so a
# -- plain string read from the store is found in them too) ----------------------------------

#: Finished: nothing more happens to the task instance without a clear.
FINISHED_STATES = frozenset({TI.SUCCESS, TI.FAILED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.REMOVED})
#: Not finished: the task instance may still run (or is running).
UNFINISHED_STATES = frozenset(TI) - FINISHED_STATES
#: The scheduler may queue a try of the task instance once its dependencies are met.
SCHEDULABLE_STATES = frozenset({TI.NONE, TI.SCHEDULED, TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE})
#: A try is handed to an executor or running: it holds a slot of its pool and its DAG's limits.
ACTIVE_STATES = frozenset({TI.QUEUED, TI.RUNNING})
#: On its way to a worker or running: the run is not over and the try's process may appear.
IN_FLIGHT_STATES = frozenset({TI.SCHEDULED, TI.QUEUED, TI.RUNNING})
#: On its way to a worker and not claimed yet (a NATS delivery of it may still run).
UNCLAIMED_STATES = frozenset({TI.SCHEDULED, TI.QUEUED})
#: The run goes on while one of its task instances is in one of these: a try is on its way,
#: running, or deferred (it resumes when its trigger fires).
RUN_GOES_ON_STATES = IN_FLIGHT_STATES | {TI.DEFERRED}
#: Finished states that count as a failure (a leaf in one fails its run).
FAILED_STATES = frozenset({TI.FAILED, TI.UPSTREAM_FAILED})
#: Finished states that count as a success for depends_on_past and wait_for_downstream.
SUCCESS_LIKE_STATES = frozenset({TI.SUCCESS, TI.SKIPPED})
#: A try's outcome that ended it badly (an alert, a failure callback).
FAILED_TRY_STATES = frozenset({TI.FAILED, TI.UP_FOR_RETRY})
#: A run that is over.
FINISHED_RUN_STATES = frozenset({DagRunState.SUCCESS, DagRunState.FAILED})


def state_values(states) -> list[str]:
    """The string values of ``states``, sorted, for a SQL ``IN`` (a driver is given plain
    strings, never enum members)."""
    return sorted(str(s) for s in states)


# -- the transition table ----------------------------------------------------------------------

#: Marking by hand (the UI, the API, the CLI): success, failed or skipped from any state.
MARKED_STATES = frozenset({TI.SUCCESS, TI.FAILED, TI.SKIPPED})

#: For each state, the states a task instance may move to, and who moves it there (the
#: reasons are tested in tests/unit/test_state.py). Two moves are allowed from every state:
#: a clear (back to ``none``) and a mark by hand (success, failed, skipped). ``removed`` is
#: reached from the states whose task may leave the DAG without a try under way.
TASK_TRANSITIONS: dict[TI, frozenset[TI]] = {
    # The run logic: upstreams decide (skipped, upstream_failed), the task left the DAG
    # (removed), an empty mapping skips it; the scheduler finds it ready (scheduled), or
    # dag.test and ``tasks test`` queue it at once.
    TI.NONE: frozenset({TI.SCHEDULED, TI.QUEUED, TI.SKIPPED, TI.UPSTREAM_FAILED,
                        TI.REMOVED}),
    # Queued by dispatch; decided by upstreams cleared meanwhile; the task left the DAG; a
    # NATS try delivered max_deliver times and never finished fails as lost (up_for_retry)
    # even after the scheduler put it back here.
    TI.SCHEDULED: frozenset({TI.QUEUED, TI.SKIPPED, TI.UPSTREAM_FAILED, TI.REMOVED,
                             TI.UP_FOR_RETRY}),
    # Claimed by its worker (running); never reached one (scheduled again, counting
    # nothing: ADR 2); lost after max_deliver NATS deliveries (up_for_retry); a
    # dagrun_timeout (skipped).
    TI.QUEUED: frozenset({TI.RUNNING, TI.SCHEDULED, TI.UP_FOR_RETRY, TI.SKIPPED}),
    # The try's outcome (runtime.record_try), an interruption or a lost try (up_for_retry),
    # a dagrun_timeout (skipped).
    TI.RUNNING: frozenset({TI.SUCCESS, TI.FAILED, TI.UP_FOR_RETRY, TI.UP_FOR_RESCHEDULE,
                           TI.SKIPPED, TI.DEFERRED}),
    # The try deferred itself (runtime.record_try); its trigger fired, failed or timed out
    # (scheduled: the scheduler queues the same try again, resuming in next_method); a
    # dagrun_timeout (skipped); the task left the DAG.
    TI.DEFERRED: frozenset({TI.SCHEDULED, TI.SKIPPED, TI.REMOVED}),
    # Ready again when its time comes (scheduled, or queued at once by dag.test); decided
    # by upstreams cleared meanwhile; the task left the DAG.
    TI.UP_FOR_RETRY: frozenset({TI.SCHEDULED, TI.QUEUED, TI.SKIPPED, TI.UPSTREAM_FAILED,
                                TI.REMOVED}),
    TI.UP_FOR_RESCHEDULE: frozenset({TI.SCHEDULED, TI.QUEUED, TI.SKIPPED,
                                     TI.UPSTREAM_FAILED, TI.REMOVED}),
    # Finished: only a clear or a mark moves it (added below).
    TI.SUCCESS: frozenset(),
    TI.FAILED: frozenset(),
    TI.SKIPPED: frozenset(),
    TI.UPSTREAM_FAILED: frozenset(),
    TI.REMOVED: frozenset(),
}
for _state in TI:
    TASK_TRANSITIONS[_state] = (TASK_TRANSITIONS[_state] | {TI.NONE} | MARKED_STATES) - {_state}
del _state


class InvalidStateTransition(ValueError):
    """A state change that the transition table does not allow."""


def validating() -> bool:
    """Whether a transition the table forbids raises (``[core] validate_state_transitions``,
    on in the tests) instead of being logged and written anyway."""
    from updraft.config import conf

    return conf.getboolean("core", "validate_state_transitions")


def is_allowed(old: TI | str | None, new: TI | str) -> bool:
    """Whether the table lets a task instance move from ``old`` to ``new`` (staying is)."""
    old_state = TI(old or TI.NONE)
    new_state = TI(new)
    return old_state == new_state or new_state in TASK_TRANSITIONS[old_state]


def check_transition(old: TI | str | None, new: TI | str, *, where: str = "") -> TI:
    """Return ``new`` as a state. A move the table forbids is logged (once per move and
    place) and raises InvalidStateTransition in validate mode; otherwise it is allowed: in
    production the table, not a node, gives way when the two disagree."""
    new_state = TI(new)
    if is_allowed(old, new_state):
        return new_state
    message = f"task instance cannot go from {TI(old or TI.NONE)} to {new_state}"
    if where:
        message += f" ({where})"
    strict = validating()
    if strict or message not in _LOGGED:
        _LOGGED.add(message)
        import logging

        logging.getLogger(__name__).error(
            "%s: the state transition table forbids this move%s", message,
            "" if strict else "; written anyway")
    if strict:
        raise InvalidStateTransition(message)
    return new_state


_LOGGED: set[str] = set()


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
