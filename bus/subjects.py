"""Every NATS subject and JetStream stream name Updraft uses, under a configurable prefix.

The subjects (``P`` is ``[nats] subject_prefix``, default ``updraft``)::

    P.cmd.<verb>                               request/reply, served by the schedulers
    P.trigger.<dag_id>                         JetStream stream: durable outside triggers
    P.trigger.rejected                         why an outside trigger was refused (see below)
    P.evt.run.<dag_id> / P.evt.ti.<dag_id>     state changes
    P.log.<dag>.<run>.<task>.<map_index>.<try> live log lines (map_index -1: not mapped)
    P.tasks.<queue>                            JetStream work queue of the NATS executor
    P.hb.<node>                                heartbeats
    P.wake.scheduler                           a nudge: the schedulers look at the store now

Ids become single subject tokens through ``encode_token``: letters, digits, ``_`` and ``-``
stay as they are and every other byte of the UTF-8 form becomes ``%XX`` (dots, spaces, ``*``,
``>``, ``%`` itself, non-ASCII). ``decode_token`` reverses it. The empty id is ``%``.
``P.trigger.rejected`` lives inside the trigger hierarchy, so a DAG whose id is literally
``rejected`` gets the token ``%72ejected`` (``trigger("rejected")`` does that for you).

Functions that take an optional id return a ``*`` wildcard for ``None``, for subscribers.
The prefix is read from the configuration on every call, so tests can change it.
"""

from __future__ import annotations

import hashlib
import re

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = "0123456789ABCDEF"
_TOKEN_RE = re.compile(r"^(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+$")
REJECTED_TOKEN = "rejected"


def encode_token(value: str | int) -> str:
    """One subject token for ``value``; reversible with ``decode_token``."""
    text = str(value)
    if text == "":
        return "%"
    out = []
    for byte in text.encode("utf-8"):
        if byte in _SAFE:
            out.append(chr(byte))
        else:
            out.append("%" + _HEX[byte >> 4] + _HEX[byte & 15])
    return "".join(out)


def decode_token(token: str) -> str:
    """The id that ``encode_token`` turned into ``token``; ValueError if it is not one."""
    if token == "%":
        return ""
    if not _TOKEN_RE.match(token):
        raise ValueError(f"not an encoded subject token: {token!r}")
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "%":
            raw.append(int(token[i + 1:i + 3], 16))
            i += 3
        else:
            raw.append(ord(token[i]))
            i += 1
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"subject token {token!r} is not UTF-8: {exc}") from None


def _tok(value: str | int | None) -> str:
    return "*" if value is None else encode_token(value)


def prefix() -> str:
    """The configured subject prefix (``[nats] subject_prefix``), without a trailing dot."""
    from updraft.config import conf

    value = str(conf.get("nats", "subject_prefix") or "updraft").strip().strip(".")
    if not value or any(c in value for c in " \t\r\n*>") or ".." in value:
        raise ValueError(f"[nats] subject_prefix {value!r} is not a valid subject prefix "
                         "(no spaces, wildcards or empty tokens)")
    return value


# --- commands ---------------------------------------------------------------------------

COMMAND_QUEUE_GROUP = "schedulers"


def cmd(verb: str | None = None) -> str:
    """``P.cmd.<verb>`` (``P.cmd.*`` for None)."""
    return f"{prefix()}.cmd.{_tok(verb)}"


# --- outside triggers -------------------------------------------------------------------

def trigger_token(dag_id: str) -> str:
    """The subject token of ``dag_id`` under ``P.trigger`` (never the literal ``rejected``)."""
    token = encode_token(dag_id)
    if token == REJECTED_TOKEN:
        token = "%72" + token[1:]
    return token


def trigger(dag_id: str | None = None) -> str:
    """``P.trigger.<dag_id>``: where outside systems publish a run request (``*``: all)."""
    return f"{prefix()}.trigger.{'*' if dag_id is None else trigger_token(dag_id)}"


def trigger_rejected() -> str:
    """``P.trigger.rejected``: a TriggerRejected message for every refused trigger."""
    return f"{prefix()}.trigger.{REJECTED_TOKEN}"


def trigger_all() -> str:
    """``P.trigger.>``: the subjects of the triggers stream."""
    return f"{prefix()}.trigger.>"


def _name_under(kind: str, subject: str) -> str | None:
    """The decoded name of ``P.<kind>.<token>``; None for ``P.<kind>.rejected`` or a
    subject of another kind."""
    head = f"{prefix()}.{kind}."
    if not subject.startswith(head):
        return None
    token = subject[len(head):]
    if token == REJECTED_TOKEN or "." in token:
        return None
    return decode_token(token)


