"""SQL hooks: one DB-API hook on a SQLAlchemy engine built from a Connection.

``SqlHook`` (also ``DbApiHook``) has Airflow's API: ``get_records``, ``get_first``, ``run``
(with its rules for what is returned), ``insert_rows``, ``get_pandas_df``. Statements go to
the driver's own cursor, so parameters use the driver's paramstyle as in Airflow: ``%s`` /
``%(name)s`` for PostgreSQL (psycopg) and MySQL (PyMySQL), ``?`` / ``:name`` for SQLite.
``PostgresHook``, ``MySqlHook`` and ``SqliteHook`` serve the ``postgres``, ``mysql`` and
``sqlite`` connection types.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing, contextmanager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from updraft.exceptions import UpdraftException
from updraft.hooks.base import BaseHook
from updraft.secrets import mask_secret

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from updraft.models.connection import Connection

log = logging.getLogger(__name__)


# -- result handlers (Airflow's airflow.providers.common.sql.hooks.handlers) ------------------


def _check_dbapi(cursor: Any) -> None:
    if not hasattr(cursor, "description"):
        raise RuntimeError("The database we interact with does not support DBAPI 2.0. Use operator "
                           "and handlers that are specifically designed for your database.")


def fetch_all_handler(cursor: Any) -> list[tuple] | None:
    """Every row of the statement's result; None for a statement that returns no rows."""
    _check_dbapi(cursor)
    if cursor.description is not None:
        # PyMySQL gives a tuple of rows; every driver gives the same list here.
        return list(cursor.fetchall())
    return None


def fetch_one_handler(cursor: Any) -> tuple | None:
    """The first row of the statement's result; None for a statement that returns no rows."""
    _check_dbapi(cursor)
    if cursor.description is not None:
        return cursor.fetchone()
    return None


def return_single_query_results(sql: str | Iterable[str], return_last: bool,
                                split_statements: bool | None) -> bool:
    """Whether ``run`` returns one statement's result rather than a list of results."""
    return isinstance(sql, str) and (return_last or not split_statements)


# -- splitting SQL without sqlparse ---------------------------------------------------------


_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$")


def split_sql_string(sql: str, strip_semicolon: bool = False) -> list[str]:
    """Split ``sql`` on ``;`` outside quotes, identifiers and comments; comments are dropped."""
    statements: list[str] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in ("'", '"', "`"):
            j = i + 1
            while j < n:
                if sql[j] == "\\" and ch != "`":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote: an escaped quote
                        j += 2
                        continue
                    break
                j += 1
            current.append(sql[i:j + 1])
            i = j + 1
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)) is not None:
            # PostgreSQL dollar quoting: $$...$$ or $tag$...$tag$
            close = sql.find(tag.group(0), tag.end())
            end = n if close == -1 else close + len(tag.group(0))
            current.append(sql[i:end])
            i = end
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif ch == ";":
            if not strip_semicolon:
                current.append(";")
            statements.append("".join(current).strip())
            current = []
            i += 1
        else:
            current.append(ch)
            i += 1
    statements.append("".join(current).strip())
    return [s for s in statements if s and s != ";"]


# -- the hook -------------------------------------------------------------------------------


_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
}


