"""Every message body on the bus: versioned, frozen dataclasses, JSON on the wire.

``encode(msg) -> bytes`` and ``decode(cls, data) -> msg``. ``decode`` checks the body and
raises ``SchemaError`` (a ValueError) with a precise message: invalid JSON (with position),
not an object, missing field, unknown field, wrong type, unsupported version. ``v`` may be
left out by senders (it means version 1) so outside systems can publish a bare
``{"conf": {...}}`` trigger; a ``v`` this node does not know is refused.

Timestamps are ISO 8601 strings (UTC, with offset); ids are plain strings.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

M = TypeVar("M", bound="Message")


class SchemaError(ValueError):
    """A message body that does not match its schema; the text says exactly why."""


@dataclass(frozen=True)
class Message:
    """Base of every message body: ``v`` is the schema version."""

    SUPPORTED_VERSIONS: ClassVar[tuple[int, ...]] = (1,)

    def to_dict(self) -> dict:
        """The JSON object of this message (fields are JSON values: no deep copy needed)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# --- commands (request/reply on P.cmd.<verb>) -------------------------------------------

@dataclass(frozen=True)
class TriggerCommand(Message):
    """Create a run of ``dag_id`` (reply result: dag_id, run_id, logical_date, state)."""

    dag_id: str
    conf: dict = field(default_factory=dict)
    run_id: str | None = None
    logical_date: str | None = None
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class PauseCommand(Message):
    """Pause a DAG (reply result: dag_id, is_paused, was_paused)."""

    dag_id: str
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class UnpauseCommand(Message):
    """Unpause a DAG (reply result: dag_id, is_paused, was_paused)."""

    dag_id: str
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class ClearCommand(Message):
    """Clear task instances so they run again (reply result: count, task_instances)."""

    dag_id: str
    task_regex: str | None = None
    task_ids: list[str] | None = None
    map_indexes: list[int] | None = None
    upstream: bool = False
    downstream: bool = False
    only_failed: bool = False
    only_running: bool = False
    run_id: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    dry_run: bool = False
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class SetStateCommand(Message):
    """Mark task instances success/failed/skipped (reply result: count, task_instances)."""

    dag_id: str
    run_id: str
    task_id: str
    state: str
    map_indexes: list[int] | None = None
    upstream: bool = False
    downstream: bool = False
    future: bool = False
    past: bool = False
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class SetRunStateCommand(Message):
    """Mark a whole run success/failed/queued (reply result: dag_id, run_id, state)."""

    dag_id: str
    run_id: str
    state: str
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class DeleteRunCommand(Message):
    """Delete a run and everything it holds (reply result: dag_id, run_id)."""

    dag_id: str
    run_id: str
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class SetNoteCommand(Message):
    """Set or remove (empty ``note``) the note of a run, or of a task instance when
    ``task_id`` is given (reply result: dag_id, run_id, task_id, map_index, note)."""

    dag_id: str
    run_id: str
    note: str | None = None
    task_id: str | None = None
    map_index: int = -1
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class DeleteDagCommand(Message):
    """Delete a DAG's metadata; its file stays and is parsed again (reply result: dag_id,
    deleted: rows per table)."""

    dag_id: str
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class BackfillCommand(Message):
    """Create the backfill runs between two logical dates (ISO 8601; naive ones are in the
    DAG's timezone); ``dry_run`` only lists them (reply result: run_ids, logical_dates,
    created or existing)."""

    dag_id: str
    start_date: str
    end_date: str
    reset_dagruns: bool = False
    dry_run: bool = False
    owner: str | None = None
    v: int = 1


@dataclass(frozen=True)
class AssetEventCommand(Message):
    """Record an event of asset ``name`` (reply result: asset, event_id, duplicate); ``id``
    makes it idempotent."""

    name: str
    extra: dict = field(default_factory=dict)
    id: str | None = None
    owner: str | None = None
    v: int = 1


#: verb -> request schema of every command the schedulers serve.
COMMANDS: dict[str, type[Message]] = {
    "asset_event": AssetEventCommand,
    "trigger": TriggerCommand,
    "pause": PauseCommand,
    "unpause": UnpauseCommand,
    "clear": ClearCommand,
    "set_state": SetStateCommand,
    "set_run_state": SetRunStateCommand,
    "delete_run": DeleteRunCommand,
    "set_note": SetNoteCommand,
    "delete_dag": DeleteDagCommand,
    "backfill": BackfillCommand,
}

#: error codes of a CommandReply
ERROR_CODES = ("not_found", "bad_request", "conflict", "forbidden", "internal")


@dataclass(frozen=True)
class CommandReply(Message):
    """The reply to every command: ``ok`` with ``result``, or ``error`` with ``code``."""

    ok: bool
    result: dict | None = None
    error: str | None = None
    code: str | None = None
    v: int = 1


# --- outside triggers (JetStream, P.trigger.<dag_id>) -----------------------------------

@dataclass(frozen=True)
class TriggerMessage(Message):
    """What an outside system publishes on ``P.trigger.<dag_id>`` to start a run."""

    conf: dict = field(default_factory=dict)
    run_id: str | None = None
    logical_date: str | None = None
    v: int = 1


@dataclass(frozen=True)
class TriggerRejected(Message):
    """Published on ``P.trigger.rejected`` for every outside trigger that was terminated."""

    subject: str
    dag_id: str | None
    reason: str
    msg_id: str | None = None
    stream_seq: int | None = None
    v: int = 1


