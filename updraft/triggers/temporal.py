"""Time triggers: fire at a moment (``DateTimeTrigger``) or after a delta from when the task
deferred (``TimeDeltaTrigger``). Each is one ``asyncio.sleep`` on the triggerer's loop."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from updraft.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent
from updraft.utils.timezone import utcnow

#: Longest single sleep: a moment far away is approached in steps, so a clock jump (a
#: suspended VM) costs at most this much lateness.
MAX_SLEEP = 60.0


class DateTimeTrigger(BaseTrigger):
    """Fires at ``moment`` (an aware datetime) with the moment as its payload; with
    ``end_from_trigger`` the task ends successfully without resuming on a worker."""

    def __init__(self, moment: datetime, *, end_from_trigger: bool = False) -> None:
        super().__init__()
        if not isinstance(moment, datetime):
            raise TypeError(f"Expected datetime.datetime type for moment. Got {type(moment)}")
        if moment.tzinfo is None:
            raise ValueError("You cannot pass naive datetimes")
        self.moment = moment
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.temporal.DateTimeTrigger",
                {"moment": self.moment, "end_from_trigger": self.end_from_trigger})

    async def run(self):
        while True:
            remaining = (self.moment - utcnow()).total_seconds()
            if remaining <= 0:
                break
            await asyncio.sleep(min(remaining, MAX_SLEEP))
        self.log.info("Trigger fired: the moment %s has come", self.moment)
        if self.end_from_trigger:
            yield TaskSuccessEvent(payload=self.moment)
        else:
            yield TriggerEvent(self.moment)


class TimeDeltaTrigger(DateTimeTrigger):
    """Fires ``delta`` after it was created (when the task deferred)."""

    def __init__(self, delta: timedelta, *, end_from_trigger: bool = False) -> None:
        super().__init__(moment=utcnow() + delta, end_from_trigger=end_from_trigger)


__all__ = ["DateTimeTrigger", "TimeDeltaTrigger"]