def dag_id_from_trigger(subject: str) -> str | None:
    """The DAG id of a trigger subject; None for ``P.trigger.rejected`` or a foreign subject."""
    return _name_under("trigger", subject)


# --- outside asset events (ADR 10) ------------------------------------------------------

def asset(name: str | None = None) -> str:
    """``P.asset.<name>``: where outside systems publish an event of asset ``name`` (``*``:
    all); the name is encoded like a DAG id under ``P.trigger``."""
    return f"{prefix()}.asset.{'*' if name is None else trigger_token(name)}"


def asset_rejected() -> str:
    """``P.asset.rejected``: an AssetEventRejected message for every refused asset event."""
    return f"{prefix()}.asset.{REJECTED_TOKEN}"


def asset_all() -> str:
    """``P.asset.>``: the subjects of the assets stream."""
    return f"{prefix()}.asset.>"


def asset_name_from_subject(subject: str) -> str | None:
    """The asset name of an asset subject; None for ``P.asset.rejected`` or a foreign one."""
    return _name_under("asset", subject)


# --- nudges ------------------------------------------------------------------------------

def wake_scheduler() -> str:
    """``P.wake.scheduler``: an empty message that makes every scheduler run a pass now; a
    triggerer sends it after waking deferred tasks (the store holds what changed: ADR 11)."""
    return f"{prefix()}.wake.scheduler"


# --- events, logs, heartbeats -----------------------------------------------------------

def evt_run(dag_id: str | None = None) -> str:
    """``P.evt.run.<dag_id>``: run state changes (``*``: every DAG)."""
    return f"{prefix()}.evt.run.{_tok(dag_id)}"


def evt_ti(dag_id: str | None = None) -> str:
    """``P.evt.ti.<dag_id>``: task instance state changes (``*``: every DAG)."""
    return f"{prefix()}.evt.ti.{_tok(dag_id)}"


def log(dag_id: str | None, run_id: str | None, task_id: str | None,
        try_number: int | None, map_index: int | None = -1) -> str:
    """``P.log.<dag>.<run>.<task>.<map_index>.<try>``; any None part is a ``*`` wildcard."""
    return (f"{prefix()}.log.{_tok(dag_id)}.{_tok(run_id)}.{_tok(task_id)}."
            f"{_tok(map_index)}.{_tok(try_number)}")


def tasks(queue: str | None = None) -> str:
    """``P.tasks.<queue>``: the NATS executor's work queue for ``queue`` (``*``: all)."""
    return f"{prefix()}.tasks.{_tok(queue)}"


def hb(node: str | None = None) -> str:
    """``P.hb.<node>``: heartbeats of one node (``*``: every node)."""
    return f"{prefix()}.hb.{_tok(node)}"


# --- JetStream names --------------------------------------------------------------------

def _name_part(text: str) -> str:
    """A stream/consumer name part: [A-Za-z0-9_-]; a short hash keeps altered names unique."""
    clean = re.sub(r"[^A-Za-z0-9_-]", "_", text)
    if clean != text:
        clean += "_" + hashlib.sha1(text.encode()).hexdigest()[:8]
    return clean


def stream_prefix() -> str:
    """The prefix of stream names, e.g. ``UPDRAFT`` (``acme.updraft`` -> ``ACME_UPDRAFT_...``)."""
    return _name_part(prefix().upper())


def triggers_stream() -> str:
    """Name of the JetStream stream holding ``P.trigger.>``."""
    return f"{stream_prefix()}_TRIGGERS"


def triggers_consumer() -> str:
    """Name of the durable pull consumer the schedulers share on the triggers stream."""
    return "schedulers"


def assets_stream() -> str:
    """Name of the JetStream stream holding ``P.asset.>``."""
    return f"{stream_prefix()}_ASSETS"


def assets_consumer() -> str:
    """Name of the durable pull consumer the schedulers share on the assets stream."""
    return "schedulers"


def watchers_queue_group() -> str:
    """The queue group of the schedulers' asset-watcher subscriptions (one records each
    message)."""
    return f"{prefix()}-asset-watchers"


def tasks_stream(queue: str) -> str:
    """Name of the work-queue stream of the NATS executor for ``queue``."""
    return f"{stream_prefix()}_TASKS_{_name_part(queue)}"


def tasks_consumer(queue: str) -> str:
    """Name of the durable pull consumer the workers of ``queue`` share."""
    return f"workers_{_name_part(queue)}"