# --- outside asset events (JetStream, P.asset.<name>) -------------------------------------

@dataclass(frozen=True)
class AssetEventMessage(Message):
    """What an outside system publishes on ``P.asset.<name>`` to record an event of the
    asset: its ``extra``, and an ``id`` that deduplicates (the ``Nats-Msg-Id`` header wins)."""

    extra: dict = field(default_factory=dict)
    id: str | None = None
    v: int = 1


@dataclass(frozen=True)
class AssetEventRejected(Message):
    """Published on ``P.asset.rejected`` for every outside asset event that was terminated."""

    subject: str
    asset: str | None
    reason: str
    msg_id: str | None = None
    stream_seq: int | None = None
    v: int = 1


# --- events -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStateEvent(Message):
    """A dag run changed state (``P.evt.run.<dag_id>``)."""

    dag_id: str
    run_id: str
    old_state: str | None
    new_state: str
    timestamp: str
    node: str | None = None
    v: int = 1


@dataclass(frozen=True)
class TiStateEvent(Message):
    """A task instance changed state (``P.evt.ti.<dag_id>``), with why (``cause``)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    old_state: str | None
    new_state: str | None
    timestamp: str
    cause: str | None = None
    node: str | None = None
    v: int = 1


@dataclass(frozen=True)
class Heartbeat(Message):
    """A node says it is alive (``P.hb.<node_id>``); kind: scheduler, worker, web."""

    node_id: str
    kind: str
    timestamp: str
    hostname: str | None = None
    pid: int | None = None
    info: dict = field(default_factory=dict)
    v: int = 1


# --- live logs (P.log.<dag>.<run>.<task>.<map_index>.<try>) -----------------------------

@dataclass(frozen=True)
class LogLine(Message):
    """One line of a try's log as it is written; ``eof`` marks the end of the try's log."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    seq: int
    line: str
    timestamp: str
    eof: bool = False
    v: int = 1


# --- the NATS work-queue executor (JetStream, P.tasks.<queue>) --------------------------

@dataclass(frozen=True)
class TaskMessage(Message):
    """One try to run: ``request`` is ``updraft.runtime.TryRequest.to_json()``."""

    request: dict
    enqueued_at: str | None = None
    v: int = 1

    def try_request(self):
        """The TryRequest this message carries."""
        from updraft.runtime import TryRequest

        return TryRequest.from_json(self.request)


# --- encoding ---------------------------------------------------------------------------

def encode(msg: Message) -> bytes:
    """The JSON bytes of ``msg``."""
    if not isinstance(msg, Message):
        raise TypeError(f"encode() takes a bus message, got {type(msg).__name__}")
    return json.dumps(msg.to_dict(), separators=(",", ":"), ensure_ascii=False,
                      default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def decode(cls: type[M], data: bytes | str | dict) -> M:
    """Parse and check ``data`` as a ``cls`` message; SchemaError says precisely what is wrong."""
    name = cls.__name__
    if isinstance(data, dict):
        body = data
    else:
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SchemaError(f"{name}: body is not UTF-8 (byte {exc.start})") from None
        else:
            text = data
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"{name}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                              f"{exc.msg}") from None
    if not isinstance(body, dict):
        raise SchemaError(f"{name}: body must be a JSON object, got {_json_type(body)}")
    version = body.get("v", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError(f"{name}: wrong type for 'v': expected an integer, got "
                          f"{_json_type(version)}")
    if version not in cls.SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in cls.SUPPORTED_VERSIONS)
        raise SchemaError(f"{name}: unsupported version v={version} (this node reads {known})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise SchemaError(f"{name}: unknown field {unknown[0]!r}"
                          + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                          + f"; known fields: {', '.join(sorted(fields))}")
    for fname, f in fields.items():
        if fname not in body:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{name}: missing field {fname!r}")
            continue
        problem = _type_problem(body[fname], hints[fname])
        if problem:
            raise SchemaError(f"{name}: wrong type for {fname!r}: {problem}")
    return cls(**body)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_EXPECTED = {str: "a string", int: "an integer", float: "a number", bool: "a boolean",
             dict: "an object", list: "an array", type(None): "null"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        args = typing.get_args(tp)
        return f"an array of {_describe(args[0]).split(' ', 1)[1]}s" if args else "an array"
    if origin is dict:
        return "an object"
    return _EXPECTED.get(tp, getattr(tp, "__name__", str(tp)))


def _matches(value: Any, tp: Any) -> bool:
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    if tp is list or origin is list:
        if not isinstance(value, list):
            return False
        args = typing.get_args(tp)
        return not args or all(_matches(item, args[0]) for item in value)
    return isinstance(value, tp)


def _type_problem(value: Any, tp: Any) -> str | None:
    if _matches(value, tp):
        return None
    if isinstance(value, list):
        for arg in typing.get_args(tp) or (tp,):
            if typing.get_origin(arg) is list and typing.get_args(arg):
                item_tp = typing.get_args(arg)[0]
                for i, item in enumerate(value):
                    if not _matches(item, item_tp):
                        return (f"expected {_describe(tp)}, got an array whose item {i} is "
                                f"{_json_type(item)}")
    return f"expected {_describe(tp)}, got {_json_type(value)}"
