"""Secrets kept out of everything the web shows: free text that tasks wrote (XCom values, logs,
rendered fields, errors, a run's conf, the audit log) passes through ``shown()``.

The task runner masks logs and rendered fields when it writes them, with the secrets its
process read. The web adds a second line of defence for what the runner does not mask (an
XCom is stored as the task returned it, since downstream tasks need the real value) and for
rows written before a secret existed: once per request it registers with the same masker
(``updraft.secrets``) every secret the store and this process's environment hold, sensitive
variables (each value of a JSON one too), connection passwords (also percent-encoded, as in a
URI) and the sensitive fields of connection extras, then ``redact()`` replaces them by ***.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

_VAR_PREFIXES = ("UPDRAFT_VAR_", "AIRFLOW_VAR_")
_CONN_PREFIXES = ("UPDRAFT_CONN_", "AIRFLOW_CONN_")


def _mask_every_value(value: Any) -> None:
    """Register a sensitive variable's value, and each string or number inside a JSON one."""
    from updraft.secrets import mask_secret

    mask_secret(value)
    if not isinstance(value, str):
        return
    try:
        parsed = json.loads(value)
    except ValueError:
        return
    stack = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif not isinstance(item, bool):
            mask_secret(item)


def _mask_password(password: str | None) -> None:
    from updraft.secrets import mask_secret

    if password:
        for form in {password, quote(password, safe=""), quote_plus(password)}:
            mask_secret(form)


def _mask_extra(extra: str | None) -> None:
    from updraft.secrets import mask_secret

    if not extra:
        return
    try:
        mask_secret(json.loads(extra))  # the values under sensitive keys, at any depth
    except ValueError:
        pass


def register_known_secrets() -> None:
    """Register with the masker every secret the store and the environment hold (once per
    request; a failure to read them is logged, and masking goes on with what is known)."""
    from flask import g, has_request_context

    if has_request_context():
        if g.get("_updraft_secrets_known"):
            return
        g._updraft_secrets_known = True
    try:
        _register_store_secrets()
    except Exception:  # noqa: BLE001  (a store hiccup must not turn a page into a 500)
        log.warning("could not read the secrets to mask", exc_info=True)
    _register_environment_secrets()


def _register_store_secrets() -> None:
    from sqlalchemy import select

    from updraft.secrets import SecretsError, decrypt, should_hide_value_for_key
    from updraft.store.engine import session_scope
    from updraft.store.models import ConnectionModel, VariableModel

    with session_scope() as session:
        for key, val, encrypted in session.execute(select(
                VariableModel.key, VariableModel.val, VariableModel.is_encrypted)):
            if val is None or not should_hide_value_for_key(key):
                continue
            try:
                _mask_every_value(decrypt(val, what=f"variable {key}") if encrypted else val)
            except SecretsError:
                continue
        for row in session.execute(select(
                ConnectionModel.conn_id, ConnectionModel.password, ConnectionModel.is_encrypted,
                ConnectionModel.extra, ConnectionModel.is_extra_encrypted)):
            try:
                password = decrypt(row.password) if row.password and row.is_encrypted \
                    else row.password
                extra = decrypt(row.extra) if row.extra and row.is_extra_encrypted \
                    else row.extra
            except SecretsError:
                continue
            _mask_password(password)
            _mask_extra(extra)


def _register_environment_secrets() -> None:
    from updraft.secrets import should_hide_value_for_key

    for name, value in os.environ.items():
        if name.startswith(_VAR_PREFIXES):
            key = name.split("_VAR_", 1)[1]
            if should_hide_value_for_key(key):
                _mask_every_value(value)
        elif name.startswith(_CONN_PREFIXES):
            try:
                from updraft.models.connection import Connection

                text = value.strip()
                conn = (Connection.from_json(text) if text.startswith("{")
                        else Connection(uri=text))
            except Exception:  # noqa: BLE001  (an unparsable definition holds no known secret)
                continue
            _mask_password(conn.password)
            _mask_extra(conn.extra)


def shown(value: Any, name: str | None = None) -> Any:
    """``value`` as the web may show it: known secrets, and whatever sits under a sensitive
    key (password, token, secret...), replaced by ***."""
    from updraft.secrets import redact

    if value is None:
        return None
    register_known_secrets()
    return redact(value, name)


__all__ = ["register_known_secrets", "shown"]
