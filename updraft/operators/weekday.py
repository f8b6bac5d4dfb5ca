"""BranchDayOfWeekOperator: follows one branch on some days of the week."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from updraft.exceptions import RemovedInUpdraftWarning
from updraft.operators.branch import BaseBranchOperator
from updraft.utils.weekday import WeekDay


class BranchDayOfWeekOperator(BaseBranchOperator):
    """Follows ``follow_task_ids_if_true`` if today (in the DAG's timezone) or the logical
    date is one of ``week_day``."""

    def __init__(self, *, follow_task_ids_if_true: str | Iterable[str],
                 follow_task_ids_if_false: str | Iterable[str],
                 week_day: str | WeekDay | Iterable[str] | Iterable[WeekDay],
                 use_task_logical_date: bool = False, use_task_execution_day: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_true = follow_task_ids_if_true
        self.follow_task_ids_if_false = follow_task_ids_if_false
        self.week_day = week_day
        self.use_task_logical_date = use_task_logical_date
        if use_task_execution_day:
            self.use_task_logical_date = use_task_execution_day
            warnings.warn("Parameter ``use_task_execution_day`` is deprecated. Use "
                          "``use_task_logical_date``.", RemovedInUpdraftWarning, stacklevel=2)
        self._week_day_num = WeekDay.validate_week_day(week_day)

    def _now(self) -> datetime:
        from updraft.schedules import parse_timezone, utcnow

        return utcnow().astimezone(parse_timezone(self.dag.timezone)).replace(tzinfo=None)

    def choose_branch(self, context: dict) -> str | Iterable[str]:
        now = context["logical_date"] if self.use_task_logical_date else self._now()
        if now.isoweekday() in self._week_day_num:
            return self.follow_task_ids_if_true
        return self.follow_task_ids_if_false


__all__ = ["BranchDayOfWeekOperator"]
