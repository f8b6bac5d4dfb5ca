"""Sending a change to the scheduler over the bus, and turning the reply into a sentence.

The web node changes nothing itself (DESIGN.md): trigger, pause, clear, mark and delete are
NATS requests on ``P.cmd.<verb>``; the reply, or the precise reason there is none, is what the
page flashes. ``bus.client.request_command`` is used when it exists; otherwise the request is
made here with the shared ``BusThread`` and the schemas of ``bus.schemas``.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any

from flask import current_app

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class CommandOutcome:
    """What came of a command: ``ok`` with the scheduler's ``result``, or ``error``."""

    ok: bool
    result: dict
    error: str = ""
    code: str = ""


def _timeout() -> float:
    try:
        return float(current_app.config.get("UPDRAFT_COMMAND_TIMEOUT", DEFAULT_TIMEOUT))
    except RuntimeError:
        return DEFAULT_TIMEOUT


def send_command(verb: str, payload: dict[str, Any], timeout: float | None = None
                 ) -> CommandOutcome:
    """Send one command and wait for the reply; never raises for bus or scheduler errors."""
    timeout = timeout if timeout is not None else _timeout()
    payload = {k: v for k, v in payload.items() if v is not None}
    if importlib.util.find_spec("bus.client") is not None:
        return _via_client(verb, payload, timeout)
    return _via_bus_thread(verb, payload, timeout)


def _via_client(verb: str, payload: dict, timeout: float) -> CommandOutcome:
    client = importlib.import_module("bus.client")
    error_cls = getattr(client, "CommandError", Exception)
    try:
        result = client.request_command(verb, payload, timeout=timeout)
    except error_cls as exc:
        return CommandOutcome(False, {}, _bus_down_wording(str(exc)),
                              getattr(exc, "code", "") or "")
    except Exception as exc:  # noqa: BLE001  (an unexpected client failure is still shown)
        return CommandOutcome(False, {}, _bus_down_wording(f"{type(exc).__name__}: {exc}"))
    if hasattr(result, "ok"):  # a CommandReply
        if not result.ok:
            return CommandOutcome(False, {}, result.error or "refused", result.code or "")
        result = result.result
    return CommandOutcome(True, dict(result or {}))


def _bus_down_wording(text: str) -> str:
    lowered = text.lower()
    if "cannot reach nats" in lowered or "not connected" in lowered:
        return f"the bus is down: {text}"
    return text


def _via_bus_thread(verb: str, payload: dict, timeout: float) -> CommandOutcome:
    from bus import schemas, subjects
    from bus.connection import BusUnavailable, shared_bus

    schema = schemas.COMMANDS.get(verb)
    if schema is None:
        return CommandOutcome(False, {}, f"unknown command {verb!r}", "bad_request")
    try:
        body = schemas.encode(schema(**payload))
    except (TypeError, ValueError) as exc:
        return CommandOutcome(False, {}, f"invalid {verb} command: {exc}", "bad_request")
    bus = shared_bus(wait=1.0)
    if not bus.connected:
        return CommandOutcome(False, {}, f"the bus is down: cannot reach NATS at "
                              f"{', '.join(bus.servers)} ({bus.last_error or 'not connected'})",
                              "unavailable")
    try:
        message = bus.request(subjects.cmd(verb), body, timeout=timeout)
    except BusUnavailable as exc:
        return CommandOutcome(False, {}, f"the bus is down: {exc}", "unavailable")
    except Exception as exc:  # noqa: BLE001
        name = type(exc).__name__
        if "NoResponders" in name:
            return CommandOutcome(False, {}, "no scheduler is listening for commands on the "
                                  "bus: start `updraft scheduler`", "unavailable")
        if "Timeout" in name:
            return CommandOutcome(False, {}, f"no scheduler answered the {verb} command within "
                                  f"{timeout:g} s", "timeout")
        return CommandOutcome(False, {}, f"the bus failed: {name}: {exc}", "unavailable")
    try:
        reply = schemas.decode(schemas.CommandReply, message.data)
    except ValueError as exc:
        return CommandOutcome(False, {}, f"the scheduler's reply was not understood: {exc}",
                              "internal")
    if not reply.ok:
        return CommandOutcome(False, {}, reply.error or "refused", reply.code or "")
    return CommandOutcome(True, dict(reply.result or {}))


__all__ = ["CommandOutcome", "send_command"]
