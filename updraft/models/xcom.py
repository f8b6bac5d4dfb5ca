"""XComs: small values that tasks pass to each other, stored as JSON text.

``serialize_value`` turns a value into JSON: plain JSON types as they are, plus a tagged form
for aware or naive datetimes, dates, timedeltas, tuples, sets, frozensets and Decimals, so that
they come back as the same type. Anything else (bytes, objects, numpy scalars) is refused with
an error that names the task, the type and where in the value it was. ``[core] xcom_max_size``
caps the size of the stored text.

The store functions take an explicit session and never commit: the caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from updraft.config import conf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

XCOM_RETURN_KEY = "return_value"
TYPE_TAG = "__type__"
VALUE_TAG = "__value__"
SUPPORTED = ("dict, list, str, int, float, bool, None, datetime, date, timedelta, tuple, set, "
             "Decimal")


class XComSizeError(ValueError):
    """An XCom value whose JSON form is larger than ``[core] xcom_max_size``."""


def _task_label(task_id: str | None, key: str | None) -> str:
    label = task_id or "?"
    if key and key != XCOM_RETURN_KEY:
        label += f" (key {key!r})"
    return label


def _not_serializable(value: Any, path: str, task_id: str | None, key: str | None,
                      hint: str = "") -> TypeError:
    kind = type(value)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    where = f" at {path}" if path != "value" else ""
    return TypeError(
        f"XCom value of task {_task_label(task_id, key)} is not JSON-serializable: {name}{where}; "
        f"{hint}return something JSON can store ({SUPPORTED})")


def _encode(value: Any, path: str, task_id: str | None, key: str | None) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        if type(value) not in (type(None), bool, int, float, str):
            # Subclasses (enums, numpy types registered as int...) would not come back as such.
            if isinstance(value, str):
                return str.__str__(value)
            return int(value) if isinstance(value, int) else float(value)
        return value
    if isinstance(value, dict):
        encoded = {}
        needs_escape = TYPE_TAG in value
        for k, item in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise _not_serializable(k, f"{path} key {k!r}", task_id, key,
                                        "dict keys must be str, int, float, bool or None; ")
            encoded[k] = _encode(item, f"{path}[{k!r}]", task_id, key)
        if needs_escape:
            # A user dict that looks like a tag: store it as pairs so it is never decoded as one.
            return {TYPE_TAG: "dict", VALUE_TAG: [[k, v] for k, v in encoded.items()]}
        return encoded
    if isinstance(value, list):
        return [_encode(item, f"{path}[{i}]", task_id, key) for i, item in enumerate(value)]
    if isinstance(value, tuple):
        return {TYPE_TAG: "tuple",
                VALUE_TAG: [_encode(item, f"{path}[{i}]", task_id, key)
                            for i, item in enumerate(value)]}
    if isinstance(value, (set, frozenset)):
        items = [_encode(item, f"{path} item", task_id, key) for item in value]
        try:
            items.sort(key=lambda x: json.dumps(x, sort_keys=True))
        except TypeError:
            pass
        return {TYPE_TAG: "frozenset" if isinstance(value, frozenset) else "set", VALUE_TAG: items}
    if isinstance(value, dt.datetime):
        return {TYPE_TAG: "datetime", VALUE_TAG: value.isoformat()}
    if isinstance(value, dt.date):
        return {TYPE_TAG: "date", VALUE_TAG: value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {TYPE_TAG: "timedelta",
                VALUE_TAG: [value.days, value.seconds, value.microseconds]}
    if isinstance(value, Decimal):
        return {TYPE_TAG: "decimal", VALUE_TAG: str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise _not_serializable(value, path, task_id, key,
                                "decode bytes to str (or base64-encode them) first; ")
    # -- large values (updraft.xcom_backends): a reference is stored as such; in a running
    # try a Dask collection or a pandas / numpy value is accepted, and replaced by its
    # reference before the try's result leaves its process --
    from updraft.xcom_backends import REF_TAG, XComReference, current_scope, value_kind

    if isinstance(value, XComReference):
        return {TYPE_TAG: REF_TAG, VALUE_TAG: value.to_json()}
    kind = value_kind(value)
    if kind is not None:
        if current_scope() is not None:
            return {TYPE_TAG: REF_TAG, VALUE_TAG: {"pending": kind}}
        raise _not_serializable(value, path, task_id, key,
                                "a task's large values are kept on the Dask cluster or in "
                                "object storage only when the task returns or pushes them; ")
    # -- end large values --
    raise _not_serializable(value, path, task_id, key)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    if TYPE_TAG in value and set(value) == {TYPE_TAG, VALUE_TAG}:
        kind, payload = value[TYPE_TAG], value[VALUE_TAG]
        if kind == "datetime":
            return dt.datetime.fromisoformat(payload)
        if kind == "date":
            return dt.date.fromisoformat(payload)
        if kind == "timedelta":
            days, seconds, microseconds = payload
            return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
        if kind == "decimal":
            return Decimal(payload)
        if kind == "tuple":
            return tuple(_decode(item) for item in payload)
        if kind == "set":
            return {_decode(item) for item in payload}
        if kind == "frozenset":
            return frozenset(_decode(item) for item in payload)
        if kind == "dict":
            return {k: _decode(v) for k, v in payload}
        if kind == "xcom_ref":  # a large value kept outside the store (xcom_backends)
            from updraft.xcom_backends import XComReference

            return XComReference.from_json(payload)
        raise ValueError(f"unknown XCom type tag {kind!r}: written by a newer Updraft?")
    return {k: _decode(v) for k, v in value.items()}


def serialize_value(value: Any, *, task_id: str | None = None, key: str | None = None) -> str:
    """The JSON text stored for ``value``; TypeError or XComSizeError with a precise message."""
    encoded = _encode(value, "value", task_id, key)
    try:
        text = json.dumps(encoded, separators=(",", ":"), allow_nan=True)
    except (TypeError, ValueError) as exc:  # e.g. a circular reference
        raise TypeError(f"XCom value of task {_task_label(task_id, key)} is not "
                        f"JSON-serializable: {exc}") from None
    limit = conf.getint("core", "xcom_max_size")
    size = len(text.encode("utf-8"))
    if limit and size > limit:
        raise XComSizeError(
            f"XCom value of task {_task_label(task_id, key)} is {size} bytes as JSON, more than "
            f"[core] xcom_max_size = {limit} bytes; store large data elsewhere (a file, a table, "
            "object storage) and push its location instead")
    return text


def deserialize_value(text: str | None) -> Any:
    """The value that ``serialize_value`` stored as ``text`` (None stays None).

    A large value kept outside the store comes back as its ``XComReference``, except in a
    running try, where it is fetched (from the Dask cluster or object storage)."""
    if text is None:
        return None
    value = _decode(json.loads(text))
    if REF_MARK in text:
        from updraft.xcom_backends import current_scope, resolve_references

        if current_scope() is not None:
            return resolve_references(value)
    return value


REF_MARK = '"__type__":"xcom_ref"'


@dataclass(frozen=True)
class XComRecord:
    """One stored XCom with its value deserialized."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    key: str
    value: Any
    timestamp: dt.datetime


