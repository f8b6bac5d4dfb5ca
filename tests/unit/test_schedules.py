"""Timetables: Airflow 2 data-interval semantics, DST, catchup, manual runs, errors, JSON."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import FR, relativedelta

from updraft.schedules import (
    ContinuousTimetable,
    CronDataIntervalTimetable,
    DagRunInfo,
    DataInterval,
    DeltaDataIntervalTimetable,
    NullTimetable,
    OnceTimetable,
    ScheduleError,
    TimeRestriction,
    Timetable,
    coerce_datetime,
    create_timetable,
    deserialize_timetable,
    next_dagrun_info_at,
    parse_timezone,
    serialize_timetable,
    timezone_name,
)

AMS = ZoneInfo("Europe/Amsterdam")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def schedule(timetable: Timetable, *, start: datetime | None, now: datetime,
             end: datetime | None = None, catchup: bool = True,
             limit: int = 50) -> list[DagRunInfo]:
    """Drive the timetable like the scheduler: create every run that is due at ``now``."""
    restriction = TimeRestriction(start, end, catchup)
    runs: list[DagRunInfo] = []
    last = None
    while len(runs) < limit:
        info = timetable.next_dagrun_info(last_automated_data_interval=last,
                                          restriction=restriction, now=now)
        if info is None or info.run_after > now:
            break
        runs.append(info)
        last = info.data_interval
    return runs


# -- cron --------------------------------------------------------------------------------------


def test_daily_cron_with_catchup_runs_every_complete_interval_from_start_date():
    runs = schedule(create_timetable("0 0 * * *"), start=utc(2024, 1, 1),
                    now=utc(2024, 1, 4, 12), catchup=True)
    assert [r.logical_date for r in runs] == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert runs[0].data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    assert all(r.run_after == r.data_interval.end for r in runs)


def test_interval_is_not_due_before_it_ends():
    timetable = create_timetable("@daily")
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2024, 1, 3), utc(2024, 1, 4)),
        restriction=TimeRestriction(utc(2024, 1, 1), None, True), now=utc(2024, 1, 4, 12))
    assert info.logical_date == utc(2024, 1, 4)
    assert info.run_after == utc(2024, 1, 5)  # later than now: the scheduler waits


def test_catchup_false_starts_with_latest_complete_interval():
    timetable = create_timetable("0 0 * * *")
    runs = schedule(timetable, start=utc(2024, 1, 1), now=utc(2024, 3, 10, 12), catchup=False)
    assert [r.data_interval for r in runs] == [DataInterval(utc(2024, 3, 9), utc(2024, 3, 10))]


def test_catchup_false_on_a_boundary_takes_the_interval_that_just_ended():
    timetable = create_timetable("0 * * * *")
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(utc(2024, 1, 1), None, False),
                                      now=utc(2024, 3, 10, 12))
    assert info.data_interval == DataInterval(utc(2024, 3, 10, 11), utc(2024, 3, 10, 12))


def test_catchup_false_skips_intervals_missed_while_paused():
    timetable = create_timetable("@daily")
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(utc(2024, 1, 1), utc(2024, 1, 2)),
        restriction=TimeRestriction(utc(2024, 1, 1), None, False), now=utc(2024, 2, 1, 6))
    assert info.logical_date == utc(2024, 1, 31)


def test_catchup_false_never_before_start_date():
    timetable = create_timetable("@daily")
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(utc(2024, 5, 1, 6), None, False),
                                      now=utc(2024, 4, 1))
    # The first aligned interval at or after the start date, due in the future.
    assert info.data_interval == DataInterval(utc(2024, 5, 2), utc(2024, 5, 3))


def test_start_date_off_schedule_is_aligned_to_the_next_cron_point():
    runs = schedule(create_timetable("0 6 * * *"), start=utc(2024, 1, 1, 7),
                    now=utc(2024, 1, 4))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 2, 6)]


def test_no_run_whose_logical_date_is_after_end_date():
    runs = schedule(create_timetable("@daily"), start=utc(2024, 1, 1), end=utc(2024, 1, 3),
                    now=utc(2024, 2, 1))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]


def test_no_start_date_with_catchup_means_no_run():
    timetable = create_timetable("@daily")
    assert timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(None, None, True),
                                      now=utc(2024, 1, 1)) is None


def test_next_dagrun_info_requires_aware_now():
    with pytest.raises(ScheduleError, match="timezone-aware"):
        create_timetable("@daily").next_dagrun_info(
            last_automated_data_interval=None,
            restriction=TimeRestriction(utc(2024, 1, 1), None, False), now=datetime(2024, 1, 1))


@pytest.mark.parametrize("preset, expected", [
    ("@hourly", [utc(2024, 1, 1, 0), utc(2024, 1, 1, 1), utc(2024, 1, 1, 2)]),
    ("@daily", [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]),
    ("@midnight", [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]),
    ("@weekly", [utc(2024, 1, 7), utc(2024, 1, 14), utc(2024, 1, 21)]),
    ("@monthly", [utc(2024, 1, 1), utc(2024, 2, 1), utc(2024, 3, 1)]),
    ("@quarterly", [utc(2024, 1, 1), utc(2024, 4, 1), utc(2024, 7, 1)]),
    ("@yearly", [utc(2024, 1, 1), utc(2025, 1, 1), utc(2026, 1, 1)]),
    ("@annually", [utc(2024, 1, 1), utc(2025, 1, 1), utc(2026, 1, 1)]),
])
def test_presets(preset, expected):
    timetable = create_timetable(preset)
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.summary == preset
    runs = schedule(timetable, start=utc(2024, 1, 1), now=utc(2030, 1, 1), limit=3)
    assert [r.logical_date for r in runs] == expected


def test_six_field_cron_has_seconds_last():
    runs = schedule(create_timetable("0 0 * * * 30"), start=utc(2024, 1, 1), now=utc(2024, 1, 3, 1))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 1, 0, 0, 30), utc(2024, 1, 2, 0, 0, 30)]


def test_cron_in_a_timezone_returns_utc():
    timetable = create_timetable("0 9 * * *", "America/New_York")
    runs = schedule(timetable, start=utc(2024, 1, 1), now=utc(2024, 1, 3, 15))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 1, 14), utc(2024, 1, 2, 14)]
    assert all(r.logical_date.tzinfo is UTC for r in runs)


# -- DST ---------------------------------------------------------------------------------------


def test_daily_cron_at_a_wall_time_that_does_not_exist():
    # 2024-03-31 02:00 does not exist in Amsterdam (the clock jumps 02:00 -> 03:00).
    timetable = create_timetable("0 2 * * *", "Europe/Amsterdam")
    runs = schedule(timetable, start=utc(2024, 3, 29, 1), now=utc(2024, 4, 2, 12))
    local = [r.logical_date.astimezone(AMS) for r in runs]
    assert [d.date() for d in local] == [date(2024, 3, 29), date(2024, 3, 30), date(2024, 3, 31),
                                         date(2024, 4, 1)]
    assert [d.hour for d in local] == [2, 2, 3, 2]  # the missing 02:00 runs at 03:00 CEST
    assert runs[2].logical_date == utc(2024, 3, 31, 1)
    for before, after in pairwise(runs):
        assert before.data_interval.end == after.data_interval.start  # no gap, no overlap
    assert runs[2].data_interval.end - runs[2].data_interval.start == timedelta(hours=23)


def test_daily_cron_keeps_local_time_across_dst():
    timetable = create_timetable("30 6 * * *", "Europe/Amsterdam")
    runs = schedule(timetable, start=utc(2024, 10, 25), now=utc(2024, 10, 29))
    assert [r.logical_date for r in runs] == [utc(2024, 10, 25, 4, 30), utc(2024, 10, 26, 4, 30),
                                              utc(2024, 10, 27, 5, 30)]


def test_hourly_cron_runs_in_both_occurrences_of_a_repeated_hour():
    timetable = create_timetable("30 * * * *", "Europe/Amsterdam")
    runs = schedule(timetable, start=utc(2024, 10, 26, 23, 30), now=utc(2024, 10, 27, 4))
    starts = [r.logical_date for r in runs]
    assert starts == [utc(2024, 10, 26, 23, 30), utc(2024, 10, 27, 0, 30),
                      utc(2024, 10, 27, 1, 30), utc(2024, 10, 27, 2, 30)]
    # 02:30 local happens twice: once in summer time, once in winter time.
    assert [s.astimezone(AMS).strftime("%H:%M%z") for s in starts[1:3]] == ["02:30+0200",
                                                                           "02:30+0100"]


def test_hourly_cron_across_spring_forward_has_no_duplicate():
    timetable = create_timetable("30 * * * *", "Europe/Amsterdam")
    runs = schedule(timetable, start=utc(2024, 3, 30, 23, 30), now=utc(2024, 3, 31, 4))
    assert [r.logical_date for r in runs] == [utc(2024, 3, 30, 23, 30), utc(2024, 3, 31, 0, 30),
                                              utc(2024, 3, 31, 1, 30), utc(2024, 3, 31, 2, 30)]


def test_daily_cron_in_repeated_hour_runs_once():
    timetable = create_timetable("0 2 * * *", "Europe/Amsterdam")
    runs = schedule(timetable, start=utc(2024, 10, 26), now=utc(2024, 10, 29))
    assert [r.logical_date for r in runs] == [utc(2024, 10, 26, 0), utc(2024, 10, 27, 1)]


# -- other timetables --------------------------------------------------------------------------


def test_timedelta_schedule_from_start_date():
    timetable = create_timetable(timedelta(hours=6))
    assert isinstance(timetable, DeltaDataIntervalTimetable)
    runs = schedule(timetable, start=utc(2024, 1, 1, 1), now=utc(2024, 1, 2))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 1, 1), utc(2024, 1, 1, 7),
                                              utc(2024, 1, 1, 13)]


def test_timedelta_catchup_false_runs_the_interval_ending_now():
    timetable = create_timetable(timedelta(hours=6))
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(utc(2024, 1, 1), None, False),
                                      now=utc(2024, 2, 1, 9))
    assert info.data_interval == DataInterval(utc(2024, 2, 1, 3), utc(2024, 2, 1, 9))


def test_relativedelta_schedule():
    runs = schedule(create_timetable(relativedelta(months=1)), start=utc(2024, 1, 15),
                    now=utc(2024, 5, 1))
    assert [r.logical_date for r in runs] == [utc(2024, 1, 15), utc(2024, 2, 15), utc(2024, 3, 15)]


def test_once_runs_once_at_start_date_even_without_catchup():
    timetable = create_timetable("@once")
    assert isinstance(timetable, OnceTimetable)
    runs = schedule(timetable, start=utc(2024, 1, 1, 5), now=utc(2025, 1, 1), catchup=False)
    assert runs == [DagRunInfo.exact(utc(2024, 1, 1, 5))]
    assert schedule(timetable, start=None, now=utc(2025, 1, 1)) == []


def test_none_never_runs():
    timetable = create_timetable(None)
    assert isinstance(timetable, NullTimetable)
    assert not timetable.can_be_scheduled
    assert timetable.summary == "None"
    assert schedule(timetable, start=utc(2024, 1, 1), now=utc(2025, 1, 1)) == []
    assert list(timetable.iter_dagrun_infos_between(utc(2024, 1, 1), utc(2024, 2, 1))) == []


def test_continuous_runs_back_to_back():
    timetable = create_timetable("@continuous")
    assert isinstance(timetable, ContinuousTimetable)
    assert timetable.active_runs_limit == 1
    restriction = TimeRestriction(utc(2024, 1, 1), None, False)
    first = timetable.next_dagrun_info(last_automated_data_interval=None,
                                       restriction=restriction, now=utc(2024, 1, 2))
    assert first.data_interval == DataInterval(utc(2024, 1, 1), utc(2024, 1, 2))
    second = timetable.next_dagrun_info(last_automated_data_interval=first.data_interval,
                                        restriction=restriction, now=utc(2024, 1, 2, 0, 5))
    assert second.data_interval == DataInterval(utc(2024, 1, 2), utc(2024, 1, 2, 0, 5))
    assert second.run_after == utc(2024, 1, 2, 0, 5)


def test_an_existing_timetable_is_kept():
    timetable = CronDataIntervalTimetable("0 3 * * *", "Asia/Tokyo")
    assert create_timetable(timetable) is timetable


# -- manual runs and backfill ------------------------------------------------------------------


def test_manual_interval_of_cron_is_last_complete_interval():
    timetable = create_timetable("@daily")
    assert timetable.infer_manual_data_interval(run_after=utc(2024, 1, 25, 1)) == DataInterval(
        utc(2024, 1, 24), utc(2024, 1, 25))
    # On a boundary the interval ends there.
    assert timetable.infer_manual_data_interval(run_after=utc(2024, 1, 25)) == DataInterval(
        utc(2024, 1, 24), utc(2024, 1, 25))


def test_manual_interval_of_delta_ends_at_run_after():
    timetable = create_timetable(timedelta(hours=2))
    assert timetable.infer_manual_data_interval(run_after=utc(2024, 1, 25, 1, 7)) == DataInterval(
        utc(2024, 1, 24, 23, 7), utc(2024, 1, 25, 1, 7))


@pytest.mark.parametrize("schedule_value", [None, "@once", "@continuous"])
def test_manual_interval_of_unscheduled_is_empty(schedule_value):
    at = utc(2024, 1, 25, 1, 7)
    assert create_timetable(schedule_value).infer_manual_data_interval(run_after=at) == (
        DataInterval(at, at))


def test_iter_between_yields_every_logical_date_in_the_closed_range():
    timetable = create_timetable("0 12 * * *")
    infos = list(timetable.iter_dagrun_infos_between(utc(2024, 1, 1), utc(2024, 1, 3, 12)))
    assert [i.logical_date for i in infos] == [utc(2024, 1, 1, 12), utc(2024, 1, 2, 12),
                                               utc(2024, 1, 3, 12)]
    assert infos[-1].data_interval.end == utc(2024, 1, 4, 12)


def test_iter_between_for_delta_and_continuous():
    delta = create_timetable(timedelta(days=2))
    assert [i.logical_date for i in delta.iter_dagrun_infos_between(
        utc(2024, 1, 1), utc(2024, 1, 6))] == [utc(2024, 1, 1), utc(2024, 1, 3), utc(2024, 1, 5)]
    assert list(create_timetable("@continuous").iter_dagrun_infos_between(
        utc(2024, 1, 1), utc(2024, 1, 6))) == []


class AirflowStyleTimetable(Timetable):
    """A custom timetable written for Airflow: no ``now`` argument."""

    summary = "custom"

    def __init__(self, hour: int = 0) -> None:
        self.hour = hour

    def next_dagrun_info(self, *, last_automated_data_interval, restriction):
        start = (last_automated_data_interval.end if last_automated_data_interval
                 else restriction.earliest)
        if restriction.latest is not None and start > restriction.latest:
            return None
        return DagRunInfo.interval(start, start + timedelta(days=1))

    def serialize(self):
        return {"hour": self.hour}

    @classmethod
    def deserialize(cls, data):
        return cls(data["hour"])


def test_custom_timetable_without_now_argument():
    timetable = AirflowStyleTimetable()
    info = next_dagrun_info_at(timetable, last_automated_data_interval=None,
                               restriction=TimeRestriction(utc(2024, 1, 1), None, True),
                               now=utc(2024, 1, 2))
    assert info.logical_date == utc(2024, 1, 1)
    assert len(list(timetable.iter_dagrun_infos_between(utc(2024, 1, 1), utc(2024, 1, 3)))) == 3


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, message", [
    ("61 * * * *", ("invalid schedule '61 * * * *': minute must be in 0-59 "
                    "(cron fields: minute hour day-of-month month day-of-week)")),
    ("0 24 * * *", ("invalid schedule '0 24 * * *': hour must be in 0-23 "
                    "(cron fields: minute hour day-of-month month day-of-week)")),
    ("0 0 0 * *", ("invalid schedule '0 0 0 * *': day-of-month must be in 1-31 "
                   "(cron fields: minute hour day-of-month month day-of-week)")),
    ("0 0 * 13 *", ("invalid schedule '0 0 * 13 *': month must be in 1-12 or jan-dec "
                    "(cron fields: minute hour day-of-month month day-of-week)")),
    ("0 0 * * funday", ("invalid schedule '0 0 * * funday': day-of-week must be in 0-7 or "
                        "sun-sat (cron fields: minute hour day-of-month month day-of-week)")),
    ("*/0 * * * *", ("invalid schedule '*/0 * * * *': minute step must be a positive integer, "
                     "got '0' (cron fields: minute hour day-of-month month day-of-week)")),
    ("0 0 * * * 60", ("invalid schedule '0 0 * * * 60': second must be in 0-59 "
                      "(cron fields: minute hour day-of-month month day-of-week second)")),
    ("0 0 *", ("invalid schedule '0 0 *': a cron expression has 5 fields (minute hour "
               "day-of-month month day-of-week) or 6 (then the sixth is the second), got 3")),
    ("0 0 30 2 *", ("invalid schedule '0 0 30 2 *': it never matches a date")),
    ("", ("invalid schedule '': empty; use None for a DAG that is only triggered")),
])
def test_cron_errors_are_precise(value, message):
    with pytest.raises(ScheduleError) as err:
        create_timetable(value)
    assert str(err.value) == message
    assert isinstance(err.value, ValueError)


def test_unknown_preset_lists_presets_and_suggests():
    with pytest.raises(ScheduleError) as err:
        create_timetable("@dayly")
    assert str(err.value) == (
        "invalid schedule '@dayly': unknown preset; use one of @once, @continuous, @hourly, "
        "@daily, @weekly, @monthly, @quarterly, @yearly, @annually, @midnight "
        "(did you mean @daily?)")


@pytest.mark.parametrize("value, name", [(1, "int"), (True, "bool")])
def test_wrong_schedule_type(value, name):
    with pytest.raises(ScheduleError) as err:
        create_timetable(value)
    assert str(err.value) == ("schedule must be a cron string, a preset, a timedelta, a "
                              f"Timetable, assets (a list, & or |) or None, got {name}")


@pytest.mark.parametrize("value, what", [(["a"], "holds str 'a'"), ([], "is empty")])
def test_schedule_list_must_list_assets(value, what):
    with pytest.raises(ScheduleError) as err:
        create_timetable(value)
    assert str(err.value) == f"a schedule list must list assets or asset aliases; this one {what}"


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(hours=-1), relativedelta(months=-1)])
def test_non_positive_delta(delta):
    with pytest.raises(ScheduleError, match="the interval must be positive"):
        create_timetable(delta)


# -- serialization -----------------------------------------------------------------------------


@pytest.mark.parametrize("timetable", [
    NullTimetable(), OnceTimetable(), ContinuousTimetable(),
    CronDataIntervalTimetable("@daily", "UTC"),
    CronDataIntervalTimetable("0 2 * * 1-5", "Europe/Amsterdam"),
    DeltaDataIntervalTimetable(timedelta(hours=1, seconds=30)),
    DeltaDataIntervalTimetable(relativedelta(months=1, weekday=FR(-1))),
])
def test_serialize_round_trip_through_json(timetable):
    data = json.loads(json.dumps(timetable.serialize()))
    again = deserialize_timetable(data)
    assert again == timetable
    assert again.summary == timetable.summary
    assert deserialize_timetable(json.loads(json.dumps(serialize_timetable(timetable)))) == timetable


def test_round_tripped_cron_schedules_the_same():
    timetable = CronDataIntervalTimetable("0 2 * * *", "Europe/Amsterdam")
    again = deserialize_timetable(json.loads(json.dumps(timetable.serialize())))
    start, now = utc(2024, 3, 28), utc(2024, 4, 2)
    assert schedule(again, start=start, now=now) == schedule(timetable, start=start, now=now)


def test_custom_timetable_round_trip_by_class_path():
    data = serialize_timetable(AirflowStyleTimetable(7))
    assert data == {"type": "custom", "class": f"{__name__}.AirflowStyleTimetable",
                    "data": {"hour": 7}}
    again = deserialize_timetable(json.loads(json.dumps(data)))
    assert isinstance(again, AirflowStyleTimetable) and again.hour == 7


@pytest.mark.parametrize("data, message", [
    ({"type": "weekly"}, "cannot deserialize timetable: unknown type 'weekly'"),
    ({"type": "cron", "expression": "@daily", "tz": "UTC"},
     "cannot deserialize cron timetable: unknown fields tz"),
    ({"type": "custom", "class": "json.JSONDecoder", "data": {}},
     "cannot deserialize timetable 'json.JSONDecoder': not a Timetable subclass"),
])
def test_deserialize_rejects_bad_input(data, message):
    with pytest.raises(ScheduleError) as err:
        deserialize_timetable(data)
    assert str(err.value).startswith(message)


def test_descriptions():
    assert create_timetable("@daily").description == "At 00:00 every day"
    assert create_timetable("30 6 * * 1", "Europe/Amsterdam").description == (
        "At 06:30 every Monday (Europe/Amsterdam)")
    assert create_timetable(timedelta(hours=6)).description == "Every 6 hours"
    assert create_timetable(timedelta(days=1)).summary == "1 day, 0:00:00"


# -- dates and zones ---------------------------------------------------------------------------


def test_coerce_datetime_reads_naive_values_in_the_dag_timezone():
    assert coerce_datetime(datetime(2024, 7, 1, 12), "Europe/Amsterdam") == utc(2024, 7, 1, 10)
    assert coerce_datetime(datetime(2024, 1, 1, 12), AMS) == utc(2024, 1, 1, 11)
    assert coerce_datetime("2024-07-01", "Europe/Amsterdam") == utc(2024, 6, 30, 22)
    assert coerce_datetime("2024-07-01T12:00:00+02:00", "UTC") == utc(2024, 7, 1, 10)
    assert coerce_datetime(date(2024, 1, 2), "UTC") == utc(2024, 1, 2)
    assert coerce_datetime(None, "UTC") is None
    aware = coerce_datetime(datetime(2024, 7, 1, 12, tzinfo=AMS), "UTC")
    assert aware == utc(2024, 7, 1, 10) and aware.tzinfo is UTC


def test_coerce_datetime_errors():
    with pytest.raises(ScheduleError) as err:
        coerce_datetime("2024-13-01", "UTC")
    assert str(err.value) == ("invalid date '2024-13-01': expected ISO 8601 such as "
                              "'2024-01-31' or '2024-01-31T06:00:00+01:00'")
    with pytest.raises(ScheduleError, match="got int"):
        coerce_datetime(20240101, "UTC")


class PendulumLikeZone(tzinfo):
    """A tzinfo with pendulum's ``.name``."""

    def __init__(self, name):
        self.name = name

    def utcoffset(self, dt):
        return ZoneInfo(self.name).utcoffset(dt)


def test_parse_timezone():
    assert parse_timezone("Europe/Amsterdam") == AMS
    assert parse_timezone("utc") == ZoneInfo("UTC")
    assert parse_timezone(UTC) == ZoneInfo("UTC")
    assert parse_timezone(PendulumLikeZone("Asia/Tokyo")) == ZoneInfo("Asia/Tokyo")
    fixed = parse_timezone("+05:30")
    assert fixed.utcoffset(None) == timedelta(hours=5, minutes=30)
    assert timezone_name(fixed) == "+05:30"
    assert timezone_name(AMS) == "Europe/Amsterdam"
    with pytest.raises(ScheduleError) as err:
        parse_timezone("Europe/Amsterdm")
    assert str(err.value) == ("unknown timezone 'Europe/Amsterdm': not a name from the IANA time "
                              "zone database (such as 'UTC', 'Europe/Amsterdam' or "
                              "'America/New_York')")


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys, updraft.schedules, updraft.templating; "
            "heavy = {'sqlalchemy', 'dask', 'distributed', 'flask', 'nats'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
