"""BranchDateTimeOperator: follows one branch if now (or the logical date) is in a window."""

from __future__ import annotations

import datetime
import warnings
from collections.abc import Iterable
from typing import Any

from updraft.exceptions import RemovedInUpdraftWarning, UpdraftException
from updraft.operators.branch import BaseBranchOperator


def target_times_as_dates(base_date: datetime.datetime,
                          lower: datetime.datetime | datetime.time | None,
                          upper: datetime.datetime | datetime.time | None):
    """Lower and upper bounds as datetimes on ``base_date``'s day (an upper time before the
    lower one means the next day)."""
    if isinstance(lower, datetime.datetime) and isinstance(upper, datetime.datetime):
        return lower, upper
    if lower is not None and isinstance(lower, datetime.time):
        lower = datetime.datetime.combine(base_date, lower)
    if upper is not None and isinstance(upper, datetime.time):
        upper = datetime.datetime.combine(base_date, upper)
    if lower is None or upper is None:
        return lower, upper
    if upper < lower:
        upper += datetime.timedelta(days=1)
    return lower, upper


def _aware(value: datetime.datetime | None, tz: Any) -> datetime.datetime | None:
    from updraft.schedules import parse_timezone

    if value is None or value.utcoffset() is not None:
        return value
    return value.replace(tzinfo=parse_timezone(tz))


class BranchDateTimeOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` when ``target_lower <= now <= target_upper``."""

    def __init__(self, *, follow_task_ids_if_true: str | Iterable[str],
                 follow_task_ids_if_false: str | Iterable[str],
                 target_lower: datetime.datetime | datetime.time | None,
                 target_upper: datetime.datetime | datetime.time | None,
                 use_task_logical_date: bool = False, use_task_execution_date: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if target_lower is None and target_upper is None:
            raise UpdraftException("Both target_upper and target_lower are None. At least one "
                                   "must be defined to be compared to the current datetime")
        self.target_lower = target_lower
        self.target_upper = target_upper
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.use_task_logical_date = use_task_logical_date
        if use_task_execution_date:
            self.use_task_logical_date = use_task_execution_date
            warnings.warn("Parameter ``use_task_execution_date`` is deprecated. Use "
                          "``use_task_logical_date``.", RemovedInUpdraftWarning, stacklevel=2)

    def _now(self) -> datetime.datetime:
        from updraft.schedules import utcnow

        return utcnow()

    def choose_branch(self, context: dict) -> str | Iterable[str]:
        now = context["logical_date"] if self.use_task_logical_date else self._now()
        lower, upper = target_times_as_dates(now, self.target_lower, self.target_upper)
        lower = _aware(lower, self.dag.timezone)
        upper = _aware(upper, self.dag.timezone)
        if upper is not None and upper < now:
            return self.follow_task_ids_if_false
        if lower is not None and lower > now:
            return self.follow_task_ids_if_false
        return self.follow_task_ids_if_true


__all__ = ["BranchDateTimeOperator", "target_times_as_dates"]
