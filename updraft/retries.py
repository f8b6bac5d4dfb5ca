"""The retry policy: whether a failed try gets another one, and when.

One rule for every place that fails a try: the task runner (the task raised), the
supervisor (the try's process died or was stopped), the scheduler (a zombie, a lost worker)
and the NATS worker (a message delivered too often). A try may be retried while the task
has retries and its try number has not passed ``max_tries`` (which clearing raises); the
next try waits ``retry_delay``, or Airflow's exponential backoff with its deterministic
jitter, capped by ``max_retry_delay`` and by a day.

A ``RetryPolicy`` is a small, picklable summary of a task's retry settings, so a node that
has not parsed the DAG (a supervisor) can still apply the rule.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from updraft.state import TaskInstanceState as TI

MAX_RETRY_DELAY_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class RetryPolicy:
    """A task's retry settings."""

    retries: int = 0
    retry_delay: float = 300.0  # seconds
    exponential_backoff: bool = False
    max_retry_delay: float | None = None  # seconds

    @classmethod
    def of(cls, task: Any) -> RetryPolicy:
        """The policy of an operator (or of None: the configured defaults, no retries)."""
        if task is None:
            return cls.default()
        delay = task.retry_delay
        maximum = getattr(task, "max_retry_delay", None)
        return cls(retries=int(task.retries or 0),
                   retry_delay=delay.total_seconds() if isinstance(delay, timedelta)
                   else float(delay),
                   exponential_backoff=bool(getattr(task, "retry_exponential_backoff", False)),
                   max_retry_delay=maximum.total_seconds() if isinstance(maximum, timedelta)
                   else maximum)

    @classmethod
    def default(cls) -> RetryPolicy:
        """For a try whose task is unknown: the task instance's ``max_tries`` decides alone."""
        from updraft.config import conf

        return cls(retries=1, retry_delay=conf.getfloat("core", "default_retry_delay"))


def failure_state(policy: RetryPolicy | None, try_number: int, max_tries: int | None) -> TI:
    """``up_for_retry`` if the failed try ``try_number`` may be retried, else ``failed``."""
    retries = policy.retries if policy is not None else 0
    if retries and try_number <= (max_tries or 0):
        return TI.UP_FOR_RETRY
    return TI.FAILED


def next_retry_at(policy: RetryPolicy, *, dag_id: str, task_id: str, logical_date: Any,
                  try_number: int, failed_at: datetime) -> datetime:
    """When the try after ``try_number`` may start."""
    delay = timedelta(seconds=policy.retry_delay)
    if policy.exponential_backoff:
        min_backoff = max(1, math.ceil(policy.retry_delay * (2 ** (try_number - 1))))
        digest = hashlib.sha1(f"{dag_id}#{task_id}#{logical_date}#{try_number}"
                              .encode()).hexdigest()
        modded = min_backoff + int(digest, 16) % min_backoff
        delay = timedelta(seconds=min(modded, MAX_RETRY_DELAY_SECONDS))
        if policy.max_retry_delay is not None:
            delay = min(timedelta(seconds=policy.max_retry_delay), delay)
    return failed_at + delay


def decide_failure(policy: RetryPolicy | None, *, dag_id: str, task_id: str, logical_date: Any,
                   try_number: int, max_tries: int | None,
                   failed_at: datetime) -> tuple[TI, datetime | None]:
    """The state a failed try leaves its task instance in, and when it may run again."""
    state = failure_state(policy, try_number, max_tries)
    if state != TI.UP_FOR_RETRY or policy is None:
        return state, None
    return state, next_retry_at(policy, dag_id=dag_id, task_id=task_id,
                                logical_date=logical_date, try_number=try_number,
                                failed_at=failed_at)


__all__ = ["MAX_RETRY_DELAY_SECONDS", "RetryPolicy", "decide_failure", "failure_state",
           "next_retry_at"]
