"""Engines and sessions for the store.

``get_engine()`` returns one engine per URL (SQLite in WAL mode with a busy timeout; PostgreSQL
and MariaDB with a pre-ping pool). ``new_session()`` opens a session; the caller owns the
transaction and commits it. ``session_scope()`` is the with-statement form for short jobs.
"""

from __future__ import annotations

import functools
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from updraft.config import conf

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_makers: dict[str, sessionmaker] = {}
#: Sessions that take SQLite's write lock when they begin (the same maker elsewhere).
_write_makers: dict[str, sessionmaker] = {}
_write_engines: dict[str, Engine] = {}
#: What write transactions of Core connections run on (the write engine, with its options).
_write_binds: dict[str, Engine] = {}


@functools.lru_cache(maxsize=256)
def normalise_url(url: str) -> str:
    """Pick the driver Updraft ships for URLs written without one."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername in ("mysql", "mariadb"):
        parsed = parsed.set(drivername="mysql+pymysql")
    if parsed.drivername.startswith("mysql") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_write_pragmas(dbapi_connection, record) -> None:
    """Connections of write sessions never sleep in SQLite's busy handler: they only meet
    the lock at BEGIN IMMEDIATE, which ``_take_write_lock`` retries itself."""
    _sqlite_pragmas(dbapi_connection, record)
    dbapi_connection.execute("PRAGMA busy_timeout=0")


def _take_write_lock(raw, busy_handler_on: bool = True) -> None:
    """BEGIN IMMEDIATE on a pysqlite connection, retried every fraction of a millisecond.

    SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25... ms between tries, so a writer
    that meets the lock of another often waits far longer than the lock is held (a task
    runner's transaction holds it for about a millisecond). ``busy_handler_on``: the
    connection has a busy timeout, turned off while trying here.
    """
    import sqlite3
    import time

    if busy_handler_on:
        raw.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + 30.0
        pause = 0.0002
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 1.5, 0.005)
    finally:
        if busy_handler_on:
            raw.execute("PRAGMA busy_timeout=30000")


def _sqlite_begin(conn) -> None:
    """Write sessions (``write=True``) take the write lock when they begin."""
    if conn.get_execution_options().get("sqlite_begin") != "IMMEDIATE":
        return
    raw = conn.connection.dbapi_connection
    if not raw.in_transaction:
        _take_write_lock(raw, busy_handler_on=not conn.get_execution_options().get(
            "sqlite_busy_off"))


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")


def _sqlite_before_execute(conn, _cursor, statement: str, _parameters, _context,
                           _executemany) -> None:
    """Other sessions read outside a transaction (pysqlite begins one only before the first
    write) and take the write lock at their first write, the fast way, so the lock is held
    only from the first write to the commit and nobody sleeps in SQLite's busy handler."""
    if statement[:6].upper() not in _WRITES:
        return
    raw = conn.connection.dbapi_connection
    if not raw.in_transaction:
        _take_write_lock(raw)


def get_engine(url: str | None = None) -> Engine:
    """Return the shared engine for ``url`` (default: the configured store)."""
    url = normalise_url(url or conf.sql_alchemy_conn())
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        parsed = make_url(url)
        kwargs: dict = {"future": True, "echo": bool(conf.get("database", "echo"))}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=conf.getint("database", "pool_size"),
                          max_overflow=10, pool_recycle=1800)
        engine = create_engine(url, **kwargs)
        writer = engine
        if parsed.get_backend_name() == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "before_cursor_execute", _sqlite_before_execute)
            event.listen(engine, "begin", _sqlite_begin)
            if parsed.database and parsed.database != ":memory:":
                # Write sessions get connections of their own (see _sqlite_write_pragmas).
                writer = create_engine(url, **kwargs)
                event.listen(writer, "connect", _sqlite_write_pragmas)
                event.listen(writer, "begin", _sqlite_begin)
                _write_engines[url] = writer
                writer = writer.execution_options(sqlite_begin="IMMEDIATE",
                                                  sqlite_busy_off=True)
            else:  # one in-memory database: one engine
                writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        _engines[url] = engine
        _makers[url] = sessionmaker(bind=engine, expire_on_commit=False, future=True)
        _write_makers[url] = sessionmaker(bind=writer, expire_on_commit=False, future=True)
        _write_binds[url] = writer
        return engine


def new_session(url: str | None = None, write: bool = False) -> Session:
    """Open a session on the store; the caller commits and closes it. ``write=True`` says the
    session will write: on SQLite it takes the write lock at its start (BEGIN IMMEDIATE)."""
    return _registered(_write_makers if write else _makers, url)()


def _registered(registry: dict, url: str | None):
    """What ``get_engine`` registered in ``registry`` for ``url`` (made on first use)."""
    key = normalise_url(url or conf.sql_alchemy_conn())
    found = registry.get(key)
    if found is None:
        get_engine(key)
        found = registry[key]
    return found


@contextmanager
def session_scope(url: str | None = None, write: bool = False) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises."""
    session = new_session(url, write=write)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def write_transaction(url: str | None = None) -> Iterator[Connection]:
    """A Core connection in a write transaction (on SQLite it holds the write lock from its
    start), committed when the block ends and rolled back if it raises. Cheaper than a
    session for short jobs of prebuilt statements (the task runner's)."""
    with _registered(_write_binds, url).begin() as connection:
        yield connection


def dialect_of(bind: Session | Connection):
    """The dialect behind a session or a connection."""
    dialect = getattr(bind, "dialect", None)
    return dialect if dialect is not None else bind.get_bind().dialect


def dispose_engines(close: bool = True) -> None:
    """Forget every engine and its pooled connections (tests). In a process just forked,
    pass ``close=False``: the connections belong to the parent, which goes on using them,
    so they are dropped without being closed."""
    with _lock:
        for engine in [*_engines.values(), *_write_engines.values()]:
            engine.dispose(close=close)
        _engines.clear()
        _write_engines.clear()
        _makers.clear()
        _write_makers.clear()
        _write_binds.clear()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
