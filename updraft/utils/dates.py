"""Date helpers with Airflow's names (``airflow.utils.dates``): ``days_ago`` and friends."""

from __future__ import annotations

from datetime import datetime, timedelta

from updraft.utils import timezone

cron_presets: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def days_ago(n: int, hour: int = 0, minute: int = 0, second: int = 0,
             microsecond: int = 0) -> datetime:
    """``n`` days before today at the given time of day, aware in UTC (as Airflow's)."""
    today = timezone.utcnow().replace(hour=hour, minute=minute, second=second,
                                      microsecond=microsecond)
    return today - timedelta(days=n)


def parse_execution_date(execution_date_str: str) -> datetime:
    """An aware datetime from an execution date string."""
    return timezone.parse(execution_date_str)


def datetime_to_nano(value: datetime | None) -> int | None:
    """Nanoseconds since the epoch (naive values are UTC); None stays None."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1_000_000_000)


def round_time(dt: datetime, delta: timedelta, start_date: datetime | None = None) -> datetime:
    """The ``start_date + i * delta`` closest to ``dt``."""
    start = start_date or datetime.min.replace(tzinfo=dt.tzinfo)
    steps = round((dt - start) / delta)
    return start + steps * delta


def infer_time_unit(time_seconds_arr: list[float]) -> str:
    """The unit (seconds, minutes, hours, days) that suits the largest of some durations."""
    if not time_seconds_arr:
        return "hours"
    largest = max(time_seconds_arr)
    if largest <= 60 * 2:
        return "seconds"
    if largest <= 60 * 60 * 2:
        return "minutes"
    if largest <= 24 * 60 * 60 * 2:
        return "hours"
    return "days"


def scale_time_units(time_seconds_arr: list[float], unit: str) -> list[float]:
    """Durations in seconds converted to ``unit``."""
    factor = {"minutes": 60, "hours": 3600, "days": 86400}.get(unit, 1)
    return [x / factor for x in time_seconds_arr]


__all__ = ["cron_presets", "datetime_to_nano", "days_ago", "infer_time_unit",
           "parse_execution_date", "round_time", "scale_time_units"]
