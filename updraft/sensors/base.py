"""BaseSensorOperator: a task that waits for something, by poking until it is true.

In ``poke`` mode the sensor holds its worker slot and sleeps between pokes; in
``reschedule`` mode a false poke ends the try with ``UpdraftRescheduleException`` and the
runner records a ``task_reschedule`` row and wakes the task at the next poke time, keeping
the same try number. The timeout counts from when sensing began: in reschedule mode that is
the start of the first ``task_reschedule`` row of the first try, which the try's task
services give (``context["task_services"]``, ``updraft.task_services``).

Time is read in one place (``_now``) and waiting happens in one place (``_sleep``), so tests
replace both with a fake clock instead of sleeping.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from updraft.exceptions import (
    UpdraftException,
    UpdraftFailException,
    UpdraftRescheduleException,
    UpdraftSensorTimeout,
    UpdraftSkipException,
    UpdraftTaskTimeout,
)
from updraft.operators.base import BaseOperator
from updraft.task_services import task_services

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 60 * 60 * 24 * 7
# Larger intervals would overflow timedelta arithmetic (Airflow uses the same bound).
_MAX_INTERVAL_SECONDS = timedelta.max.total_seconds() - 1


@dataclass
class PokeReturnValue:
    """What ``poke`` may return instead of a bool: done or not, and the XCom to push."""

    is_done: bool
    xcom_value: Any = None

    def __bool__(self) -> bool:
        return bool(self.is_done)


def _non_negative_seconds(value: Any, name: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    raise UpdraftException(f"Operator arg `{name}` must be timedelta object or a non-negative "
                           "number")


class BaseSensorOperator(BaseOperator):
    """Pokes ``poke(context)`` until it returns true, or the timeout passes."""

    ui_color = "#e6f1f2"
    valid_modes: Iterable[str] = ["poke", "reschedule"]
    is_sensor = True

    def __init__(self, *, poke_interval: timedelta | float = 60,
                 timeout: timedelta | float = DEFAULT_TIMEOUT_SECONDS, soft_fail: bool = False,
                 mode: str = "poke", exponential_backoff: bool = False,
                 max_wait: timedelta | float | None = None, silent_fail: bool = False,
                 never_fail: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.poke_interval = _non_negative_seconds(poke_interval, "poke_interval").total_seconds()
        self.timeout = _non_negative_seconds(timeout, "timeout").total_seconds()
        self.soft_fail = soft_fail
        self.mode = mode
        self.exponential_backoff = exponential_backoff
        self.max_wait = (None if max_wait is None
                         else _non_negative_seconds(max_wait, "max_wait"))
        if soft_fail and never_fail:
            raise ValueError("soft_fail and never_fail are mutually exclusive, you can not "
                             "provide both.")
        self.silent_fail = silent_fail
        self.never_fail = never_fail
        self._validate_input_values()

    def _validate_input_values(self) -> None:
        if not isinstance(self.poke_interval, (int, float)) or self.poke_interval < 0:
            raise UpdraftException("The poke_interval must be a non-negative number")
        if not isinstance(self.timeout, (int, float)) or self.timeout < 0:
            raise UpdraftException("The timeout must be a non-negative number")
        if self.mode not in self.valid_modes:
            dag_id = self._dag.dag_id if self._dag is not None else ""
            # Airflow's message, including the space before the task id.
            raise UpdraftException(f"The mode must be one of {list(self.valid_modes)},"
                                   f"'{dag_id} .{self.task_id}'; received '{self.mode}'.")

    @property
    def reschedule(self) -> bool:
        """Whether a false poke ends the try and asks to be run again later."""
        return self.mode == "reschedule"

    # -- what subclasses write -------------------------------------------------------------

    def poke(self, context: dict) -> bool | PokeReturnValue:
        """Check the condition once; true (or a done PokeReturnValue) ends the waiting."""
        raise UpdraftException("Override me.")

    # -- the clock (replaced in tests) -----------------------------------------------------

    def _now(self) -> datetime:
        """The current time, aware UTC; the only place a sensor reads the clock."""
        return datetime.now(UTC)

    def _sleep(self, seconds: float) -> None:
        """Wait between pokes in poke mode; the only place a sensor waits."""
        time.sleep(seconds)

    # -- the loop ----------------------------------------------------------------------------

    def execute(self, context: dict) -> Any:
        started_at = self._sensing_started_at(context) if self.reschedule else self._now()
        poke_count = 1
        while True:
            poke_return = self._poke_once(context)
            if poke_return:
                xcom_value = (poke_return.xcom_value
                              if isinstance(poke_return, PokeReturnValue) else None)
                self.log.info("Success criteria met. Exiting.")
                return xcom_value
            now = self._now()
            duration = (now - started_at).total_seconds()
            if duration > self.timeout:
                message = (f"Sensor has timed out; run duration of {duration} seconds exceeds "
                           f"the specified timeout of {self.timeout}.")
                if self.soft_fail:
                    raise UpdraftSkipException(message)
                raise UpdraftSensorTimeout(message)
            interval = self._get_next_poke_interval(started_at, duration, poke_count)
            if self.reschedule:
                raise UpdraftRescheduleException(now + timedelta(seconds=interval))
            self._sleep(interval)
            poke_count += 1

    def resume_execution(self, next_method: str, next_kwargs: dict | None, context: dict):
        """A deferred sensor resuming (ADR 11): a deferral that timed out is the sensor's
        timeout; with soft_fail a failed or timed-out wait skips the task (Airflow)."""
        from updraft.exceptions import TaskDeferralError, TaskDeferralTimeout

        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout as exc:
            if self.soft_fail:
                raise UpdraftSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise UpdraftSensorTimeout(f"Sensor has timed out while deferred: {exc}") from exc
        except (UpdraftException, TaskDeferralError) as exc:
            if isinstance(exc, UpdraftSkipException) or not self.soft_fail:
                raise
            raise UpdraftSkipException(f"Skipping due to soft_fail: {exc}") from exc

    def _poke_once(self, context: dict) -> bool | PokeReturnValue:
        """One poke, with soft_fail, silent_fail and never_fail applied to its errors."""
        try:
            return self.poke(context)
        except (UpdraftSensorTimeout, UpdraftTaskTimeout, UpdraftFailException) as exc:
            if self.soft_fail:
                raise UpdraftSkipException("Skipping due to soft_fail is set to True.") from exc
            if self.never_fail:
                raise UpdraftSkipException("Skipping due to never_fail is set to True.") from exc
            raise
        except UpdraftSkipException:
            raise
        except Exception as exc:
            if self.silent_fail:
                self.log.error("Sensor poke failed: \n %s", traceback.format_exc())
                return False
            if self.never_fail:
                raise UpdraftSkipException("Skipping due to never_fail is set to True.") from exc
            raise

    def _sensing_started_at(self, context: dict) -> datetime:
        """When a reschedule-mode sensor began: its first task_reschedule row, else now."""
        ti = context["ti"]
        # The first try since the task was created or cleared, as Airflow counts it, so that
        # retries do not reset the timeout.
        first_try = (ti.max_tries or 0) - (self.retries or 0) + 1
        if first_try < 1 or first_try > ti.try_number:
            first_try = ti.try_number
        start = task_services(context).first_reschedule_at(ti.dag_id, ti.run_id, ti.task_id,
                                                           ti.map_index, first_try)
        return start or self._now()

    def _get_next_poke_interval(self, started_at: datetime, run_duration: float,
                                poke_count: int) -> float:
        """Seconds to the next poke: poke_interval, or Airflow's exponential backoff."""
        if not self.exponential_backoff:
            return self.poke_interval
        if self.reschedule:
            # A rescheduled try does not know how many pokes came before: count how many
            # backoff intervals fit in the time elapsed since sensing began.
            cumulative = 0.0
            estimated = 0
            while cumulative <= run_duration:
                estimated += 1
                cumulative += self._backoff_with_jitter(started_at, estimated)
            poke_count = estimated or poke_count
        interval = min(self.timeout - int(run_duration),
                       self._backoff_with_jitter(started_at, poke_count))
        if self.max_wait:
            interval = min(self.max_wait.total_seconds(), interval)
        self.log.info("new %s interval is %s", self.mode, interval)
        return interval

    def _backoff_with_jitter(self, started_at: datetime, poke_count: int) -> float:
        min_backoff = max(int(self.poke_interval * (2 ** (poke_count - 2))), 1)
        digest = hashlib.sha1(f"{self.dag_id}#{self.task_id}#{started_at}#{poke_count}"
                              .encode()).hexdigest()
        return min(min_backoff + int(digest, 16) % min_backoff, _MAX_INTERVAL_SECONDS)


def poke_mode_only(cls: type) -> type:
    """Class decorator: the sensor may only run in poke mode (Airflow's ``poke_mode_only``)."""

    def mode_getter(self):
        return self._mode

    def mode_setter(self, value):
        if value != "poke":
            raise ValueError(f"Cannot set mode to '{value}'. Only 'poke' is acceptable")
        self._mode = value

    if not issubclass(cls, BaseSensorOperator):
        raise ValueError(  # noqa: TRY004  (Airflow raises ValueError here)
            f"poke_mode_only decorator should only be applied to subclasses of "
            f"BaseSensorOperator, got:{cls}.")
    cls.mode = property(mode_getter, mode_setter)  # type: ignore[attr-defined]
    return cls


__all__ = ["BaseSensorOperator", "PokeReturnValue", "poke_mode_only"]
