"""Time sensors: wait for a moment relative to the run, a given datetime, or a time of day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time, timedelta

from updraft.sensors.base import BaseSensorOperator


class TimeDeltaSensor(BaseSensorOperator):
    """Waits until ``delta`` after the end of the run's data interval."""

    def __init__(self, *, delta: timedelta, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delta = delta

    def poke(self, context: dict) -> bool:
        target = context["data_interval_end"] + self.delta
        self.log.info("Checking if the time (%s) has come", target)
        return self._now() > target


class DateTimeSensor(BaseSensorOperator):
    """Waits until ``target_time`` (a datetime or a templated ISO string; naive means the
    default timezone)."""

    template_fields: Sequence[str] = ("target_time",)

    def __init__(self, *, target_time: str | datetime, **kwargs) -> None:
        super().__init__(**kwargs)
        # A templated field: kept as a string so it can be rendered.
        if isinstance(target_time, datetime):
            self.target_time = target_time.isoformat()
        elif isinstance(target_time, str):
            self.target_time = target_time
        else:
            raise TypeError(f"Expected str or datetime.datetime type for target_time. Got "
                            f"{type(target_time)}")

    def poke(self, context: dict) -> bool:
        from updraft.config import conf
        from updraft.schedules import coerce_datetime

        self.log.info("Checking if the time (%s) has come", self.target_time)
        target = coerce_datetime(self.target_time, conf.get("core", "default_timezone"))
        return self._now() > target


class TimeSensor(BaseSensorOperator):
    """Waits until the time of day is past ``target_time``, in the DAG's timezone."""

    def __init__(self, *, target_time: time, **kwargs) -> None:
        super().__init__(**kwargs)
        self.target_time = target_time

    def poke(self, context: dict) -> bool:
        self.log.info("Checking if the time (%s) has come", self.target_time)
        local_now = self._now().astimezone(self.dag.timezone).replace(tzinfo=None)
        return local_now.time() > self.target_time


__all__ = ["DateTimeSensor", "TimeDeltaSensor", "TimeSensor"]
