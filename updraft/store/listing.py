"""What ``updraft dags list`` and ``dags list-import-errors`` read: the active DAGs and the
import errors the DAG processor stored, and nothing else.

These are the first commands people type, so they must answer at once. On SQLite (the
default store) the two SELECTs below run on the standard library's ``sqlite3``: they take a
millisecond, where importing SQLAlchemy alone takes about 0.2 s on a small machine. Other
databases run the same SQL through SQLAlchemy. The SQL is the one of ``updraft.store.dags``
(``list_dags``, ``list_import_errors``), written out because the ORM is what costs.

Reading never creates nor migrates the store: a store without Updraft's tables simply holds
nothing yet (``Listing.schema_missing``). A store that cannot be read raises
``StoreUnreadable`` saying which store and why.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DAGS_SQL = ("SELECT dag_id, fileloc, owners, is_paused, schedule_description, tags "
            "FROM dag WHERE is_active = :active ORDER BY dag_id")
IMPORT_ERRORS_SQL = "SELECT filename, stacktrace FROM import_error ORDER BY filename"
COUNT_DAGS_SQL = "SELECT COUNT(*) FROM dag"
COUNT_IMPORT_ERRORS_SQL = "SELECT COUNT(*) FROM import_error"

# sqlite:///relative.db, sqlite:////absolute.db, sqlite+pysqlite:///..., with ?options.
_SQLITE_FILE_URL = re.compile(r"sqlite(\+pysqlite)?:///(?P<path>[^?]+)(\?.*)?")


class StoreUnreadable(RuntimeError):
    """The store cannot be reached or read; the message names it (password hidden)."""


@dataclass(frozen=True)
class ListedDag:
    """One active DAG as ``updraft dags list`` shows it."""

    dag_id: str
    fileloc: str | None
    owners: str | None
    is_paused: bool
    schedule: str | None
    tags: list[str]


@dataclass(frozen=True)
class ListedImportError:
    """One DAG file that failed to import, with its error."""

    filename: str
    error: str


@dataclass
class Listing:
    """What was read. Counts are filled even for the part not listed."""

    store: str
    dags: list[ListedDag] = field(default_factory=list)
    import_errors: list[ListedImportError] = field(default_factory=list)
    dag_count: int = 0
    import_error_count: int = 0
    #: The store has no Updraft tables yet (or, for SQLite, no file): nothing was stored.
    schema_missing: bool = False


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory SQLite."""
    match = _SQLITE_FILE_URL.fullmatch(url)
    if match is None or match["path"] == ":memory:":
        return None
    return Path(match["path"])


def read_listing(url: str | None = None, *, dags: bool = False,
                 import_errors: bool = False) -> Listing:
    """Read the stored DAGs (``dags``) and/or import errors (``import_errors``), and the
    number of both, from the store at ``url`` (default: ``[database] sql_alchemy_conn``)."""
    if url is None:
        from updraft.config import conf

        url = conf.sql_alchemy_conn()
    path = sqlite_file(url)
    if path is not None:
        return _read_sqlite(url, path, dags, import_errors)
    return _read_sqlalchemy(url, dags, import_errors)


def _tags(value: Any) -> list[str]:
    if isinstance(value, (str, bytes)):
        value = json.loads(value)
    return list(value or [])


def _fill(listing: Listing, run, want_dags: bool, want_errors: bool) -> Listing:
    """Run the queries with ``run(sql, params) -> rows`` and fill ``listing``."""
    listing.dag_count = run(COUNT_DAGS_SQL, {})[0][0]
    listing.import_error_count = run(COUNT_IMPORT_ERRORS_SQL, {})[0][0]
    if want_dags:
        listing.dags = [ListedDag(r[0], r[1], r[2], bool(r[3]), r[4], _tags(r[5]))
                        for r in run(DAGS_SQL, {"active": True})]
    if want_errors:
        listing.import_errors = [ListedImportError(r[0], r[1])
                                 for r in run(IMPORT_ERRORS_SQL, {})]
    return listing


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_sqlite(url: str, path: Path, want_dags: bool, want_errors: bool) -> Listing:
    import sqlite3
    import urllib.parse

    listing = Listing(store=url)
    if not path.exists():
        listing.schema_missing = True
        return listing
    try:
        # mode=rw: never create the file; a read in WAL mode may still need to write -shm.
        connection = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode=rw", uri=True, timeout=30.0)
    except sqlite3.Error as exc:
        raise StoreUnreadable(f"cannot reach the store at {url}: {_first_line(exc)}") from None
    try:
        tables = {row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name IN ('dag', 'import_error')")}
        if tables != {"dag", "import_error"}:
            listing.schema_missing = True
            return listing
        return _fill(listing, lambda sql, params: connection.execute(sql, params).fetchall(),
                     want_dags, want_errors)
    except (sqlite3.Error, ValueError) as exc:
        raise StoreUnreadable(f"cannot read the store at {url}: {_first_line(exc)} (is it "
                              "at this Updraft's schema? `updraft db check` tells)") from None
    finally:
        connection.close()


def _read_sqlalchemy(url: str, want_dags: bool, want_errors: bool) -> Listing:
    from sqlalchemy import inspect, text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    from updraft.store.engine import get_engine
    from updraft.store.migrate import display_url

    where = display_url(url)
    listing = Listing(store=where)
    try:
        connection = get_engine(url).connect()
    except DBAPIError as exc:
        reason = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
        raise StoreUnreadable(f"cannot reach the store at {where}: {reason}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StoreUnreadable(f"cannot reach the store at {where}: {_first_line(exc)}") from None
    with connection:
        try:
            inspector = inspect(connection)
            if not (inspector.has_table("dag") and inspector.has_table("import_error")):
                listing.schema_missing = True
                return listing
            return _fill(listing, lambda sql, params: connection.execute(text(sql),
                                                                         params).all(),
                         want_dags, want_errors)
        except (SQLAlchemyError, ValueError) as exc:
            raise StoreUnreadable(f"cannot read the store at {where}: {_first_line(exc)} (is "
                                  "it at this Updraft's schema? `updraft db check` tells)") from None


__all__ = ["ListedDag", "ListedImportError", "Listing", "StoreUnreadable", "read_listing",
           "sqlite_file"]
