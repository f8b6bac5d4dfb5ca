"""Variables: named values that DAGs read at run time, with Airflow's ``Variable`` API.

``Variable.get`` looks at the environment first (``UPDRAFT_VAR_<KEY>``, then
``AIRFLOW_VAR_<KEY>`` for DAGs migrated from Airflow), then the secrets backends of
``[secrets] backends`` (``updraft.secrets_backends``), then the store. Values are stored
Fernet-encrypted; values of sensitive keys (``password``, ``secret``, ``token``...) are
registered with the log masker when read or written.

Every method takes an optional ``session``: given one, it neither commits nor closes it (the
caller owns the transaction); without one, it uses a short ``session_scope()`` of its own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from updraft.secrets import decrypt, encrypt, mask_secret, should_hide_value_for_key

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ENV_PREFIXES = ("UPDRAFT_VAR_", "AIRFLOW_VAR_")
_NOT_SET = object()


@contextmanager
def _session(session: Session | None) -> Iterator[Session]:
    if session is not None:
        yield session
        return
    from updraft.store.engine import session_scope
    from updraft.store.migrate import ensure_migrated

    ensure_migrated()
    with session_scope() as own:
        yield own


def _from_env(key: str) -> str | None:
    for prefix in ENV_PREFIXES:
        value = os.environ.get(prefix + key.upper())
        if value is not None:
            return value
    return None


def _loads(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"Variable {key} is not valid JSON ({exc.msg} at line {exc.lineno} "
                         f"column {exc.colno}); read it without deserialize_json") from None


def _decrypted(row) -> str | None:
    if row.val is None or not row.is_encrypted:
        return row.val
    return decrypt(row.val, what=f"variable {row.key}")


def _row(session: Session, key: str):
    from sqlalchemy import select

    from updraft.store.models import VariableModel

    return session.scalars(select(VariableModel).where(VariableModel.key == key)).first()


def _protect(key: str, value: str | None) -> str | None:
    if value is not None and should_hide_value_for_key(key):
        mask_secret(value)
    return value


class Variable:
    """Airflow-compatible access to variables (class methods only)."""

    @classmethod
    def get(cls, key: str, default_var: Any = _NOT_SET, deserialize_json: bool = False,
            session: Session | None = None, *, default: Any = _NOT_SET) -> Any:
        """The value of ``key`` (parsed as JSON if asked); ``default_var`` or KeyError if missing.

        ``default`` is Airflow 3's name for ``default_var``.
        """
        if default is not _NOT_SET:
            default_var = default
        value = _from_env(key)
        if value is None:
            from updraft.secrets_backends import get_variable as from_backends

            value = from_backends(key)
        if value is None:
            with _session(session) as s:
                row = _row(s, key)
                value = _decrypted(row) if row is not None else None
                found = row is not None
        else:
            found = True
        if not found:
            if default_var is not _NOT_SET:
                return default_var
            raise KeyError(f"Variable {key} does not exist")
        _protect(key, value)
        if deserialize_json and value is not None:
            parsed = _loads(key, value)
            if should_hide_value_for_key(key):
                mask_secret(parsed)
            return parsed
        return value

    @classmethod
    def set(cls, key: str, value: Any, description: str | None = None,
            serialize_json: bool = False, session: Session | None = None) -> None:
        """Create or replace ``key`` (its description too, when one is given)."""
        if not key or not isinstance(key, str):
            raise ValueError(f"a variable key must be a non-empty string, got {key!r}")
        if serialize_json:
            try:
                text = json.dumps(value, indent=2)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"Variable {key}: value is not JSON-serializable: {exc}") from None
        else:
            text = value if isinstance(value, str) else str(value)
        _protect(key, text)
        from updraft.store.models import VariableModel

        with _session(session) as s:
            row = _row(s, key)
            if row is None:
                row = VariableModel(key=key)
                s.add(row)
            row.val = encrypt(text)
            row.is_encrypted = True
            if description is not None:
                row.description = description
            s.flush()

    @classmethod
    def update(cls, key: str, value: Any, serialize_json: bool = False,
               session: Session | None = None) -> None:
        """Change the value of an existing ``key``; KeyError if it does not exist in the store."""
        with _session(session) as s:
            if _row(s, key) is None:
                raise KeyError(f"Variable {key} does not exist")
            cls.set(key, value, serialize_json=serialize_json, session=s)

    @classmethod
    def setdefault(cls, key: str, default: Any, description: str | None = None,
                   deserialize_json: bool = False, session: Session | None = None) -> Any:
        """The value of ``key``; if missing, store ``default`` and return it."""
        value = cls.get(key, default_var=None, deserialize_json=deserialize_json, session=session)
        if value is not None:
            return value
        if default is None:
            raise ValueError(f"Variable {key} does not exist and the default given is None")
        cls.set(key, default, description=description, serialize_json=deserialize_json,
                session=session)
        return default

    @classmethod
    def delete(cls, key: str, session: Session | None = None) -> int:
        """Delete ``key`` from the store; return how many rows went (0 or 1)."""
        from sqlalchemy import delete

        from updraft.store.models import VariableModel

        with _session(session) as s:
            result = s.execute(delete(VariableModel).where(VariableModel.key == key))
            return result.rowcount or 0

    @classmethod
    def get_description(cls, key: str, session: Session | None = None) -> str | None:
        """The description stored with ``key`` (None if it has none or does not exist)."""
        with _session(session) as s:
            row = _row(s, key)
            return row.description if row is not None else None


def list_variables(session: Session | None = None) -> list[dict[str, Any]]:
    """Every variable in the store, sorted by key: ``{"key", "val", "description"}`` (decrypted)."""
    from sqlalchemy import select

    from updraft.store.models import VariableModel

    with _session(session) as s:
        rows = s.scalars(select(VariableModel).order_by(VariableModel.key)).all()
        return [{"key": r.key, "val": _protect(r.key, _decrypted(r)), "description": r.description}
                for r in rows]


def rotate_variables(session: Session) -> int:
    """Re-encrypt every variable with the first Fernet key; return how many; does not commit."""
    from sqlalchemy import select

    from updraft.secrets import rotate
    from updraft.store.models import VariableModel

    count = 0
    for row in session.scalars(select(VariableModel)):
        if row.val is None:
            continue
        row.val = rotate(row.val, what=f"variable {row.key}") if row.is_encrypted else encrypt(row.val)
        row.is_encrypted = True
        count += 1
    session.flush()
    return count
