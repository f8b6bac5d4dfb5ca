"""Validation of dag ids, task ids and group ids."""

from __future__ import annotations

import re

from updraft.exceptions import InvalidIdentifier

KEY_REGEX = re.compile(r"^[\w.-]+$")
GROUP_KEY_REGEX = re.compile(r"^[\w-]+$")
ID_MAX_LEN = 250


def validate_key(kind: str, key: object, max_length: int = ID_MAX_LEN,
                 regex: re.Pattern = KEY_REGEX) -> str:
    """Return ``key`` if it is a valid id of ``kind`` (e.g. "task_id"), else raise precisely."""
    if not isinstance(key, str):
        raise InvalidIdentifier(f"{kind} must be a string, got {type(key).__name__}: {key!r}")
    if not key:
        raise InvalidIdentifier(f"{kind} must not be empty")
    if len(key) > max_length:
        raise InvalidIdentifier(f"{kind} {key!r} is {len(key)} characters long; "
                                f"the limit is {max_length}")
    if not regex.match(key):
        allowed = "letters, digits, underscores, dashes" + (", dots" if regex is KEY_REGEX else "")
        raise InvalidIdentifier(f"{kind} {key!r} may only contain {allowed}")
    return key
