"""Encryption of secrets at rest and masking of secrets in logs.

Connection passwords and extras and variable values are stored Fernet-encrypted. The key is
``[core] fernet_key``; when empty, one is generated once into ``$UPDRAFT_HOME/fernet.key``
(mode 0600) and reused. Several comma-separated keys may be given: the first encrypts, all
decrypt, so a key can be rotated without losing data (``rotate()`` re-encrypts a token).

``mask_secret()`` registers a value that ``redact()`` and the ``SecretsMasker`` log filter then
replace by ``***``. ``cryptography`` is imported only when a key is first needed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from updraft.config import conf, updraft_home

REDACTED = "***"
MIN_MASK_LENGTH = 3
DEFAULT_SENSITIVE_FIELDS = frozenset({
    "access_token", "api_key", "apikey", "authorization", "passphrase", "passwd", "password",
    "private_key", "secret", "token",
})

_fernet_lock = threading.Lock()
_fernet_cache: dict[tuple[str, str], Any] = {}


class SecretsError(ValueError):
    """A Fernet key that is invalid, or a token that the configured keys cannot decrypt."""


def key_file() -> Path:
    """Where the generated Fernet key lives when ``[core] fernet_key`` is empty."""
    return updraft_home() / "fernet.key"


def generate_fernet_key() -> str:
    """A new random Fernet key (url-safe base64 text)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _load_or_create_key_file() -> str:
    path = key_file()
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to a private temporary file, then hard-link it into place: the link fails if
    # another process won the race, and nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(generate_fernet_key() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


def get_fernet():
    """The MultiFernet built from ``[core] fernet_key`` (or the generated key file)."""
    configured = str(conf.get("core", "fernet_key") or "").strip()
    cache_key = (configured, str(key_file()) if not configured else "")
    fernet = _fernet_cache.get(cache_key)
    if fernet is not None:
        return fernet
    with _fernet_lock:
        fernet = _fernet_cache.get(cache_key)
        if fernet is not None:
            return fernet
        from cryptography.fernet import Fernet, MultiFernet

        source = "[core] fernet_key" if configured else str(key_file())
        keys = [k.strip() for k in (configured or _load_or_create_key_file()).split(",")]
        keys = [k for k in keys if k]
        if not keys:
            raise SecretsError(f"{source} holds no Fernet key")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError) as exc:
                raise SecretsError(
                    f"{source}: key #{position} is not a valid Fernet key ({exc}); generate one "
                    "with `python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`") from None
        fernet = MultiFernet(fernets)
        _fernet_cache[cache_key] = fernet
        return fernet


def encrypt(text: str) -> str:
    """Encrypt ``text`` with the first configured key."""
    return get_fernet().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt(token: str, what: str = "the value") -> str:
    """Decrypt a token made by ``encrypt``; ``what`` names the secret in the error message."""
    from cryptography.fernet import InvalidToken

    try:
        return get_fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsError(
            f"cannot decrypt {what}: the fernet key does not match the one used to encrypt it "
            "(set [core] fernet_key to a comma-separated list: the new key first, then the old "
            "one)") from None


def rotate(token: str, what: str = "the value") -> str:
    """Re-encrypt a token with the first configured key (after a key was added in front)."""
    from cryptography.fernet import InvalidToken

    try:
        return get_fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise SecretsError(
            f"cannot decrypt {what}: the fernet key does not match the one used to encrypt it"
        ) from None


# Masking ---------------------------------------------------------------------------------


def should_hide_value_for_key(name: Any) -> bool:
    """True if a variable, connection field or dict key called ``name`` holds a secret."""
    if not isinstance(name, str) or not name:
        return False
    if not conf.getboolean("core", "hide_sensitive_var_conn_fields"):
        return False
    lowered = name.strip().lower()
    extra = str(conf.get("core", "sensitive_var_conn_names") or "")
    words = DEFAULT_SENSITIVE_FIELDS | {w.strip().lower() for w in extra.split(",") if w.strip()}
    return any(word in lowered for word in words)


class _Registry:
    """The set of secret strings to hide, and one regex that finds any of them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.patterns: set[str] = set()
        self.regex: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        forms = {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
        forms = {f for f in forms if len(f) >= MIN_MASK_LENGTH}
        with self.lock:
            if forms <= self.patterns:
                return
            self.patterns |= forms
            # Longest first, so a secret that contains another is hidden whole.
            ordered = sorted(self.patterns, key=len, reverse=True)
            self.regex = re.compile("|".join(re.escape(p) for p in ordered))

    def clear(self) -> None:
        with self.lock:
            self.patterns = set()
            self.regex = None


_registry = _Registry()


def mask_secret(value: Any, name: str | None = None) -> None:
    """Hide ``value`` from logs from now on (dicts: the values of sensitive keys only)."""
    if value is None:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            mask_secret(item, key)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            mask_secret(item, name)
        return
    if name is not None and not should_hide_value_for_key(name):
        return
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return
    text = str(value)
    if len(text) < MIN_MASK_LENGTH:
        return
    _registry.add(text)
    # A multi-line secret (a private key) often reaches logs one line at a time.
    if "\n" in text:
        for line in text.splitlines():
            if len(line.strip()) >= MIN_MASK_LENGTH:
                _registry.add(line.strip())


def clear_masks() -> None:
    """Forget every registered secret (tests, and a task runner between tries)."""
    _registry.clear()


def redact(value: Any, name: str | None = None) -> Any:
    """Replace registered secrets in ``value`` by ``***`` (strings, and inside dicts and lists).

    Values under a sensitive key (``name`` or a dict key) are replaced whole.
    """
    if name is not None and should_hide_value_for_key(name) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        regex = _registry.regex
        return regex.sub(REDACTED, value) if regex is not None else value
    if isinstance(value, dict):
        return {key: redact(item, key) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item) for item in value)
    return value


class SecretsMasker(logging.Filter):
    """A logging filter that replaces registered secrets in messages, arguments and tracebacks.

    Attach it to handlers (a filter on a logger does not see records of its children).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _registry.regex is None or getattr(record, "_updraft_redacted", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):  # a broken format: the handler reports it
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._updraft_redacted = True
        return True


_masker = SecretsMasker()


def get_secrets_masker() -> SecretsMasker:
    """The process-wide masker filter."""
    return _masker


