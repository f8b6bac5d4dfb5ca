"""The JetStream work queue shared by the NATS queue executor and ``updraft worker``.

One stream per task queue (``bus.subjects.tasks_stream``) holds ``P.tasks.<queue>`` with
``retention=workqueue``: a message is deleted when a worker acks it. The workers of a queue
share one durable pull consumer (``bus.subjects.tasks_consumer``), so each message goes to
one worker at a time; an unacked message comes back after ``ack_wait``, at most
``max_deliver`` times (``[worker]`` configuration).

Durability: the streams use file storage with the server's default sync interval. A message
lost in a server crash costs latency, not correctness: the try stays ``queued`` in the store
and the scheduler re-queues it (see DESIGN.md, "the store is the truth").

Message ids (``Nats-Msg-Id``) are ``<dag>.<run>.<task>.<map_index>.<try>`` with each part
encoded as a subject token, plus ``@<queued_dttm>`` when the executor knows when the try was
queued: the same submission twice is one message, while a sensor rescheduled within the same
try (queued again later) is a new one.

This module also holds what is specific to the executor/worker conversation and has no home
in ``bus.schemas``: ``TryEnded`` on ``P.worker.done.<dag_id>``, which a worker publishes
after ``run_task_try`` returned, so the executor looks at the store at once instead of on its
next poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bus import subjects
from bus.schemas import Message

log = logging.getLogger(__name__)

DUPLICATE_WINDOW = 120.0
"""Seconds during which JetStream drops a message whose ``Nats-Msg-Id`` it has seen."""


@dataclass(frozen=True)
class TryEnded(Message):
    """A NATS worker finished with a try (``P.worker.done.<dag_id>``): a hint, not the truth."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: str | None
    refused: bool = False
    error: str | None = None
    worker: str | None = None
    log_path: str | None = None
    duration: float | None = None
    v: int = 1


def done_subject(dag_id: str | None = None) -> str:
    """``P.worker.done.<dag_id>`` (``*``: every DAG)."""
    token = "*" if dag_id is None else subjects.encode_token(dag_id)
    return f"{subjects.prefix()}.worker.done.{token}"


def message_id(request: Any, queued_at: str | None = None) -> str:
    """The ``Nats-Msg-Id`` of a TryRequest (see the module docstring)."""
    parts = (request.dag_id, request.run_id, request.task_id, request.map_index,
             request.try_number)
    base = ".".join(subjects.encode_token(part) for part in parts)
    return f"{base}@{queued_at}" if queued_at else base


async def ensure_stream(js: Any, queue: str) -> str:
    """Create (or keep) the work-queue stream of ``queue``; returns its name."""
    from nats.js import api

    from bus.streams import ensure_replicated_stream

    name = subjects.tasks_stream(queue)
    config = api.StreamConfig(name=name, subjects=[subjects.tasks(queue)],
                              retention=api.RetentionPolicy.WORK_QUEUE,
                              storage=api.StorageType.FILE, duplicate_window=DUPLICATE_WINDOW)
    await ensure_replicated_stream(js, config)
    return name


async def ensure_consumer(js: Any, queue: str, ack_wait: float, max_deliver: int) -> str:
    """Create or update the durable pull consumer the workers of ``queue`` share."""
    from nats.js import api

    stream = await ensure_stream(js, queue)
    name = subjects.tasks_consumer(queue)
    config = api.ConsumerConfig(durable_name=name, ack_policy=api.AckPolicy.EXPLICIT,
                                deliver_policy=api.DeliverPolicy.ALL,
                                filter_subject=subjects.tasks(queue), ack_wait=ack_wait,
                                max_deliver=max_deliver, max_ack_pending=-1)
    await js.add_consumer(stream, config)
    return name


def worker_settings() -> dict[str, float | int]:
    """The ``[worker]`` settings that the executor and the workers must agree on."""
    from updraft.config import conf

    return {"ack_wait": conf.getfloat("worker", "ack_wait"),
            "max_deliver": conf.getint("worker", "max_deliver")}


__all__ = [
    "DUPLICATE_WINDOW",
    "TryEnded",
    "done_subject",
    "ensure_consumer",
    "ensure_stream",
    "message_id",
    "worker_settings",
]