class SqlHook(BaseHook):
    """A DB-API hook (Airflow's ``DbApiHook``) for PostgreSQL, MySQL/MariaDB and SQLite."""

    conn_name_attr = "conn_id"
    default_conn_name = "default_conn_id"
    supports_autocommit = False
    supports_executemany = True
    placeholder = "%s"
    strip_semicolon = False
    _test_connection_sql = "select 1"

    def __init__(self, *args: Any, schema: str | None = None, log_sql: bool = True,
                 **kwargs: Any) -> None:
        super().__init__()
        if not self.conn_name_attr:
            raise UpdraftException("conn_name_attr is not defined")
        if len(args) == 1:
            setattr(self, self.conn_name_attr, args[0])
        elif len(args) > 1:
            raise UpdraftException(f"{type(self).__name__} takes at most one positional "
                                   "argument (the connection id)")
        elif self.conn_name_attr not in kwargs:
            setattr(self, self.conn_name_attr, self.default_conn_name)
        else:
            setattr(self, self.conn_name_attr, kwargs.pop(self.conn_name_attr))
        # Connection extras and hook_params arrive here too; keep what we know, ignore the rest.
        self.connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", None) or {})
        self.engine_kwargs: dict[str, Any] = dict(kwargs.pop("engine_kwargs", None) or {})
        self.hook_extra = kwargs
        self.schema = schema
        self.log_sql = log_sql
        self.descriptions: list[Sequence[Sequence] | None] = []
        self._connection: Connection | None = None
        self._engine: Engine | None = None

    # -- connection ------------------------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The Connection this hook was built for (looked up once)."""
        if self._connection is None:
            self._connection = self.get_connection(self.get_conn_id())
            mask_secret(self._connection.password)
        return self._connection

    @property
    def database(self) -> str | None:
        """The database (Airflow's connection ``schema``) the hook connects to."""
        return self.schema or self.connection.schema

    @database.setter
    def database(self, value: str | None) -> None:
        self.schema = value

    def get_uri(self) -> str:
        """The SQLAlchemy URL of the connection, password included (never log it)."""
        return self.sqlalchemy_url.render_as_string(hide_password=False)

    @property
    def sqlalchemy_url(self):
        """The connection as a ``sqlalchemy.engine.URL``."""
        from sqlalchemy.engine import URL

        conn = self.connection
        conn_type = (conn.conn_type or "").lower()
        driver = _DRIVERS.get(conn_type)
        if driver is None:
            raise UpdraftException(
                f"connection {conn.conn_id!r} has type {conn.conn_type!r}: the SQL hook serves "
                f"{', '.join(sorted(_DRIVERS))}")
        if driver == "sqlite":
            return URL.create("sqlite", database=self._sqlite_path())
        query = {k: str(v) for k, v in conn.extra_dejson.items()
                 if k in ("sslmode", "charset", "application_name", "connect_timeout")}
        return URL.create(driver, username=conn.login or None, password=conn.password or None,
                          host=conn.host or None, port=conn.port or None,
                          database=self.database or None, query=query)

    def _sqlite_path(self) -> str:
        """Where the SQLite file is: host, as Airflow's SqliteHook reads it, else schema."""
        conn = self.connection
        host, schema = conn.host or "", conn.schema or ""
        if host and schema:
            return f"{host}/{schema}"
        return host or schema or ":memory:"

    def get_sqlalchemy_engine(self, engine_kwargs: dict | None = None) -> Engine:
        """A SQLAlchemy engine for the connection (one per hook; no pooling between tasks)."""
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        if engine_kwargs is None and self._engine is not None:
            return self._engine
        kwargs = {"poolclass": NullPool, **self.engine_kwargs, **(engine_kwargs or {})}
        if self.connect_args:
            kwargs.setdefault("connect_args", self.connect_args)
        engine = create_engine(self.sqlalchemy_url, **kwargs)
        if engine_kwargs is None:
            self._engine = engine
        return engine

    def get_conn(self) -> Any:
        """A new DB-API connection (the driver's, wrapped by SQLAlchemy); close it when done."""
        try:
            conn = self.get_sqlalchemy_engine().raw_connection()
        except Exception as exc:
            url = self.sqlalchemy_url.render_as_string(hide_password=True)
            raise UpdraftException(f"cannot connect to {url} (connection "
                                   f"{self.get_conn_id()!r}): {exc}") from exc
        self._prepare_connection(conn.driver_connection)
        return conn

    def _prepare_connection(self, driver_conn: Any) -> None:
        """Driver settings every connection gets (subclasses)."""

    def get_cursor(self) -> Any:
        """A cursor on a new connection."""
        return self.get_conn().cursor()

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        """Turn the connection's autocommit on or off."""
        if not self.supports_autocommit and autocommit:
            self.log.warning("%s connection doesn't support autocommit but autocommit activated.",
                             self.get_conn_id())
        conn.driver_connection.autocommit = autocommit

    def get_autocommit(self, conn: Any) -> bool:
        """Whether the connection commits each statement itself."""
        return bool(getattr(conn.driver_connection, "autocommit", False)) and \
            self.supports_autocommit

    @contextmanager
    def _create_autocommit_connection(self, autocommit: bool = False):
        with closing(self.get_conn()) as conn:
            if self.supports_autocommit:
                self.set_autocommit(conn, autocommit)
            yield conn

    # -- running SQL -----------------------------------------------------------------------

    @staticmethod
    def strip_sql_string(sql: str) -> str:
        return sql.strip().rstrip(";")

    @staticmethod
    def split_sql_string(sql: str, strip_semicolon: bool = False) -> list[str]:
        """The statements of ``sql`` (see the module-level ``split_sql_string``)."""
        return split_sql_string(sql, strip_semicolon)

    @property
    def last_description(self) -> Sequence[Sequence] | None:
        return self.descriptions[-1] if self.descriptions else None

    def get_records(self, sql: str | list[str],
                    parameters: Iterable | Mapping[str, Any] | None = None) -> Any:
        """Every row of the result (of each statement, for a list)."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_all_handler)

    def get_first(self, sql: str | list[str],
                  parameters: Iterable | Mapping[str, Any] | None = None) -> Any:
        """The first row of the result."""
        return self.run(sql=sql, parameters=parameters, handler=fetch_one_handler)

    def run(self, sql: str | Iterable[str], autocommit: bool = False,
            parameters: Iterable | Mapping[str, Any] | None = None,
            handler: Callable[[Any], Any] | None = None, split_statements: bool = False,
            return_last: bool = True) -> Any:
        """Run one statement or several; return results as Airflow's ``DbApiHook.run`` does.

        Without a handler nothing is returned. A string with ``return_last`` (or without
        ``split_statements``) gives the last statement's result; otherwise a list with one
        result per statement.
        """
        self.descriptions = []
        if isinstance(sql, str):
            if split_statements:
                sql_list: list[str] = self.split_sql_string(sql, self.strip_semicolon)
            else:
                sql_list = [sql] if sql.strip() else []
        else:
            sql_list = list(sql)
        if not sql_list:
            raise ValueError("List of SQL statements is empty")
        self.log.debug("Executing following statements against DB: %s", sql_list)
        single = return_single_query_results(sql, return_last, split_statements)
        last_result: Any = None
        last_description = None
        results: list[Any] = []
        with self._create_autocommit_connection(autocommit) as conn:
            with closing(conn.cursor()) as cur:
                for statement in sql_list:
                    self._run_command(cur, statement, parameters)
                    if handler is not None:
                        result = self._make_common_data_structure(handler(cur))
                        if single:
                            last_result, last_description = result, cur.description
                        else:
                            results.append(result)
                            self.descriptions.append(cur.description)
            if not self.get_autocommit(conn):
                conn.commit()
        if handler is None:
            return None
        if single:
            self.descriptions = [last_description]
            return last_result
        return results

    def _make_common_data_structure(self, result: Any) -> Any:
        """Rows as plain tuples (drivers may return their own row classes)."""
        if isinstance(result, list):
            return [tuple(r) if isinstance(r, tuple) and type(r) is not tuple else r
                    for r in result]
        if isinstance(result, tuple) and type(result) is not tuple:
            return tuple(result)
        return result

    def _run_command(self, cur: Any, statement: str, parameters: Any) -> None:
        if self.log_sql:
            self.log.info("Running statement: %s, parameters: %s", statement, parameters)
        if parameters:
            if isinstance(parameters, list):
                parameters = tuple(parameters)
            cur.execute(statement, parameters)
        else:
            cur.execute(statement)
        if cur.rowcount is not None and cur.rowcount >= 0:
            self.log.info("Rows affected: %s", cur.rowcount)

    # -- loading rows ----------------------------------------------------------------------

    def _serialize_cell(self, cell: Any, conn: Any = None) -> Any:
        return cell

    def _serialize_cells(self, row: Iterable, conn: Any = None) -> tuple:
        return tuple(self._serialize_cell(cell, conn) for cell in row)

    def _generate_insert_sql(self, table: str, values: Sequence, target_fields=None,
                             replace: bool = False, **kwargs: Any) -> str:
        placeholders = ", ".join([self.placeholder] * len(values))
        columns = f"({', '.join(target_fields)})" if target_fields else ""
        verb = "REPLACE INTO" if replace else "INSERT INTO"
        return f"{verb} {table} {columns} VALUES ({placeholders})".replace("  ", " ")

    def insert_rows(self, table: str, rows: Iterable[Sequence], target_fields=None,
                    commit_every: int = 1000, replace: bool = False, *,
                    executemany: bool = False, fast_executemany: bool = False,
                    autocommit: bool = False, **kwargs: Any) -> None:
        """Insert rows (tuples) into ``table``, committing every ``commit_every`` rows."""
        del executemany, fast_executemany
        if target_fields is not None:
            target_fields = list(target_fields)
        rows = list(rows)
        loaded = 0
        chunk_size = commit_every if commit_every and commit_every > 0 else max(len(rows), 1)
        with self._create_autocommit_connection(autocommit) as conn:
            conn.commit()
            with closing(conn.cursor()) as cur:
                for start in range(0, len(rows), chunk_size):
                    values = [self._serialize_cells(r, conn) for r in rows[start:start + chunk_size]]
                    sql = self._generate_insert_sql(table, values[0], target_fields, replace,
                                                    **kwargs)
                    self.log.debug("Generated sql: %s", sql)
                    try:
                        cur.executemany(sql, values)
                    except Exception:
                        self.log.error("Generated sql: %s", sql)
                        raise
                    conn.commit()
                    loaded += len(values)
                    self.log.info("Loaded %s rows into %s so far", loaded, table)
        self.log.info("Done loading. Loaded a total of %s rows into %s", loaded, table)

    # -- the rest of Airflow's API ---------------------------------------------------------

    def get_pandas_df(self, sql: str, parameters: Iterable | Mapping[str, Any] | None = None,
                      **kwargs: Any):
        """The result of ``sql`` as a pandas DataFrame (needs pandas installed)."""
        try:
            from pandas.io import sql as psql
        except ImportError:
            raise UpdraftException("get_pandas_df needs the pandas library, which is not "
                                   "installed on this worker: pip install pandas") from None
        with closing(self.get_conn()) as conn:
            return psql.read_sql(sql, con=conn, params=parameters, **kwargs)

    get_df = get_pandas_df

    def test_connection(self) -> tuple[bool, str]:
        """(True, message) if a trivial query works, else (False, the error)."""
        try:
            if self.get_first(self._test_connection_sql):
                return True, "Connection successfully tested"
            return False, "the test query returned no row"
        except Exception as exc:  # noqa: BLE001  (the message is the answer)
            return False, str(exc)

    def get_table_names(self) -> list[str]:
        """Tables of the database (via SQLAlchemy's inspector)."""
        from sqlalchemy import inspect

        return inspect(self.get_sqlalchemy_engine()).get_table_names()


DbApiHook = SqlHook


class PostgresHook(SqlHook):
    """PostgreSQL through psycopg 3 (client-side parameter binding, as psycopg2 did)."""

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "postgres"
    hook_name = "Postgres"
    supports_autocommit = True

    def __init__(self, *args: Any, database: str | None = None, **kwargs: Any) -> None:
        kwargs.pop("options", None)
        super().__init__(*args, **kwargs)
        if database is not None:
            self.schema = database

    def _prepare_connection(self, driver_conn: Any) -> None:
        import psycopg

        driver_conn.cursor_factory = psycopg.ClientCursor

    def _generate_insert_sql(self, table: str, values: Sequence, target_fields=None,
                             replace: bool = False, **kwargs: Any) -> str:
        sql = super()._generate_insert_sql(table, values, target_fields, False)
        if not replace:
            return sql
        if not target_fields:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires column names")
        replace_index = kwargs.get("replace_index")
        if not replace_index:
            raise ValueError("PostgreSQL ON CONFLICT upsert syntax requires an unique index")
        if isinstance(replace_index, str):
            replace_index = [replace_index]
        update = [f"{c} = excluded.{c}" for c in target_fields if c not in replace_index]
        action = f"UPDATE SET {', '.join(update)}" if update else "NOTHING"
        return f"{sql} ON CONFLICT ({', '.join(replace_index)}) DO {action}"

    def get_db_log_messages(self, conn: Any) -> None:
        """Airflow's PostgresHook logs server notices; psycopg 3 logs them itself."""


class MySqlHook(SqlHook):
    """MySQL and MariaDB through PyMySQL."""

    conn_name_attr = "mysql_conn_id"
    default_conn_name = "mysql_default"
    conn_type = "mysql"
    hook_name = "MySQL"
    supports_autocommit = True

    def set_autocommit(self, conn: Any, autocommit: bool) -> None:
        conn.driver_connection.autocommit(autocommit)

    def get_autocommit(self, conn: Any) -> bool:
        return bool(conn.driver_connection.get_autocommit())


class SqliteHook(SqlHook):
    """SQLite: the file is the connection's host (Airflow's SqliteHook), or its schema."""

    conn_name_attr = "sqlite_conn_id"
    default_conn_name = "sqlite_default"
    conn_type = "sqlite"
    hook_name = "Sqlite"
    placeholder = "?"

    def _serialize_cell(self, cell: Any, conn: Any = None) -> Any:
        # sqlite3's datetime adapter is deprecated and it has none for Decimal: store text,
        # as Airflow's hook does (column affinity turns numeric text back into numbers).
        if isinstance(cell, datetime):
            return cell.isoformat()
        if isinstance(cell, Decimal):
            return str(cell)
        return cell


# MariaDB connections use the MySQL hook.
class MariaDbHook(MySqlHook):
    """``mariadb`` connections: the MySQL hook."""

    conn_type = "mariadb"


__all__ = ["DbApiHook", "MariaDbHook", "MySqlHook", "PostgresHook", "SqlHook", "SqliteHook",
           "fetch_all_handler", "fetch_one_handler", "return_single_query_results",
           "split_sql_string"]
