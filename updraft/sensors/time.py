"""Time sensors: wait for a moment relative to the run, a given datetime, or a time of day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from updraft.sensors.base import BaseSensorOperator


def _defer_until(sensor: BaseSensorOperator, moment: datetime, end_from_trigger: bool | None,
                 context: dict):
    """Defer ``sensor`` until ``moment`` (ADR 11); a moment already past needs no wait."""
    from updraft.exceptions import UpdraftSkipException
    from updraft.triggers.temporal import DateTimeTrigger

    if sensor._now() >= moment:
        sensor.log.info("The time (%s) has come already", moment)
        return None
    try:
        trigger = DateTimeTrigger(moment=moment,
                                  end_from_trigger=ends_in_trigger(sensor, end_from_trigger, context))
    except (TypeError, ValueError) as exc:
        if sensor.soft_fail:
            raise UpdraftSkipException("Skipping due to soft_fail is set to True.") from exc
        raise
    sensor.log.info("Deferring until %s", moment)
    sensor.defer(trigger=trigger, method_name="execute_complete")


def ends_in_trigger(sensor: BaseSensorOperator, requested: bool | None, context: dict) -> bool:
    """Whether the sensor ends in the triggerer, with no resumed try (ADR 13).

    ``end_from_trigger=True`` or ``False`` is obeyed. Left unset (``None``), it is True when
    resuming would run nothing but the time sensor's own no-op ``execute_complete``: not
    overridden, no ``post_execute``, no success callback, no outlets to record and no
    listener of finished tries. The outcome is the same (success, no XCom), 1,000 sensors end
    within a second of their moment instead of queueing 1,000 tries, and nothing waits on a
    worker slot to say "the time has come".
    """
    from updraft.operators.base import BaseOperator
    from updraft.task_services import task_services

    if requested is not None:
        return bool(requested)
    cls = type(sensor)
    return (getattr(cls.execute_complete, "__code__", None) in _NO_OP_COMPLETIONS
            and cls.post_execute is BaseOperator.post_execute
            and not sensor.on_success_callback and not sensor.outlets
            and not task_services(context).has_listener("on_task_instance_success"))


class TimeDeltaSensor(BaseSensorOperator):
    """Waits until ``delta`` after the end of the run's data interval; with
    ``deferrable=True`` it waits in a triggerer, holding no worker slot."""

    def __init__(self, *, delta: timedelta, deferrable: bool = False,
                 end_from_trigger: bool | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delta = delta
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    def _target(self, context: dict) -> datetime:
        base = context.get("data_interval_end") or context.get("logical_date") or \
            self._now()
        return base + self.delta

    def execute(self, context: dict):
        if self.deferrable:
            return _defer_until(self, self._target(context), self.end_from_trigger, context)
        return super().execute(context)

    def execute_complete(self, context: dict, event=None) -> None:
        """The trigger fired: the time has come."""
        self.log.info("%s has passed", event)
        return None

    def poke(self, context: dict) -> bool:
        target = self._target(context)
        self.log.info("Checking if the time (%s) has come", target)
        return self._now() > target


class TimeDeltaSensorAsync(TimeDeltaSensor):
    """``TimeDeltaSensor(deferrable=True)``, Airflow's async class."""

    def __init__(self, *, delta: timedelta, end_from_trigger: bool | None = None, **kwargs) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(delta=delta, deferrable=True, end_from_trigger=end_from_trigger,
                         **kwargs)


class DateTimeSensor(BaseSensorOperator):
    """Waits until ``target_time`` (a datetime or a templated ISO string; naive means the
    default timezone)."""

    template_fields: Sequence[str] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, deferrable: bool = False,
                 end_from_trigger: bool | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger
        # A templated field: kept as a string so it can be rendered.
        if isinstance(target_time, datetime):
            self.target_time = target_time.isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise TypeError(f"Expected str or datetime.datetime type for target_time. Got "
                            f"{type(target_time)}")

    def _target(self) -> datetime:
        from updraft.config import conf
        from updraft.schedules import coerce_datetime

        return coerce_datetime(self.target_time, conf.get("core", "default_timezone"))

    def execute(self, context: dict):
        if self.deferrable:
            return _defer_until(self, self._target(), self.end_from_trigger, context)
        return super().execute(context)

    def execute_complete(self, context: dict, event=None) -> None:
        """The trigger fired: the time has come."""
        return None

    def poke(self, context: dict) -> bool:
        self.log.info("Checking if the time (%s) has come", self.target_time)
        return self._now() > self._target()


class DateTimeSensorAsync(DateTimeSensor):
    """``DateTimeSensor(deferrable=True)``, Airflow's async class."""

    def __init__(self, *, target_time: str | datetime, end_from_trigger: bool | None = None,
                 **kwargs) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(target_time=target_time, deferrable=True,
                         end_from_trigger=end_from_trigger, **kwargs)


class TimeSensor(BaseSensorOperator):
    """Waits until the time of day is past ``target_time``, in the DAG's timezone."""

    def __init__(self, *, target_time: time, deferrable: bool = False,
                 end_from_trigger: bool | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_time = target_time
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    def execute(self, context: dict):
        if self.deferrable:
            local = self._now().astimezone(self.dag.timezone)
            moment = datetime.combine(local.date(), self.target_time, tzinfo=local.tzinfo)
            return _defer_until(self, moment, self.end_from_trigger, context)
        return super().execute(context)

    def execute_complete(self, context: dict, event=None) -> None:
        """The trigger fired: the time has come."""
        return None

    def poke(self, context: dict) -> bool:
        self.log.info("Checking if the time (%s) has come", self.target_time)
        local_now = self._now().astimezone(self.dag.timezone).replace(tzinfo=None)
        return local_now.time() > self.target_time


class TimeSensorAsync(TimeSensor):
    """``TimeSensor(deferrable=True)``, Airflow's async class."""

    def __init__(self, *, target_time: time, end_from_trigger: bool | None = None, **kwargs) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(target_time=target_time, deferrable=True,
                         end_from_trigger=end_from_trigger, **kwargs)


_NO_OP_COMPLETIONS = frozenset(cls.execute_complete.__code__ for cls in (
    TimeDeltaSensor, DateTimeSensor, TimeSensor))

__all__ = ["DateTimeSensor", "DateTimeSensorAsync", "TimeDeltaSensor", "TimeDeltaSensorAsync",
           "TimeSensor", "TimeSensorAsync"]
