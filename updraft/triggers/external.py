"""Triggers that wait for other runs: a DAG run reaching a state (``DagStateTrigger``,
used by ``TriggerDagRunOperator(wait_for_completion=True, deferrable=True)``) and another
DAG's tasks or run reaching a state (``WorkflowTrigger``, used by
``ExternalTaskSensor(deferrable=True)``).

They are woken by the state events the schedulers publish on NATS (``P.evt.run.*``,
``P.evt.ti.*``), not by polling: each looks at the store once when it starts (the state may
be reached already), then again only when an event about the awaited DAG arrives. The store
stays the truth (ADR 1): a lost event costs at most a minute (a slow safety check); without
NATS the trigger looks every ``poll_interval``. They read the store through
the task services the triggerer gives them (``self.task_services``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from updraft.triggers.base import BaseTrigger, TriggerEvent
from updraft.triggers.nats import decode, listen, state_subject


#: Seconds between two looks at the store while state events arrive: only a safety check.
SAFETY_CHECK = 60.0
#: After a state event, looks again after 0.5, 1, 2, 4 and 8 s (the event may come first).
RECHECK_FIRST, RECHECK_LAST = 0.5, 8.0


class _StateWokenTrigger(BaseTrigger):
    """Check, then wait for a state event about ``dag_id`` (or ``poll_interval``), repeat."""

    kind = "run"  # which state events wake it: "run" or "ti"
    dag_id: str
    poll_interval: float

    def check(self) -> dict[str, Any] | None:
        """The event's payload if the awaited state is reached, else None (a thread)."""
        raise NotImplementedError

    def wakes(self, event: dict[str, Any]) -> bool:
        """Whether this state event may change the answer of ``check``."""
        return isinstance(event, dict) and event.get("dag_id") == self.dag_id

    async def run(self):
        async with contextlib.AsyncExitStack() as stack:
            queue = None
            try:
                queue = await stack.enter_async_context(listen(state_subject(self.kind)))
            except Exception as exc:  # noqa: BLE001  (the store check still works)
                self.log.warning("No NATS for state events (%s): checking every %s s",
                                 exc, self.poll_interval)
            recheck = None  # seconds to the next look after an event that changed nothing
            while True:
                payload = await asyncio.to_thread(self.check)
                if payload is not None:
                    yield TriggerEvent(payload)
                    return
                woken = await self._next_event(queue, recheck)
                # An event may arrive before the change it announces is committed: after
                # one, look again soon (0.5 s, doubling to 8 s) rather than only at the
                # safety check.
                if woken:
                    recheck = RECHECK_FIRST
                elif recheck is not None:
                    recheck = recheck * 2 if recheck < RECHECK_LAST else None

    async def _next_event(self, queue, recheck: float | None = None) -> bool:
        """Until a state event about the DAG arrives (True), or the next look is due:
        ``recheck`` seconds after an event, else every ``poll_interval`` without NATS, at
        most once a minute with it."""
        loop = asyncio.get_running_loop()
        interval = self.poll_interval if queue is None else max(self.poll_interval,
                                                                SAFETY_CHECK)
        if recheck is not None:
            interval = min(interval, recheck)
        deadline = loop.time() + interval
        while queue is not None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                msg = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                return False
            if self.wakes(decode(msg.data)):
                return True
        await asyncio.sleep(interval)
        return False

    def _services(self):
        services = getattr(self, "task_services", None)
        if services is None:
            raise RuntimeError(f"{type(self).__name__} needs the task services a triggerer "
                               "gives it")
        return services