def set_xcom(session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
             key: str = XCOM_RETURN_KEY, value: Any) -> None:
    """Store (insert or replace) one XCom value; does not commit."""
    from sqlalchemy import insert

    from updraft.store.models import XComModel, utcnow

    text = serialize_value(value, task_id=task_id, key=key)
    row = {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "map_index": map_index,
           "key": key, "value": text, "timestamp": utcnow()}
    table = XComModel.__table__
    from updraft.store.engine import dialect_of

    dialect = dialect_of(session).name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        stmt = dialect_insert(table).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key.columns],
            set_={"value": stmt.excluded.value, "timestamp": stmt.excluded.timestamp})
    elif dialect in ("mysql", "mariadb"):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt = mysql_insert(table).values(**row)
        stmt = stmt.on_duplicate_key_update(value=stmt.inserted.value,
                                            timestamp=stmt.inserted.timestamp)
    else:  # pragma: no cover - only the three supported backends reach here
        clear_xcoms(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                    key=key)
        stmt = insert(table).values(**row)
    session.execute(stmt)


def get_xcom(session: Session, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1,
             key: str = XCOM_RETURN_KEY) -> Any:
    """The stored value, or None if there is none."""
    from sqlalchemy import select

    from updraft.store.models import XComModel

    text = session.execute(select(XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == task_id,
        XComModel.map_index == map_index, XComModel.key == key)).scalar()
    return deserialize_value(text)


