"""Sending commands to the schedulers over NATS (request/reply on ``P.cmd.<verb>``).

Used by the CLI (``--via-bus``) and the web. ``request_command`` validates the payload
against the verb's schema before sending, so a typo fails here with a precise message, and
turns every error reply into a ``CommandError`` carrying the scheduler's message and code.
"""

from __future__ import annotations

from bus import schemas, subjects
from bus.connection import BusThread, BusUnavailable, shared_bus


class CommandError(Exception):
    """A command the scheduler refused (or could not be asked); ``code`` says which kind:
    not_found, bad_request, conflict, forbidden, internal, unavailable, timeout."""

    def __init__(self, message: str, code: str, verb: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.verb = verb


def request_command(verb: str, payload: dict, timeout: float = 10.0,
                    bus: BusThread | None = None) -> dict:
    """Send ``verb`` with ``payload`` to a scheduler and return the reply's ``result``.

    Raises CommandError (the scheduler's precise error, or why no scheduler answered).
    ``bus`` defaults to the process-wide connection (``bus.connection.shared_bus``).
    """
    import nats.errors

    schema = schemas.COMMANDS.get(verb)
    if schema is None:
        raise CommandError(f"unknown command {verb!r}; known: {', '.join(schemas.COMMANDS)}",
                           "bad_request", verb)
    try:
        message = schemas.decode(schema, {k: v for k, v in payload.items()
                                          if v is not None})
    except schemas.SchemaError as exc:
        raise CommandError(str(exc), "bad_request", verb) from None
    bus = bus or shared_bus()
    subject = subjects.cmd(verb)
    try:
        reply = bus.request(subject, schemas.encode(message), timeout=timeout)
    except BusUnavailable as exc:
        raise CommandError(str(exc), "unavailable", verb) from None
    except nats.errors.NoRespondersError:
        raise CommandError(f"no scheduler serves {subject} (is `updraft scheduler` running "
                           "and connected to the same NATS?)", "unavailable", verb) from None
    except (nats.errors.TimeoutError, TimeoutError):
        raise CommandError(f"no reply to {verb!r} within {timeout:g} s on {subject}",
                           "timeout", verb) from None
    try:
        answer = schemas.decode(schemas.CommandReply, reply.data)
    except schemas.SchemaError as exc:
        raise CommandError(f"the scheduler sent a reply this client cannot read: {exc}",
                           "internal", verb) from None
    if not answer.ok:
        raise CommandError(answer.error or "the scheduler refused the command without a reason",
                           answer.code or "internal", verb)
    return answer.result or {}


