"""Create and upgrade the store schema with Alembic, safely from several processes at once.

``migrate()`` upgrades to the newest revision and keeps data; ``check()`` says whether a store
is reachable and up to date; ``reset()`` drops everything and migrates again. Alembic is
configured here in code: the revisions ship inside the package, no alembic.ini is read.

Two processes migrating the same store serialise on a lock: ``pg_advisory_lock`` on
PostgreSQL, ``GET_LOCK`` on MariaDB/MySQL and an exclusive file lock next to a SQLite file.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from updraft.config import conf

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy import Connection

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DEFAULT_POOL = "default_pool"
# Any constant works: advisory locks are scoped to the database, so stores never collide.
_PG_LOCK_KEY = 0x55504452  # "UPDR"
_LOCK_TIMEOUT_SECONDS = 600

_ready_lock = threading.Lock()
_ready_urls: set[str] = set()


class StoreNotReadyError(RuntimeError):
    """The store cannot be reached, or its schema is not at the newest revision."""


def display_url(url: str | None = None) -> str:
    """The store URL with its password hidden, for messages."""
    from sqlalchemy.engine import make_url

    from updraft.store.engine import normalise_url

    return make_url(normalise_url(url or conf.sql_alchemy_conn())).render_as_string(
        hide_password=True)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic Config pointing at the packaged revisions (and at ``connection`` if given)."""
    from alembic.config import Config

    cfg = Config()
    # ConfigParser interpolates "%": escape it in paths and URLs.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this version of Updraft."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no Alembic revisions found in {MIGRATIONS_DIR / 'versions'}"
    return head


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    """Keep Alembic's INFO lines ("Context impl SQLiteImpl.", "Will assume non-transactional
    DDL.") out of the logs while merely reading the revision: a task's first store access
    happens inside its try, so they would open every task log of a fresh worker process."""
    import logging

    logger = logging.getLogger("alembic")
    previous = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(previous)


def _current_revision_on(connection: Connection) -> str | None:
    with _quiet_alembic():
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(connection).get_current_revision()


@contextmanager
def _connect(url: str | None) -> Iterator[Connection]:
    from sqlalchemy.exc import DBAPIError

    from updraft.store.engine import get_engine

    try:
        connection = get_engine(url).connect()
    except DBAPIError as exc:
        reason = str(exc.orig).strip() or type(exc.orig).__name__
        raise StoreNotReadyError(f"cannot reach the store at {display_url(url)}: {reason}") from exc
    with connection:
        yield connection


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """Hold a lock that only one migrating process at a time can take for this store."""
    from sqlalchemy import text

    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
            connection.commit()
    elif dialect in ("mysql", "mariadb"):
        # GET_LOCK is server-wide: name the lock after the database.
        database = connection.execute(text("SELECT DATABASE()")).scalar() or ""
        name = f"updraft_migrate_{database}"[:64]
        got = connection.execute(text("SELECT GET_LOCK(:name, :timeout)"),
                                 {"name": name, "timeout": _LOCK_TIMEOUT_SECONDS}).scalar()
        connection.commit()
        if got != 1:
            raise StoreNotReadyError(
                f"another process has been migrating the store for {_LOCK_TIMEOUT_SECONDS} s "
                f"(lock {name!r} not granted)")
        try:
            yield
        finally:
            connection.rollback()
            connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            connection.commit()
    elif dialect == "sqlite":
        database = connection.engine.url.database
        if not database or database == ":memory:":
            yield
            return
        db_path = Path(database).expanduser().resolve()
        lock_path = db_path.with_name(db_path.name + ".migrate.lock")
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        yield


def _ensure_default_pool(connection: Connection) -> None:
    from sqlalchemy import insert, select

    from updraft.store.models import PoolModel

    table = PoolModel.__table__
    exists = connection.execute(select(table.c.id).where(table.c.pool == DEFAULT_POOL)).first()
    if exists is None:
        connection.execute(insert(table).values(
            pool=DEFAULT_POOL, slots=conf.getint("core", "default_pool_slots"),
            description="Default pool"))


def migrate(url: str | None = None) -> None:
    """Upgrade the store to the newest revision (idempotent, keeps data) and add the default pool."""
    from alembic import command

    with _connect(url) as connection, _migration_lock(connection):
        connection.commit()
        command.upgrade(alembic_config(connection), "head")
        connection.commit()
        _ensure_default_pool(connection)
        connection.commit()
    _mark_ready(url)


def current_revision(url: str | None = None) -> str | None:
    """The revision the store is at, or None for a store never migrated."""
    with _connect(url) as connection:
        return _current_revision_on(connection)


def check(url: str | None = None) -> str:
    """Return a status line if the store is reachable and at head; raise StoreNotReadyError if not."""
    with _connect(url) as connection:
        current = _current_revision_on(connection)
        dialect = connection.dialect.name
    head = head_revision()
    where = display_url(url)
    if current is None:
        raise StoreNotReadyError(
            f"the store at {where} has no Updraft schema: run `updraft db migrate`")
    if current != head:
        raise StoreNotReadyError(
            f"the store at {where} is at revision {current}, this Updraft needs {head}: "
            "run `updraft db migrate`")
    return f"store {where} ({dialect}) is reachable and at revision {current} (head)"


def reset(url: str | None = None) -> None:
    """Drop every table of the store (alembic_version included) and migrate again."""
    from sqlalchemy import MetaData

    with _connect(url) as connection, _migration_lock(connection):
        connection.commit()
        # Reflect rather than use Base.metadata: tables of newer or older revisions go too.
        reflected = MetaData()
        reflected.reflect(bind=connection)
        reflected.drop_all(bind=connection)
        connection.commit()
    _forget_ready(url)
    migrate(url)


def ensure_migrated(url: str | None = None) -> None:
    """Migrate a brand-new store; raise StoreNotReadyError if an existing one is out of date.

    Cheap after the first call for a URL in this process.
    """
    key = display_url(url)
    if key in _ready_urls:
        return
    current = current_revision(url)
    if current is None:
        migrate(url)
        return
    with _quiet_alembic():
        head = head_revision()
    if current != head:
        raise StoreNotReadyError(
            f"the store at {key} is at revision {current}, this Updraft needs {head}: "
            "run `updraft db migrate`")
    _mark_ready(url)


def _mark_ready(url: str | None) -> None:
    with _ready_lock:
        _ready_urls.add(display_url(url))


def _forget_ready(url: str | None) -> None:
    with _ready_lock:
        _ready_urls.discard(display_url(url))
