"""Timetables: when a DAG runs and which data interval each run covers, with Airflow 2 semantics.

A run's *logical date* is the start of its data interval, and a scheduled run is due once its
interval has ended (``run_after == data_interval.end``). ``create_timetable`` turns what a DAG
file gives as ``schedule`` (None, ``"@once"``, ``"@continuous"``, a preset, a cron string, a
``timedelta`` / ``relativedelta`` or a ``Timetable``) into one of the classes below.

Timetables are pure: every decision that depends on the clock takes ``now`` as an argument, so
the scheduler (the only place that reads the clock) and the tests drive time. Every datetime
they return is timezone-aware UTC; cron expressions are evaluated on the wall clock of the DAG's
timezone, so ``0 2 * * *`` in Europe/Amsterdam stays at 02:00 local time across DST changes.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from dateutil.relativedelta import relativedelta, weekday

from updraft.utils.timezone import utcnow

CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@midnight": "0 0 * * *",
}
PRESETS: tuple[str, ...] = ("@once", "@continuous", *CRON_PRESETS)

_PRESET_DESCRIPTIONS = {
    "@hourly": "At the start of every hour",
    "@daily": "At 00:00 every day",
    "@midnight": "At 00:00 every day",
    "@weekly": "At 00:00 every Sunday",
    "@monthly": "At 00:00 on the first day of every month",
    "@quarterly": "At 00:00 on the first day of January, April, July and October",
    "@yearly": "At 00:00 on January 1",
    "@annually": "At 00:00 on January 1",
}

# Wider than any DST shift in the tz database (2 hours at most), so that a cron candidate whose
# instant moved across a transition is still looked at.
_DST_MARGIN = timedelta(hours=3)


class ScheduleError(ValueError):
    """A schedule, timezone or date that Updraft cannot use; the message says what is wrong."""


# -- time helpers ----------------------------------------------------------------------------


def _plain_utc(value: datetime) -> datetime:
    # Rebuild as a plain datetime: pendulum and other subclasses do not survive JSON or pickling
    # between nodes the same way, and their arithmetic differs from the stdlib's.
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                    value.microsecond, tzinfo=UTC)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ScheduleError(f"expected a timezone-aware datetime, got naive {value.isoformat()}")
    return _plain_utc(value)


_OFFSET_RE = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_timezone(value: Any = None) -> tzinfo:
    """A tzinfo for an IANA name, a tzinfo object (pendulum/pytz ones by their name) or None.

    None means ``[core] default_timezone``. Named zones come back as ``ZoneInfo``; fixed
    offsets ("+02:00" or a ``datetime.timezone``) as ``datetime.timezone``; UTC as
    ``ZoneInfo("UTC")``.
    """
    if value is None:
        from updraft.config import conf

        value = conf.get("core", "default_timezone")
    if isinstance(value, ZoneInfo):
        return value
    if isinstance(value, str):
        name = value.strip()
        if name.upper() in ("UTC", "Z", "ETC/UTC"):
            return ZoneInfo("UTC")
        match = _OFFSET_RE.match(name)
        if match:
            sign, hours, minutes = match.groups()
            offset = timedelta(hours=int(hours), minutes=int(minutes))
            if offset >= timedelta(hours=24):
                raise ScheduleError(f"unknown timezone {value!r}: offset out of range")
            return parse_timezone(dt_timezone(-offset if sign == "-" else offset))
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"unknown timezone {value!r}: not a name from the IANA time zone database "
                "(such as 'UTC', 'Europe/Amsterdam' or 'America/New_York')") from None
    if isinstance(value, dt_timezone):
        offset = value.utcoffset(None)
        return ZoneInfo("UTC") if offset == timedelta(0) else value
    if isinstance(value, tzinfo):
        # pendulum zones have .name, pytz zones .zone, dateutil tzfile ._filename.
        for attr in ("key", "name", "zone", "_filename"):
            name = getattr(value, attr, None)
            if isinstance(name, str) and name and not name.startswith("/"):
                return parse_timezone(name)
        offset = value.utcoffset(None)
        if offset is not None:
            return parse_timezone(dt_timezone(offset))
        raise ScheduleError(f"cannot use timezone {value!r}: give an IANA name such as "
                            "'Europe/Amsterdam'")
    raise ScheduleError(f"timezone must be an IANA name or a tzinfo, got {type(value).__name__}")


def timezone_name(tz: tzinfo) -> str:
    """The name that ``parse_timezone`` turns back into ``tz`` ("Europe/Amsterdam", "+02:00")."""
    tz = parse_timezone(tz)
    if isinstance(tz, ZoneInfo):
        return tz.key
    offset = tz.utcoffset(None) or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def coerce_datetime(value: Any, timezone: Any = "UTC") -> datetime | None:
    """An aware UTC datetime from a datetime, a date or an ISO 8601 string; None stays None.

    Naive values are wall-clock times in ``timezone`` (the DAG's), then converted to UTC.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"invalid date {text!r}: expected ISO 8601 such as '2024-01-31' or "
                "'2024-01-31T06:00:00+01:00'") from None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    elif not isinstance(value, datetime):
        raise ScheduleError(f"expected a datetime, a date or an ISO 8601 string, "
                            f"got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=parse_timezone(timezone))
    return _plain_utc(value)


# -- data intervals and run infos -------------------------------------------------------------


@dataclass(frozen=True)
class DataInterval:
    """The period of data a run covers: ``[start, end)``, both aware UTC datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ScheduleError(f"data interval ends ({self.end.isoformat()}) before it starts "
                                f"({self.start.isoformat()})")

    @classmethod
    def exact(cls, at: datetime) -> DataInterval:
        """An empty interval at one instant (manual runs of unscheduled DAGs, @once)."""
        return cls(at, at)


@dataclass(frozen=True)
class DagRunInfo:
    """What the timetable says about one run: when it may start and the data it covers."""

    run_after: datetime
    data_interval: DataInterval

    @property
    def logical_date(self) -> datetime:
        """The run's logical date: the start of its data interval."""
        return self.data_interval.start

    @classmethod
    def interval(cls, start: datetime, end: datetime) -> DagRunInfo:
        """A run for ``[start, end)``, due when the interval has ended."""
        return cls(run_after=end, data_interval=DataInterval(start, end))

    @classmethod
    def exact(cls, at: datetime) -> DagRunInfo:
        """A run due at ``at`` with an empty data interval there."""
        return cls(run_after=at, data_interval=DataInterval.exact(at))


@dataclass(frozen=True)
class TimeRestriction:
    """The bounds of a DAG's schedule: start_date, end_date (inclusive) and catchup."""

    earliest: datetime | None
    latest: datetime | None
    catchup: bool


# -- the timetable interface ------------------------------------------------------------------


class Timetable:
    """Base class: decides the scheduled runs of a DAG and the interval of a manual run.

    Subclass it for a custom schedule the way Airflow's ``Timetable`` is subclassed; a custom
    timetable is stored by class path and rebuilt with ``deserialize(serialize())``.
    """

    #: Whether runs follow a fixed period (the UI uses it to draw the next runs).
    periodic: bool = False
    #: Whether the scheduler creates runs at all (False: manual and external triggers only).
    can_be_scheduled: bool = True
    #: How runs of this DAG are ordered in the UI.
    run_ordering: tuple[str, ...] = ("data_interval_end", "logical_date")
    #: Most runs that may be active at once regardless of the DAG (None: the DAG decides).
    active_runs_limit: int | None = None

    @property
    def summary(self) -> str:
        """Short text shown in the UI next to the DAG ("@daily", "0 2 * * *")."""
        return type(self).__name__

    @property
    def description(self) -> str:
        """A sentence for people: when this timetable runs the DAG."""
        return self.summary

    def validate(self) -> None:
        """Raise ScheduleError if the timetable cannot work."""

    def serialize(self) -> dict[str, Any]:
        """A JSON-safe dict that ``deserialize`` turns back into an equal timetable."""
        return {}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        """Rebuild a timetable from what ``serialize`` returned."""
        return cls()

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The data interval of a run triggered by hand at ``run_after``."""
        return DataInterval.exact(_as_utc(run_after))

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        """The next scheduled run after the last one (None: no more runs).

        The returned run may lie in the future: it is due when ``run_after <= now``.
        """
        raise NotImplementedError

    def generate_run_id(self, *, run_type: Any, logical_date: datetime,
                        data_interval: DataInterval | None = None, **extra: Any) -> str:
        """The run id of a new run, ``<run_type>__<logical date ISO>`` as in Airflow."""
        kind = getattr(run_type, "value", run_type)
        return f"{kind}__{logical_date.isoformat()}"

    def iter_dagrun_infos_between(self, earliest: datetime,
                                  latest: datetime) -> Iterator[DagRunInfo]:
        """Every scheduled run whose logical date is in ``[earliest, latest]`` (for backfills)."""
        earliest, latest = _as_utc(earliest), _as_utc(latest)
        if not self.can_be_scheduled or latest < earliest:
            return
        restriction = TimeRestriction(earliest, latest, catchup=True)
        # With catchup the built-in timetables do not look at the clock; `latest` keeps this
        # deterministic for custom ones that do.
        info = next_dagrun_info_at(self, last_automated_data_interval=None,
                                   restriction=restriction, now=latest)
        while info is not None and info.logical_date <= latest:
            yield info
            following = next_dagrun_info_at(self, last_automated_data_interval=info.data_interval,
                                            restriction=restriction, now=latest)
            if following is not None and following.logical_date <= info.logical_date:
                return  # a timetable that does not move forward would loop forever
            info = following

    def _key(self) -> tuple:
        return ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.summary!r})"


def next_dagrun_info_at(timetable: Timetable, *,
                        last_automated_data_interval: DataInterval | None,
                        restriction: TimeRestriction, now: datetime) -> DagRunInfo | None:
    """Call ``timetable.next_dagrun_info`` at time ``now``, also for Airflow-style custom
    timetables whose method takes no ``now`` (those read the clock themselves)."""
    method = timetable.next_dagrun_info
    if _accepts_now(type(timetable)):
        return method(last_automated_data_interval=last_automated_data_interval,
                      restriction=restriction, now=now)
    return method(last_automated_data_interval=last_automated_data_interval,
                  restriction=restriction)


_ACCEPTS_NOW: dict[type, bool] = {}


def _accepts_now(cls: type) -> bool:
    known = _ACCEPTS_NOW.get(cls)
    if known is None:
        params = inspect.signature(cls.next_dagrun_info).parameters
        known = "now" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())
        _ACCEPTS_NOW[cls] = known
    return known


class NullTimetable(Timetable):
    """``schedule=None``: never scheduled; runs only when triggered."""

    summary = "None"  # type: ignore[assignment]
    can_be_scheduled = False

    @property
    def description(self) -> str:
        return "Never, external triggers only"

    def serialize(self) -> dict[str, Any]:
        return {"type": "none"}

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        return None


class OnceTimetable(Timetable):
    """``"@once"``: one run at the start date, whatever catchup says."""

    summary = "@once"  # type: ignore[assignment]

    @property
    def description(self) -> str:
        return "Once, as soon as possible"

    def serialize(self) -> dict[str, Any]:
        return {"type": "once"}

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        if last_automated_data_interval is not None or restriction.earliest is None:
            return None
        if restriction.latest is not None and restriction.earliest > restriction.latest:
            return None
        return DagRunInfo.exact(restriction.earliest)


class ContinuousTimetable(Timetable):
    """``"@continuous"``: a new run as soon as the previous one ends (one at a time)."""

    summary = "@continuous"  # type: ignore[assignment]
    active_runs_limit = 1

    @property
    def description(self) -> str:
        return "As frequently as possible, but only one run at a time"

    def serialize(self) -> dict[str, Any]:
        return {"type": "continuous"}

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        if restriction.earliest is None:
            return None
        now = utcnow() if now is None else _as_utc(now)
        if last_automated_data_interval is not None:
            start = last_automated_data_interval.end
            end = max(start, now)
        else:
            start = restriction.earliest
            end = max(restriction.earliest, now)
        if restriction.latest is not None and end > restriction.latest:
            return None
        return DagRunInfo.interval(start, end)

    def iter_dagrun_infos_between(self, earliest: datetime,
                                  latest: datetime) -> Iterator[DagRunInfo]:
        """A continuous DAG has no fixed intervals to backfill."""
        return iter(())


class _DataIntervalTimetable(Timetable):
    """Shared logic of cron and delta timetables: runs cover back-to-back intervals."""

    periodic = True

    def _get_next(self, current: datetime) -> datetime:
        raise NotImplementedError

    def _get_prev(self, current: datetime) -> datetime:
        raise NotImplementedError

    def _align_to_next(self, current: datetime) -> datetime:
        raise NotImplementedError

    def _align_to_prev(self, current: datetime) -> datetime:
        raise NotImplementedError

    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        raise NotImplementedError

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        now = utcnow() if now is None else _as_utc(now)
        earliest = restriction.earliest
        if not restriction.catchup:
            earliest = self._skip_to_latest(earliest, now)
        elif earliest is not None:
            earliest = self._align_to_next(earliest)
        if last_automated_data_interval is None:
            if earliest is None:
                return None
            start = earliest
        else:
            # Aligning copes with a schedule changed since the last run.
            start = self._align_to_prev(last_automated_data_interval.end)
            if earliest is not None:
                start = max(start, earliest)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start, self._get_next(start))


# -- cron ------------------------------------------------------------------------------------

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day-of-month", 1, 31),
    ("month", 1, 12),
    ("day-of-week", 0, 7),
    ("second", 0, 59),
)
_CRON_NAMES = {
    "month": {name: i + 1 for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))},
    "day-of-week": {name: i for i, name in enumerate(
        ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
_PLAIN_ITEM = re.compile(r"^(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(.*))?$")
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
             "Sunday")


def _cron_error(schedule: str, message: str, n_fields: int | None = None) -> ScheduleError:
    if n_fields is None:
        return ScheduleError(f"invalid schedule {schedule!r}: {message}")
    names = " ".join(name for name, _, _ in _CRON_FIELDS[:n_fields])
    return ScheduleError(f"invalid schedule {schedule!r}: {message} (cron fields: {names})")


def _validate_cron(expression: str) -> None:
    fields = expression.split()
    if len(fields) not in (5, 6):
        five = " ".join(name for name, _, _ in _CRON_FIELDS[:5])
        raise _cron_error(expression, f"a cron expression has 5 fields ({five}) or 6 "
                                      f"(then the sixth is the second), got {len(fields)}")
    for text, (name, low, high) in zip(fields, _CRON_FIELDS):
        names = _CRON_NAMES.get(name, {})
        allowed = f"{name} must be in {low}-{high}"
        if names:
            allowed += f" or {next(iter(names))}-{list(names)[-1]}"
        for item in text.lower().split(","):
            match = _PLAIN_ITEM.match(item)
            if not match:
                continue  # L, W, #, H and friends: croniter checks those below
            base, step = match.groups()
            if step is not None and (not step.isdigit() or int(step) == 0):
                raise _cron_error(expression, f"{name} step must be a positive integer, "
                                              f"got {step!r}", len(fields))
            if base == "*":
                continue
            for part in base.split("-"):
                if part.isdigit():
                    if not low <= int(part) <= high:
                        raise _cron_error(expression, allowed, len(fields))
                elif part not in names and not (name in ("day-of-month", "day-of-week")
                                                and ("l" in part or "w" in part)):
                    raise _cron_error(expression, allowed, len(fields))
    try:
        cron = croniter(expression, datetime(2000, 1, 1))
    except CroniterError as exc:
        detail = str(exc).replace(f"[{expression}] is not acceptable", "").strip(" ,")
        raise _cron_error(expression, detail or "not a valid cron expression",
                          len(fields)) from None
    try:
        cron.get_next(datetime)
    except CroniterBadDateError:
        raise _cron_error(expression, "it never matches a date") from None


def _describe_cron(expression: str) -> str | None:
    fields = expression.split()
    if len(fields) != 5:
        return None
    minute, hour, dom, month, dow = fields
    if not minute.isdigit():
        return None
    if hour == "*" and (dom, month, dow) == ("*", "*", "*"):
        return f"At minute {int(minute)} of every hour"
    if not hour.isdigit():
        return None
    at = f"At {int(hour):02d}:{int(minute):02d}"
    if (dom, month, dow) == ("*", "*", "*"):
        return f"{at} every day"
    if dom == "*" and month == "*" and dow.isdigit() and int(dow) <= 7:
        return f"{at} every {_WEEKDAYS[int(dow)]}"
    if dom.isdigit() and month == "*" and dow == "*":
        return f"{at} on day {int(dom)} of every month"
    return None


class CronDataIntervalTimetable(_DataIntervalTimetable):
    """A cron expression or preset evaluated in the DAG's timezone; each run covers the time
    from one cron point to the next.

    DST: a wall time that does not exist (spring forward) runs when the clock jumps past it,
    shifted forward by the gap; a wall time that happens twice (fall back) runs once, at its
    second occurrence, except for crons that fire every hour, which run in both.
    """

    def __init__(self, cron: str, timezone: Any = "UTC") -> None:
        if not isinstance(cron, str):
            raise ScheduleError(f"a cron expression must be a string, got {type(cron).__name__}")
        original = " ".join(cron.split())
        expression = CRON_PRESETS.get(original, original)
        if expression.startswith("@"):
            raise _unknown_preset(original)
        _validate_cron(expression)
        self._original = original
        self._expression = expression
        self._timezone = parse_timezone(timezone)
        self._every_hour = croniter(expression).expanded[1] == ["*"]

    @property
    def expression(self) -> str:
        """The cron expression as given (a preset stays a preset)."""
        return self._original

    @property
    def timezone(self) -> tzinfo:
        """The zone whose wall clock the cron expression follows."""
        return self._timezone

    @property
    def summary(self) -> str:
        return self._original

    @property
    def description(self) -> str:
        text = (_PRESET_DESCRIPTIONS.get(self._original) or _describe_cron(self._expression)
                or f"Cron schedule '{self._original}'")
        name = timezone_name(self._timezone)
        return text if name == "UTC" else f"{text} ({name})"

    def serialize(self) -> dict[str, Any]:
        return {"type": "cron", "expression": self._original,
                "timezone": timezone_name(self._timezone)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(data["expression"], data.get("timezone", "UTC"))

    def _key(self) -> tuple:
        return (self._expression, timezone_name(self._timezone))

    def __repr__(self) -> str:
        return (f"CronDataIntervalTimetable({self._original!r}, "
                f"{timezone_name(self._timezone)!r})")

    # The mapping between cron wall times and instants.

    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self._timezone).replace(tzinfo=None)

    def _instants(self, wall: datetime) -> tuple[datetime, ...]:
        first = wall.replace(tzinfo=self._timezone, fold=0)
        second = wall.replace(tzinfo=self._timezone, fold=1)
        if first.utcoffset() == second.utcoffset():
            return (first.astimezone(UTC),)
        early, late = first.astimezone(UTC), second.astimezone(UTC)
        if self._wall(early) != wall:
            # In a gap: read with the offset from before the jump, which moves it forward.
            return (early,)
        if self._every_hour:
            return tuple(sorted((early, late)))
        return (max(early, late),)

    def _stable_near(self, instant: datetime) -> bool:
        tz = self._timezone
        return ((instant - _DST_MARGIN).astimezone(tz).utcoffset()
                == (instant + _DST_MARGIN).astimezone(tz).utcoffset())

    def _get_next(self, current: datetime) -> datetime:
        """The first cron instant strictly after ``current``."""
        wall = self._wall(current)
        if self._stable_near(current):
            candidate = croniter(self._expression, wall).get_next(datetime)
            instants = self._instants(candidate)
            if len(instants) == 1 and instants[0] > current and self._stable_near(instants[0]):
                return instants[0]
        # Near a DST change the order of wall times and instants differs: scan around it.
        cron = croniter(self._expression, wall - _DST_MARGIN)
        best: datetime | None = None
        while True:
            candidate = cron.get_next(datetime)
            if best is not None and candidate > self._wall(best) + _DST_MARGIN:
                return best
            for instant in self._instants(candidate):
                if instant > current and (best is None or instant < best):
                    best = instant

    def _get_prev(self, current: datetime) -> datetime:
        """The last cron instant strictly before ``current``."""
        wall = self._wall(current)
        if self._stable_near(current):
            candidate = croniter(self._expression, wall).get_prev(datetime)
            instants = self._instants(candidate)
            if len(instants) == 1 and instants[0] < current and self._stable_near(instants[0]):
                return instants[0]
        cron = croniter(self._expression, wall + _DST_MARGIN)
        best: datetime | None = None
        while True:
            candidate = cron.get_prev(datetime)
            if best is not None and candidate < self._wall(best) - _DST_MARGIN:
                return best
            for instant in self._instants(candidate):
                if instant < current and (best is None or instant > best):
                    best = instant

    def _align_to_next(self, current: datetime) -> datetime:
        following = self._get_next(current)
        return current if self._get_prev(following) == current else following

    def _align_to_prev(self, current: datetime) -> datetime:
        previous = self._get_prev(current)
        return current if self._get_next(previous) == current else previous

    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        # The latest *complete* interval: the one that ended at or before now.
        last_start = self._get_prev(now)
        next_start = self._get_next(last_start)
        new_start = last_start if next_start == now else self._get_prev(last_start)
        if earliest is None:
            return new_start
        return max(new_start, self._align_to_next(earliest))

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """The last complete interval ending at or before ``run_after``."""
        end = self._align_to_prev(_as_utc(run_after))
        return DataInterval(self._get_prev(end), end)


# -- fixed delta ------------------------------------------------------------------------------


def _describe_timedelta(delta: timedelta) -> str:
    parts = []
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'s' if count != 1 else ''}")
    return "Every " + (", ".join(parts) if parts else str(delta))


def _encode_relativedelta(delta: relativedelta) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name in ("years", "months", "days", "leapdays", "hours", "minutes", "seconds",
                 "microseconds", "year", "month", "day", "hour", "minute", "second",
                 "microsecond"):
        value = getattr(delta, name)
        if value:
            encoded[name] = value
    if delta.weekday is not None:
        encoded["weekday"] = [delta.weekday.weekday, delta.weekday.n]
    return encoded


def _decode_relativedelta(data: dict[str, Any]) -> relativedelta:
    data = dict(data)
    if "weekday" in data:
        day, n = data.pop("weekday")
        data["weekday"] = weekday(day, n)
    return relativedelta(**data)


class DeltaDataIntervalTimetable(_DataIntervalTimetable):
    """A ``timedelta`` or ``relativedelta`` schedule: back-to-back intervals of that length
    from the start date, computed in UTC as Airflow does."""

    def __init__(self, delta: timedelta | relativedelta) -> None:
        if not isinstance(delta, (timedelta, relativedelta)):
            raise ScheduleError(f"a delta schedule needs a timedelta or a relativedelta, "
                                f"got {type(delta).__name__}")
        self._delta = delta
        self.validate()

    @property
    def delta(self) -> timedelta | relativedelta:
        """The length of each interval."""
        return self._delta

    def validate(self) -> None:
        probe = datetime(2000, 1, 1, tzinfo=UTC)
        if probe + self._delta <= probe:
            raise ScheduleError(f"invalid schedule {self._delta!r}: the interval must be "
                                "positive")

    @property
    def summary(self) -> str:
        return str(self._delta)

    @property
    def description(self) -> str:
        if isinstance(self._delta, timedelta):
            return _describe_timedelta(self._delta)
        return f"Every {self._delta!r}"

    def serialize(self) -> dict[str, Any]:
        if isinstance(self._delta, timedelta):
            return {"type": "delta", "timedelta": self._delta.total_seconds()}
        return {"type": "delta", "relativedelta": _encode_relativedelta(self._delta)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        if "timedelta" in data:
            return cls(timedelta(seconds=data["timedelta"]))
        return cls(_decode_relativedelta(data["relativedelta"]))

    def _key(self) -> tuple:
        return (repr(self._delta),)

    def __repr__(self) -> str:
        return f"DeltaDataIntervalTimetable({self._delta!r})"

    def _get_next(self, current: datetime) -> datetime:
        return _plain_utc(current + self._delta)

    def _get_prev(self, current: datetime) -> datetime:
        return _plain_utc(current - self._delta)

    def _align_to_next(self, current: datetime) -> datetime:
        return current

    def _align_to_prev(self, current: datetime) -> datetime:
        return current

    def _skip_to_latest(self, earliest: datetime | None, now: datetime) -> datetime:
        new_start = self._get_prev(now)
        return new_start if earliest is None else max(new_start, earliest)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        """``[run_after - delta, run_after]``."""
        run_after = _as_utc(run_after)
        return DataInterval(self._get_prev(run_after), run_after)


# -- cron triggers (Airflow's CronTriggerTimetable) -------------------------------------------


class CronTriggerTimetable(Timetable):
    """Runs at each cron tick, like POSIX cron (Airflow's ``CronTriggerTimetable``): a run's
    logical date is its tick and its data interval ends there (``interval`` long, zero by
    default). Without catchup the first run is the next tick from now (``run_immediately``
    True: the latest past tick)."""

    periodic = True

    def __init__(self, cron: str, *, timezone: Any = "UTC",
                 interval: timedelta | relativedelta = timedelta(),
                 run_immediately: bool | timedelta = False) -> None:
        self._cron = CronDataIntervalTimetable(cron, timezone)
        if not isinstance(interval, (timedelta, relativedelta)):
            raise ScheduleError(f"CronTriggerTimetable interval must be a timedelta, got "
                                f"{type(interval).__name__}")
        self._interval = interval
        self._run_immediately = run_immediately

    @property
    def summary(self) -> str:
        return self._cron.summary

    @property
    def description(self) -> str:
        return self._cron.description

    def serialize(self) -> dict[str, Any]:
        interval = (_encode_relativedelta(self._interval)
                    if isinstance(self._interval, relativedelta)
                    else self._interval.total_seconds())
        immediately = (self._run_immediately.total_seconds()
                       if isinstance(self._run_immediately, timedelta)
                       else bool(self._run_immediately))
        return {"type": "cron_trigger", "expression": self._cron.expression,
                "timezone": timezone_name(self._cron.timezone), "interval": interval,
                "run_immediately": immediately}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        raw = data.get("interval", 0)
        interval = _decode_relativedelta(raw) if isinstance(raw, dict) \
            else timedelta(seconds=float(raw))
        immediately = data.get("run_immediately", False)
        if not isinstance(immediately, bool):
            immediately = timedelta(seconds=float(immediately))
        return cls(data["expression"], timezone=data.get("timezone", "UTC"),
                   interval=interval, run_immediately=immediately)

    def _key(self) -> tuple:
        return (self._cron._key(), str(self._interval), str(self._run_immediately))

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        run_after = _as_utc(run_after)
        return DataInterval(_as_utc(run_after - self._interval), run_after)

    def _first_run(self, now: datetime) -> datetime:
        past = self._cron._align_to_prev(now)
        if self._run_immediately is True:
            return past
        if isinstance(self._run_immediately, timedelta):
            return past if now - past <= self._run_immediately else self._cron._get_next(past)
        return past if past == now else self._cron._get_next(now)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        now = utcnow() if now is None else _as_utc(now)
        cron = self._cron
        if restriction.catchup:
            if last_automated_data_interval is not None:
                start = cron._get_next(last_automated_data_interval.end)
            elif restriction.earliest is None:
                start = self._first_run(now)
            else:
                start = cron._align_to_next(restriction.earliest)
        else:
            candidates = [cron._align_to_prev(now)]
            if last_automated_data_interval is not None:
                candidates.append(cron._get_next(last_automated_data_interval.end))
            elif restriction.earliest is None:
                candidates.append(self._first_run(now))
            if restriction.earliest is not None:
                candidates.append(cron._align_to_next(restriction.earliest))
            start = max(candidates)
        if restriction.latest is not None and restriction.latest < start:
            return None
        return DagRunInfo.interval(_as_utc(start - self._interval), start)


# -- asset schedules --------------------------------------------------------------------------


class AssetTriggeredTimetable(Timetable):
    """``schedule=[a, b]`` or ``schedule=(a & b) | c``: runs come from asset events only
    (``scheduler/assets.py``, ADR 10), never from the clock."""

    can_be_scheduled = False
    #: Whether the clock opens a gate that asset events must then pass (AssetAndTime).
    gated_by_time = False

    def __init__(self, assets: Any) -> None:
        from updraft.assets import BaseAsset, as_condition, condition_from_json

        if isinstance(assets, dict):
            assets = condition_from_json(assets)
        condition = as_condition(assets)
        if not isinstance(condition, BaseAsset):
            raise ScheduleError("an asset schedule needs assets, asset aliases or & / | of "
                                f"them, got {assets!r}")
        self.asset_condition = condition

    @property
    def condition_json(self) -> dict[str, Any]:
        from updraft.assets import condition_to_json

        return condition_to_json(self.asset_condition)

    @property
    def summary(self) -> str:
        return "Asset"

    @property
    def description(self) -> str:
        from updraft.assets import describe_condition

        return f"Triggered by assets: {describe_condition(self.condition_json)}"

    def serialize(self) -> dict[str, Any]:
        return {"type": "asset", "condition": self.condition_json}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(data["condition"])

    def _key(self) -> tuple:
        import json

        return (json.dumps(self.condition_json, sort_keys=True),)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return DataInterval.exact(_as_utc(run_after))

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        return None

    def generate_run_id(self, *, run_type: Any, logical_date: datetime,
                        data_interval: DataInterval | None = None, **extra: Any) -> str:
        return Timetable.generate_run_id(self, run_type=run_type, logical_date=logical_date)


class AssetOrTimeSchedule(AssetTriggeredTimetable):
    """Runs on the ``timetable``'s times *and* on asset events (Airflow's
    ``AssetOrTimeSchedule``): each kind of run on its own."""

    def __init__(self, *, timetable: Timetable, assets: Any) -> None:
        super().__init__(assets)
        if isinstance(timetable, AssetTriggeredTimetable):
            raise ScheduleError("cannot nest asset timetables")
        if not isinstance(timetable, Timetable):
            timetable = create_timetable(timetable)
        self.timetable = timetable
        self.periodic = timetable.periodic
        self.can_be_scheduled = timetable.can_be_scheduled
        self.active_runs_limit = timetable.active_runs_limit

    @property
    def summary(self) -> str:
        return f"Asset or {self.timetable.summary}"

    @property
    def description(self) -> str:
        from updraft.assets import describe_condition

        return (f"Triggered by assets ({describe_condition(self.condition_json)}) or "
                f"{self.timetable.description}")

    def serialize(self) -> dict[str, Any]:
        return {"type": "asset_or_time", "condition": self.condition_json,
                "timetable": serialize_timetable(self.timetable)}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> Timetable:
        return cls(timetable=deserialize_timetable(data["timetable"]), assets=data["condition"])

    def _key(self) -> tuple:
        return (*super()._key(), self.timetable)

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        return self.timetable.infer_manual_data_interval(run_after=run_after)

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        return next_dagrun_info_at(self.timetable,
                                   last_automated_data_interval=last_automated_data_interval,
                                   restriction=restriction, now=now or utcnow())

    def generate_run_id(self, *, run_type: Any, logical_date: datetime,
                        data_interval: DataInterval | None = None, **extra: Any) -> str:
        return self.timetable.generate_run_id(run_type=run_type, logical_date=logical_date,
                                              data_interval=data_interval, **extra)


class AssetAndTimeSchedule(AssetOrTimeSchedule):
    """A time-gated asset schedule, which Airflow lacks: each time of ``timetable`` starts a
    run only once the assets' condition holds on events recorded since the previous run.
    A time whose condition does not hold yet waits for the events; times passing meanwhile
    fold into that one run (ADR 10)."""

    gated_by_time = True

    @property
    def summary(self) -> str:
        return f"Asset and {self.timetable.summary}"

    @property
    def description(self) -> str:
        from updraft.assets import describe_condition

        return (f"{self.timetable.description}, once the assets have events "
                f"({describe_condition(self.condition_json)})")

    def serialize(self) -> dict[str, Any]:
        return {**super().serialize(), "type": "asset_and_time"}


# -- building and storing timetables -----------------------------------------------------------


def _builtin_class(kind: str) -> type[Timetable]:
    """The class of a built-in timetable type, as registered in ``updraft.timetables``."""
    from updraft.plugins.registry import ExtensionError, load

    try:
        cls = load(TIMETABLES_GROUP, kind)
    except ExtensionError as exc:
        raise ScheduleError(f"cannot deserialize {kind} timetable: {exc} (is Updraft "
                            "installed? pip install -e . refreshes its entry points)") from None
    if cls is not _BUILTIN_TYPES[kind]:
        raise ScheduleError(f"the {kind} timetable is registered as {cls!r}, not Updraft's "
                            f"{_BUILTIN_TYPES[kind].__qualname__}")
    return cls


def _unknown_preset(schedule: str) -> ScheduleError:
    message = f"unknown preset; use one of {', '.join(PRESETS)}"
    close = difflib.get_close_matches(schedule, PRESETS, n=1)
    if close:
        message += f" (did you mean {close[0]}?)"
    return ScheduleError(f"invalid schedule {schedule!r}: {message}")


def create_timetable(schedule: Any, timezone: Any = "UTC") -> Timetable:
    """The timetable for what a DAG gives as ``schedule``; ScheduleError if it cannot be one."""
    if isinstance(schedule, Timetable):
        return schedule
    if schedule is None:
        return NullTimetable()
    if isinstance(schedule, str):
        text = " ".join(schedule.split())
        if not text:
            raise ScheduleError("invalid schedule '': empty; use None for a DAG that is only "
                                "triggered")
        if text == "@once":
            return OnceTimetable()
        if text == "@continuous":
            return ContinuousTimetable()
        if text.startswith("@") and text not in CRON_PRESETS:
            raise _unknown_preset(schedule)
        return CronDataIntervalTimetable(text, timezone)
    if isinstance(schedule, (timedelta, relativedelta)):
        return DeltaDataIntervalTimetable(schedule)
    from updraft.assets import as_condition

    if as_condition(schedule) is not None:
        return AssetTriggeredTimetable(schedule)
    if isinstance(schedule, (list, tuple)):
        wrong = [s for s in schedule if not _is_asset_like(s)]
        if not schedule or wrong:
            what = (f"holds {type(wrong[0]).__name__} {wrong[0]!r}" if wrong else "is empty")
            raise ScheduleError(f"a schedule {type(schedule).__name__} must list assets or "
                                f"asset aliases; this one {what}")
    raise ScheduleError("schedule must be a cron string, a preset, a timedelta, a Timetable, "
                        "assets (a list, & or |) or None, got "
                        f"{type(schedule).__name__}")


def _is_asset_like(value: Any) -> bool:
    from updraft.assets import BaseAsset

    return isinstance(value, BaseAsset)


_BUILTIN_TYPES: dict[str, type[Timetable]] = {
    "none": NullTimetable,
    "once": OnceTimetable,
    "continuous": ContinuousTimetable,
    "cron": CronDataIntervalTimetable,
    "delta": DeltaDataIntervalTimetable,
    "cron_trigger": CronTriggerTimetable,
    "asset": AssetTriggeredTimetable,
    "asset_or_time": AssetOrTimeSchedule,
    "asset_and_time": AssetAndTimeSchedule,
}
_ALLOWED_KEYS = {
    "none": {"type"},
    "once": {"type"},
    "continuous": {"type"},
    "cron": {"type", "expression", "timezone"},
    "delta": {"type", "timedelta", "relativedelta"},
    "custom": {"type", "class", "data"},
    "cron_trigger": {"type", "expression", "timezone", "interval", "run_immediately"},
    "asset": {"type", "condition"},
    "asset_or_time": {"type", "condition", "timetable"},
    "asset_and_time": {"type", "condition", "timetable"},
}
#: The serialized form of a registered timetable: ``{"__type": name, "data": serialize()}``.
REGISTERED_KEYS = {"__type", "data"}
TIMETABLES_GROUP = "timetables"


# -- registered (plugin) timetables ------------------------------------------------------------


def _pendulum_or_none():
    try:
        import pendulum
    except ImportError:
        return None
    return pendulum


def _to_airflow(value: datetime | None) -> datetime | None:
    """An aware datetime as pendulum's DateTime in UTC, which Airflow-style timetables expect
    (``.add()``, ``DateTime.combine``...); unchanged when pendulum is not installed."""
    pendulum = _pendulum_or_none()
    if value is None or pendulum is None:
        return value
    return pendulum.instance(_plain_utc(value), tz="UTC")


def _from_airflow_interval(interval: Any) -> DataInterval:
    return DataInterval(_as_utc(interval.start), _as_utc(interval.end))


def _from_airflow_info(info: Any) -> DagRunInfo | None:
    if info is None:
        return None
    return DagRunInfo(run_after=_as_utc(info.run_after),
                      data_interval=_from_airflow_interval(info.data_interval))


class RegisteredTimetable(Timetable):
    """A timetable class from the registry (entry point ``updraft.timetables`` or an
    ``AirflowPlugin.timetables`` list), as the scheduler and the web use it.

    It delegates to the class, giving Airflow-style classes (whose ``next_dagrun_info`` takes
    no ``now``) pendulum datetimes as Airflow does, and turning what they return into plain
    UTC datetimes; an error of the class is a ScheduleError naming it.
    """

    def __init__(self, name: str, timetable: Timetable) -> None:
        self.name = name
        self.wrapped = timetable
        self._airflow_style = not _accepts_now(type(timetable))

    # What the class says about itself.

    @property
    def summary(self) -> str:  # type: ignore[override]
        return str(self.wrapped.summary)

    @property
    def description(self) -> str:  # type: ignore[override]
        return str(self.wrapped.description)

    @property
    def periodic(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.wrapped, "periodic", False))

    @property
    def can_be_scheduled(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.wrapped, "can_be_scheduled", True))

    @property
    def run_ordering(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(getattr(self.wrapped, "run_ordering", Timetable.run_ordering))

    @property
    def active_runs_limit(self) -> int | None:  # type: ignore[override]
        return getattr(self.wrapped, "active_runs_limit", None)

    def validate(self) -> None:
        self._call("validate")

    def serialize(self) -> dict[str, Any]:
        return self.wrapped.serialize()

    def _call(self, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.wrapped, method)(**kwargs)
        except ScheduleError:
            raise
        except Exception as exc:  # noqa: BLE001  (the class is plugin code: say which failed)
            cls = type(self.wrapped)
            raise ScheduleError(f"timetable {self.name!r} ({cls.__module__}.{cls.__qualname__})"
                                f".{method} failed: {type(exc).__name__}: {exc}") from exc

    # Computing runs.

    def next_dagrun_info(self, *, last_automated_data_interval: DataInterval | None,
                         restriction: TimeRestriction,
                         now: datetime | None = None) -> DagRunInfo | None:
        if self._airflow_style:
            last = last_automated_data_interval
            if last is not None:
                last = DataInterval(_to_airflow(last.start), _to_airflow(last.end))
            restriction = TimeRestriction(_to_airflow(restriction.earliest),
                                          _to_airflow(restriction.latest), restriction.catchup)
            info = self._call("next_dagrun_info", last_automated_data_interval=last,
                              restriction=restriction)
        else:
            info = self._call("next_dagrun_info",
                              last_automated_data_interval=last_automated_data_interval,
                              restriction=restriction, now=utcnow() if now is None else now)
        try:
            return _from_airflow_info(info)
        except (ScheduleError, AttributeError, TypeError) as exc:
            raise ScheduleError(f"timetable {self.name!r} returned {info!r} from "
                                f"next_dagrun_info: {exc}") from None

    def infer_manual_data_interval(self, *, run_after: datetime) -> DataInterval:
        at = _to_airflow(run_after) if self._airflow_style else run_after
        interval = self._call("infer_manual_data_interval", run_after=at)
        try:
            return _from_airflow_interval(interval)
        except (ScheduleError, AttributeError, TypeError) as exc:
            raise ScheduleError(f"timetable {self.name!r} returned {interval!r} from "
                                f"infer_manual_data_interval: {exc}") from None

    def generate_run_id(self, *, run_type: Any, logical_date: datetime,
                        data_interval: DataInterval | None = None, **extra: Any) -> str:
        return self._call("generate_run_id", run_type=run_type, logical_date=logical_date,
                          data_interval=data_interval, **extra)

    def _key(self) -> tuple:
        import json

        return (self.name, json.dumps(self.wrapped.serialize(), sort_keys=True, default=str))

    def __repr__(self) -> str:
        return f"RegisteredTimetable({self.name!r}, {self.wrapped!r})"


def registered_timetable_name(timetable: Timetable) -> str | None:
    """The name ``timetable``'s class is registered under, or None if it is not."""
    if isinstance(timetable, RegisteredTimetable):
        return timetable.name
    from updraft.plugins import registry

    return registry.find_name(TIMETABLES_GROUP, type(timetable))


def how_to_register(what: str) -> str:
    """The sentence that says how to register the timetable class ``what``."""
    from updraft.plugins.folder import plugins_folder

    return (f"register {what}: an entry point in the group updraft.{TIMETABLES_GROUP} "
            f"([project.entry-points.\"updraft.{TIMETABLES_GROUP}\"] <name> = "
            f"\"<module>:<Class>\" in the package's pyproject.toml), or an AirflowPlugin with "
            f"timetables = [<Class>] in the plugins folder ({plugins_folder()}); then parse the "
            "DAG file again")


def load_registered_timetable(name: str, data: Any) -> Timetable:
    """The registered timetable ``name`` rebuilt from its ``serialize()`` data; ScheduleError
    if it is not registered on this node or cannot be rebuilt."""
    from updraft.plugins.registry import ExtensionError, load

    if not isinstance(data, dict):
        raise ScheduleError(f"cannot deserialize timetable {name!r}: its data must be an "
                            f"object, got {type(data).__name__}")
    try:
        cls = load(TIMETABLES_GROUP, name)
    except ExtensionError as exc:
        raise ScheduleError(f"cannot deserialize timetable {name!r}: {exc}; "
                            + how_to_register(f"the class of {name!r}")) from None
    if cls in _BUILTIN_TYPES.values():
        return cls.deserialize(data)
    try:
        timetable = cls.deserialize(data)
    except Exception as exc:  # noqa: BLE001  (plugin code)
        raise ScheduleError(f"cannot deserialize timetable {name!r} "
                            f"({cls.__module__}.{cls.__qualname__}) from {data!r}: "
                            f"{type(exc).__name__}: {exc}") from None
    return RegisteredTimetable(name, timetable)


def serialize_timetable(timetable: Timetable) -> dict[str, Any]:
    """The JSON-safe form of any timetable: a built-in's own form, a registered class as
    ``{"__type": name, "data": serialize()}``, any other class by class path (``custom``,
    which nodes keep as an UnresolvedTimetable and never import)."""
    if type(timetable) in _BUILTIN_TYPES.values():
        return timetable.serialize()
    name = registered_timetable_name(timetable)
    if name is not None:
        return {"__type": name, "data": timetable.serialize()}
    cls = type(timetable)
    return {"type": "custom", "class": f"{cls.__module__}.{cls.__qualname__}",
            "data": timetable.serialize()}


def deserialize_timetable(data: dict[str, Any]) -> Timetable:
    """Rebuild a timetable from ``serialize_timetable`` (or a built-in's ``serialize``).

    Built-in and registered classes come from the registry; a ``custom`` class path is
    imported (user code: the scheduler and the web never come here for one, see
    ``updraft.serialization``)."""
    if not isinstance(data, dict):
        raise ScheduleError(f"cannot deserialize a timetable from {type(data).__name__}")
    if "__type" in data:
        unknown = set(data) - REGISTERED_KEYS
        if unknown or not isinstance(data["__type"], str):
            raise ScheduleError(f"cannot deserialize registered timetable: expected "
                                f"{{\"__type\": name, \"data\": {{...}}}}, got fields "
                                f"{', '.join(sorted(data))}")
        return load_registered_timetable(data["__type"], data.get("data") or {})
    kind = data.get("type")
    if kind not in _ALLOWED_KEYS:
        raise ScheduleError(f"cannot deserialize timetable: unknown type {kind!r}; expected "
                            f"one of {', '.join(sorted(_ALLOWED_KEYS))}")
    unknown = set(data) - _ALLOWED_KEYS[kind]
    if unknown:
        raise ScheduleError(f"cannot deserialize {kind} timetable: unknown fields "
                            f"{', '.join(sorted(unknown))}")
    if kind != "custom":
        return _builtin_class(kind).deserialize(data)
    path = data.get("class") or ""
    module_name, _, qualname = path.rpartition(".")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ScheduleError(f"cannot deserialize timetable {path!r}: {exc}") from None
    if not (isinstance(target, type) and issubclass(target, Timetable)):
        raise ScheduleError(f"cannot deserialize timetable {path!r}: not a Timetable subclass")
    return target.deserialize(data.get("data") or {})
