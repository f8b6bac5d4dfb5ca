"""Timezone helpers with Airflow's names (``airflow.utils.timezone``): aware datetimes.

Naive values are taken in ``[core] default_timezone``, as in Airflow.
"""

from __future__ import annotations

import datetime as dt
from datetime import UTC, tzinfo
from typing import Any

utc = UTC


def _default_tz() -> tzinfo:
    from updraft.schedules import parse_timezone

    return parse_timezone(None)


def parse_timezone(name: str | int | tzinfo) -> tzinfo:
    """A tzinfo from an IANA name, an offset in seconds, or a tzinfo."""
    from updraft.schedules import parse_timezone as _parse

    if isinstance(name, int):
        return dt.timezone(dt.timedelta(seconds=name))
    return _parse(name)


def local_timezone() -> tzinfo:
    """The machine's local timezone."""
    return dt.datetime.now().astimezone().tzinfo or UTC


def is_localized(value: dt.datetime) -> bool:
    """Whether ``value`` is aware."""
    return value.utcoffset() is not None


def is_naive(value: dt.datetime) -> bool:
    """Whether ``value`` is naive."""
    return value.utcoffset() is None


def utcnow() -> dt.datetime:
    """The current time, aware in UTC."""
    return dt.datetime.now(UTC)


def utc_epoch() -> dt.datetime:
    """1970-01-01 00:00, aware in UTC."""
    return dt.datetime(1970, 1, 1, tzinfo=UTC)


def convert_to_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` in UTC; naive values are read in the default timezone first."""
    if value is None:
        return value
    if not is_localized(value):
        value = make_aware(value)
    return value.astimezone(UTC)


def make_aware(value: dt.datetime | None, timezone: tzinfo | str | None = None
               ) -> dt.datetime | None:
    """Attach ``timezone`` (default: the default timezone) to a naive datetime."""
    if value is None:
        return None
    tz = _default_tz() if timezone is None else parse_timezone(timezone)
    if is_localized(value):
        raise ValueError(f"make_aware expects a naive datetime, got {value}")
    return value.replace(tzinfo=tz)


def make_naive(value: dt.datetime, timezone: tzinfo | str | None = None) -> dt.datetime:
    """The wall-clock time of an aware datetime in ``timezone``, without tzinfo."""
    tz = _default_tz() if timezone is None else parse_timezone(timezone)
    if is_naive(value):
        raise ValueError("make_naive() cannot be applied to a naive datetime")
    return value.astimezone(tz).replace(tzinfo=None)


def datetime(*args: Any, **kwargs: Any) -> dt.datetime:
    """``datetime.datetime(...)``, aware in the default timezone unless tzinfo is given."""
    if "tzinfo" not in kwargs:
        kwargs["tzinfo"] = _default_tz()
    return dt.datetime(*args, **kwargs)


def parse(string: str, timezone: tzinfo | str | None = None, *, strict: bool = False
          ) -> dt.datetime:
    """An aware datetime from ISO 8601 text; naive text is in ``timezone`` (default one)."""
    text = string.strip()
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z")
                                          else text)
    except ValueError:
        try:
            import pendulum
        except ImportError:
            raise ValueError(f"invalid date {string!r}: expected ISO 8601") from None
        parsed = pendulum.parse(text, strict=strict)
        value = dt.datetime.fromisoformat(parsed.isoformat())
    if is_naive(value):
        tz = _default_tz() if timezone is None else parse_timezone(timezone)
        value = value.replace(tzinfo=tz)
    return value


def coerce_datetime(value: dt.datetime | None, tz: tzinfo | str | None = None
                    ) -> dt.datetime | None:
    """An aware datetime: naive values get ``tz`` (default UTC); None stays None."""
    if value is None:
        return None
    if is_naive(value):
        return value.replace(tzinfo=UTC if tz is None else parse_timezone(tz))
    return value


def from_timestamp(timestamp: float, tz: tzinfo | str = UTC) -> dt.datetime:
    """The aware datetime of a POSIX timestamp."""
    return dt.datetime.fromtimestamp(timestamp, tz=parse_timezone(tz) if isinstance(tz, str)
                                     else tz)


def td_format(td_object: dt.timedelta | float | None) -> str | None:
    """A duration as Airflow writes it: ``1d 2h 3m 4s``."""
    if not td_object:
        return None
    seconds = td_object.total_seconds() if isinstance(td_object, dt.timedelta) else \
        float(td_object)
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((days, "d"), (hours, "h"), (minutes, "m")) if v]
    if secs or seconds % 1 or not parts:
        parts.append(f"{secs + seconds % 1:.3f}s".replace(".000s", "s"))
    return " ".join(parts)


__all__ = ["coerce_datetime", "convert_to_utc", "datetime", "from_timestamp", "is_localized",
           "is_naive", "local_timezone", "make_aware", "make_naive", "parse", "parse_timezone",
           "td_format", "utc", "utc_epoch", "utcnow"]
