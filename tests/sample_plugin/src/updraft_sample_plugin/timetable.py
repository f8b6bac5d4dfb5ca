"""A timetable registered as ``sample_every_n_days``: runs every ``days`` days at ``hour``."""

from __future__ import annotations

from datetime import datetime, timedelta

from updraft.schedules import DagRunInfo, DataInterval, TimeRestriction, Timetable


class EveryNDaysTimetable(Timetable):
    """Intervals of ``days`` days starting at ``hour``:00 UTC on the start date."""

    periodic = True

    def __init__(self, days: int = 2, hour: int = 0) -> None:
        self.days = days
        self.hour = hour

    @property
    def summary(self) -> str:
        return f"every {self.days} days at {self.hour:02d}:00"

    def serialize(self) -> dict:
        return {"days": self.days, "hour": self.hour}

    @classmethod
    def deserialize(cls, data: dict) -> EveryNDaysTimetable:
        return cls(days=data["days"], hour=data["hour"])

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval(run_after - timedelta(days=self.days), run_after)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        if last_automated_data_interval is not None:
            start = last_automated_data_interval.end
        elif restriction.earliest is None:
            return None
        else:
            start = restriction.earliest.replace(hour=self.hour, minute=0, second=0,
                                                 microsecond=0)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start, start + timedelta(days=self.days))

    def _key(self) -> tuple:
        return (self.days, self.hour)
