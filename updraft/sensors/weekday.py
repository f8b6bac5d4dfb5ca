"""DayOfWeekSensor: waits until today (or the run's logical date) is one of some weekdays."""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from updraft.exceptions import RemovedInUpdraftWarning
from updraft.sensors.base import BaseSensorOperator
from updraft.utils.weekday import WeekDay


class DayOfWeekSensor(BaseSensorOperator):
    """Waits until the day of the week (UTC now, or the logical date) is in ``week_day``."""

    def __init__(self, *, week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay],
                 use_task_logical_date: bool = False,
                 use_task_execution_day: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        if use_task_execution_day:
            self.use_task_logical_date = use_task_execution_day
            warnings.warn("Parameter ``use_task_execution_day`` is deprecated. Use "
                          "``use_task_logical_date``.", RemovedInUpdraftWarning, stacklevel=2)
        self._week_day_num = WeekDay.validate_week_day(week_day)

    def poke(self, context: dict) -> bool:
        now = self._now()
        self.log.info("Poking until weekday is in %s, Today is %s", self.week_day,
                      WeekDay(now.isoweekday()).name)
        if self.use_task_logical_date:
            return context["logical_date"].isoweekday() in self._week_day_num
        return now.isoweekday() in self._week_day_num
