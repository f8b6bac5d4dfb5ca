"""NatsMessageSensor: wait for a message on a NATS subject, optionally one whose JSON body
holds a filter; it waits in a triggerer (``NatsMessageTrigger``), holding no worker slot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from updraft.exceptions import UpdraftException
from updraft.sensors.base import BaseSensorOperator


class NatsMessageSensor(BaseSensorOperator):
    """Waits for the first message on ``subject`` whose JSON body holds ``filter`` (a dict
    matched key by key; templated, so ``{"request": "{{ run_id }}"}`` waits for this run's
    answer) and returns ``{"subject", "data"}`` as its XCom. Always deferrable: a DAG can
    pause for an outside system's answer without holding a slot. Messages published before
    the sensor's trigger started are not seen (core NATS keeps nothing)."""

    template_fields: Sequence[str] = ("subject", "filter")

    def __init__(self, *, subject: str, filter: dict[str, Any] | None = None,
                 servers: str | None = None, **kwargs) -> None:
        kwargs.pop("deferrable", None)
        super().__init__(**kwargs)
        self.subject = subject
        self.filter = filter
        self.servers = servers

    def execute(self, context: dict):
        from updraft.triggers.nats import NatsMessageTrigger

        self.defer(trigger=NatsMessageTrigger(subject=self.subject, filter=self.filter,
                                              servers=self.servers),
                   method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: dict, event=None) -> dict[str, Any]:
        """The message came: its subject and body are the task's return value."""
        self.log.info("Message on %s: %r", (event or {}).get("subject"),
                      (event or {}).get("data"))
        return event

    def poke(self, context: dict) -> bool:
        raise UpdraftException("NatsMessageSensor only waits deferred")


__all__ = ["NatsMessageSensor"]