def get_xcom_rows(session: Session, *, dag_id: str, run_id: str,
                  task_ids: Iterable[str] | str | None = None, key: str | None = None,
                  map_indexes: Iterable[int] | int | None = None) -> list[XComRecord]:
    """XComs of a run, filtered by tasks, key and map indexes, ordered by task, index, key."""
    from sqlalchemy import select

    from updraft.store.models import XComModel

    query = select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
    if task_ids is not None:
        task_ids = [task_ids] if isinstance(task_ids, str) else list(task_ids)
        query = query.where(XComModel.task_id.in_(task_ids))
    if key is not None:
        query = query.where(XComModel.key == key)
    if map_indexes is not None:
        map_indexes = [map_indexes] if isinstance(map_indexes, int) else list(map_indexes)
        query = query.where(XComModel.map_index.in_(map_indexes))
    query = query.order_by(XComModel.task_id, XComModel.map_index, XComModel.key)
    return [XComRecord(r.dag_id, r.run_id, r.task_id, r.map_index, r.key,
                       deserialize_value(r.value), r.timestamp)
            for r in session.scalars(query)]


def clear_xcoms(session: Session, *, dag_id: str, run_id: str, task_id: str,
                map_index: int | None = None, key: str | None = None) -> int:
    """Delete the XComs of a task (one map index, or all if None); return how many went."""
    from sqlalchemy import delete

    from updraft.store.models import XComModel

    stmt = delete(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id,
                                   XComModel.task_id == task_id)
    if map_index is not None:
        stmt = stmt.where(XComModel.map_index == map_index)
    if key is not None:
        stmt = stmt.where(XComModel.key == key)
    return session.execute(stmt).rowcount or 0


class XCom:
    """Airflow-style access to XComs; every method takes the caller's session."""

    serialize_value = staticmethod(serialize_value)
    deserialize_value = staticmethod(deserialize_value)

    @classmethod
    def set(cls, key: str, value: Any, *, task_id: str, dag_id: str, run_id: str,
            map_index: int = -1, session: Session) -> None:
        """Store one value (see ``set_xcom``)."""
        set_xcom(session, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index,
                 key=key, value=value)

    @classmethod
    def get_one(cls, *, dag_id: str, run_id: str, task_id: str, key: str = XCOM_RETURN_KEY,
                map_index: int = -1, session: Session) -> Any:
        """One value, or None (see ``get_xcom``)."""
        return get_xcom(session, dag_id=dag_id, run_id=run_id, task_id=task_id,
                        map_index=map_index, key=key)

    @classmethod
    def get_many(cls, *, dag_id: str, run_id: str, task_ids: Iterable[str] | str | None = None,
                 key: str | None = None, map_indexes: Iterable[int] | int | None = None,
                 session: Session) -> list[XComRecord]:
        """Several records (see ``get_xcom_rows``)."""
        return get_xcom_rows(session, dag_id=dag_id, run_id=run_id, task_ids=task_ids, key=key,
                             map_indexes=map_indexes)

    @classmethod
    def clear(cls, *, dag_id: str, run_id: str, task_id: str, map_index: int | None = None,
              session: Session) -> int:
        """Delete a task's XComs (see ``clear_xcoms``)."""
        return clear_xcoms(session, dag_id=dag_id, run_id=run_id, task_id=task_id,
                           map_index=map_index)
