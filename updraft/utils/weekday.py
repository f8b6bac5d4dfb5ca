"""WeekDay: day-of-week names and numbers (ISO: Monday is 1), with Airflow's helpers."""

from __future__ import annotations

import enum
from collections.abc import Iterable


@enum.unique
class WeekDay(enum.IntEnum):
    """Python Enum containing Days of the Week."""

    MONDAY = 1
    TUESDAY = 2
    WEDNESDAY = 3
    THURSDAY = 4
    FRIDAY = 5
    SATURDAY = 6
    SUNDAY = 7

    @classmethod
    def get_weekday_number(cls, week_day_str: str) -> int:
        """The ISO number of a day name (any case); AttributeError for an unknown name."""
        sanitized = week_day_str.upper()
        if sanitized not in cls.__members__:
            raise AttributeError(f'Invalid Week Day passed: "{week_day_str}"')
        return cls[sanitized]

    @classmethod
    def convert(cls, day: str | WeekDay) -> int:
        """The ISO number of a day given by name or as a WeekDay."""
        if isinstance(day, WeekDay):
            return day
        return cls.get_weekday_number(week_day_str=day)

    @classmethod
    def validate_week_day(cls, week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay]
                          ) -> set[int]:
        """The set of ISO day numbers a day, or several days, stand for."""
        if isinstance(week_day, str):
            return {cls.get_weekday_number(week_day)}
        if isinstance(week_day, WeekDay):
            return {week_day}
        if isinstance(week_day, Iterable) and all(isinstance(day, (str, WeekDay))
                                                  for day in week_day):
            return {cls.convert(day) for day in week_day}
        raise TypeError(f"Unsupported Type for week_day parameter: {type(week_day)}."
                        "Input should be iterable type:str, set, list, dict or Weekday enum type")
