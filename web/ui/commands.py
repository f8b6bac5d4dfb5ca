"""Sending a change to the scheduler over the bus, and turning the reply into a sentence.

The web node changes nothing itself (DESIGN.md): trigger, pause, clear, mark and delete are
NATS requests on ``P.cmd.<verb>``; the reply, or the precise reason there is none, is what the
page flashes. The request itself is ``bus.client.request_command``.
"""

from __future__ import annotations

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
    """Send one command and wait for the reply; never raises for bus or scheduler errors.

    A command larger than one NATS message may be is not sent: its outcome says so, with
    the limit (code ``too_large``).
    """
    from bus.client import CommandError, request_command
    from web.api.common import ApiError, check_payload_size, max_payload

    timeout = timeout if timeout is not None else _timeout()
    payload = {k: v for k, v in payload.items() if v is not None}
    try:
        check_payload_size(payload)
    except ApiError as exc:
        return CommandOutcome(False, {}, exc.detail, "too_large")
    try:
        result = request_command(verb, payload, timeout=timeout)
    except CommandError as exc:
        return CommandOutcome(False, {}, _bus_down_wording(exc.message, exc.code), exc.code)
    except Exception as exc:  # noqa: BLE001  (an unexpected client failure is still shown)
        if type(exc).__name__ == "MaxPayloadError":
            return CommandOutcome(False, {}, f"the request is too large for the bus: NATS "
                                  f"takes at most {max_payload():,} bytes per message",
                                  "too_large")
        return CommandOutcome(False, {}, _bus_down_wording(
            f"the bus is down: {type(exc).__name__}: {exc}", "unavailable"), "unavailable")
    return CommandOutcome(True, dict(result or {}))


def _bus_down_wording(text: str, code: str) -> str:
    from web.queries import scrub_credentials

    text = scrub_credentials(text)
    if code == "unavailable" and not text.startswith("the bus is down"):
        return f"the bus is down: {text}"
    return text


__all__ = ["CommandOutcome", "send_command"]
