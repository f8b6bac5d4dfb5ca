"""Triggers: the small async waits a deferred task hands to a triggerer (ADR 11).

A task defers with ``self.defer(trigger=SomeTrigger(...), method_name="execute_complete")``;
the trigger is serialized (``serialize()``: its class path and keyword arguments) into the
store, an ``updraft triggerer`` node rebuilds it and runs its ``async run()`` on an event
loop shared with thousands of others, and the first ``TriggerEvent`` it yields wakes the task.
"""

from updraft.triggers.base import (
    BaseTrigger,
    StartTriggerArgs,
    TaskFailedEvent,
    TaskSkippedEvent,
    TaskSuccessEvent,
    TriggerEvent,
)

__all__ = ["BaseTrigger", "StartTriggerArgs", "TaskFailedEvent", "TaskSkippedEvent",
           "TaskSuccessEvent", "TriggerEvent"]