class DagStateTrigger(_StateWokenTrigger):
    """Fires when every run of ``run_ids`` of ``dag_id`` is in one of ``states``; the
    payload is ``{"dag_id", "states": {run_id: state}}``."""

    kind = "run"

    def __init__(self, dag_id: str, states: Collection[str], run_ids: Collection[str],
                 poll_interval: float = 60.0, **_airflow: Any) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.states = [str(s) for s in states]
        self.run_ids = list(run_ids)
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.external.DagStateTrigger",
                {"dag_id": self.dag_id, "states": self.states, "run_ids": self.run_ids,
                 "poll_interval": self.poll_interval})

    def wakes(self, event: dict[str, Any]) -> bool:
        return super().wakes(event) and event.get("run_id") in self.run_ids

    def check(self) -> dict[str, Any] | None:
        services = self._services()
        found: dict[str, str] = {}
        for run_id in self.run_ids:
            run = services.get_dag_run(self.dag_id, run_id)
            if run is None or run.state not in self.states:
                return None
            found[run_id] = run.state
        return {"dag_id": self.dag_id, "states": found}


class WorkflowTrigger(_StateWokenTrigger):
    """Fires when the awaited tasks of ``external_dag_id`` (``external_task_ids``, the
    group ``external_task_group_id``, or the whole run) on ``logical_dates`` reach an
    allowed state (``{"status": "success"}``), a failed one (``"failed"``) or a skipped one
    (``"skipped"``); failed wins over skipped, skipped over success, as in the sensor."""

    kind = "ti"

    def __init__(self, external_dag_id: str, logical_dates: Collection[datetime],
                 external_task_ids: Collection[str] | None = None,
                 external_task_group_id: str | None = None,
                 allowed_states: Collection[str] | None = None,
                 failed_states: Collection[str] | None = None,
                 skipped_states: Collection[str] | None = None,
                 poll_interval: float = 60.0, **_airflow: Any) -> None:
        super().__init__()
        self.dag_id = external_dag_id
        self.logical_dates = list(logical_dates)
        self.external_task_ids = list(external_task_ids) if external_task_ids else None
        self.external_task_group_id = external_task_group_id
        self.allowed_states = [str(s) for s in allowed_states or ["success"]]
        self.failed_states = [str(s) for s in failed_states or []]
        self.skipped_states = [str(s) for s in skipped_states or []]
        self.poll_interval = float(poll_interval)
        if not (self.external_task_ids or external_task_group_id):
            self.kind = "run"

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.external.WorkflowTrigger", {
            "external_dag_id": self.dag_id, "logical_dates": self.logical_dates,
            "external_task_ids": self.external_task_ids,
            "external_task_group_id": self.external_task_group_id,
            "allowed_states": self.allowed_states, "failed_states": self.failed_states,
            "skipped_states": self.skipped_states, "poll_interval": self.poll_interval})

    def wakes(self, event: dict[str, Any]) -> bool:
        if not super().wakes(event):
            return False
        task_id = event.get("task_id")
        if task_id is None or self.kind == "run":
            return True
        if self.external_task_ids:
            return task_id in self.external_task_ids
        return str(task_id).startswith(f"{self.external_task_group_id}.")

    def _count(self, services, states: list[str]) -> float:
        if self.external_task_ids:
            return services.count_task_instances(
                self.dag_id, self.logical_dates, states,
                task_ids=self.external_task_ids) / len(self.external_task_ids)
        if self.external_task_group_id:
            prefix = f"{self.external_task_group_id}."
            keys = services.task_instance_keys(self.dag_id, self.logical_dates[0], prefix)
            if not keys:
                return 0
            return services.count_task_instances(self.dag_id, self.logical_dates, states,
                                                 task_id_prefix=prefix) / len(keys)
        return services.count_dag_runs(self.dag_id, self.logical_dates, states)

    def check(self) -> dict[str, Any] | None:
        services = self._services()
        if self.failed_states and self._count(services, self.failed_states) > 0:
            return {"status": "failed"}
        if self.skipped_states and self._count(services, self.skipped_states) > 0:
            return {"status": "skipped"}
        if self._count(services, self.allowed_states) == len(self.logical_dates):
            return {"status": "success"}
        return None


__all__ = ["DagStateTrigger", "WorkflowTrigger"]
