"""Connections: how to reach an outside system, with Airflow's ``Connection`` API and URIs.

A ``Connection`` is a plain object. ``Connection.get_connection_from_secrets(conn_id)`` looks
in the environment (``UPDRAFT_CONN_<ID>``, then ``AIRFLOW_CONN_<ID>``: a URI or a JSON object
of fields), then in the secrets backends of ``[secrets] backends`` (``updraft.secrets_backends``),
then in the store. The store functions at the bottom keep password and extra Fernet-encrypted;
every loaded password and sensitive extra is registered with the log masker.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from updraft.secrets import decrypt, encrypt, mask_secret

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

ENV_PREFIXES = ("UPDRAFT_CONN_", "AIRFLOW_CONN_")
FIELDS = ("conn_id", "conn_type", "description", "host", "login", "password", "schema", "port",
          "extra")


class InvalidConnectionError(ValueError):
    """A connection URI or definition that cannot be parsed."""


def _parse_netloc_to_hostname(uri_parts) -> str:
    hostname = unquote(uri_parts.hostname or "")
    if "/" in hostname:
        # urlsplit stops at a "/" that was percent-encoded in the host: take the netloc as is.
        hostname = uri_parts.netloc
        if "@" in hostname:
            hostname = hostname.rsplit("@", 1)[1]
        if ":" in hostname:
            hostname = hostname.split(":", 1)[0]
        hostname = unquote(hostname)
    return hostname


class Connection:
    """One connection: type, host, credentials, schema, port and a JSON ``extra``."""

    EXTRA_KEY = "__extra__"

    def __init__(self, conn_id: str | None = None, conn_type: str | None = None,
                 description: str | None = None, host: str | None = None,
                 login: str | None = None, password: str | None = None,
                 schema: str | None = None, port: int | None = None,
                 extra: str | dict | None = None, uri: str | None = None) -> None:
        self.conn_id = conn_id
        self.description = description
        if extra is not None and not isinstance(extra, str):
            extra = json.dumps(extra)
        if uri and any(v is not None for v in (conn_type, host, login, password, schema, port,
                                                extra)):
            raise InvalidConnectionError(
                "give either a URI or individual fields (conn_type, host, login, password, "
                "schema, port, extra), not both")
        self.conn_type = conn_type
        self.host = host
        self.login = login
        self.password = password
        self.schema = schema
        self.port = int(port) if port not in (None, "") else None
        self.extra = extra
        if uri:
            self._parse_from_uri(uri)
        if self.password:
            mask_secret(self.password)
        if self.extra:
            mask_secret(self.extra_dejson)

    # URIs -------------------------------------------------------------------------------

    @staticmethod
    def _normalize_conn_type(conn_type: str) -> str:
        if conn_type == "postgresql":
            return "postgres"
        return conn_type.replace("-", "_")

    def _parse_from_uri(self, uri: str) -> None:
        schemes = uri.count("://")
        if schemes == 0 or schemes > 2:
            raise InvalidConnectionError(f"invalid connection URI {uri!r}: expected "
                                         "TYPE://[LOGIN[:PASSWORD]@]HOST[:PORT][/SCHEMA][?QUERY]")
        host_with_protocol = schemes == 2
        conn_type = urlsplit(uri).scheme
        if not conn_type:
            raise InvalidConnectionError(f"invalid connection URI {uri!r}: no connection type")
        self.conn_type = self._normalize_conn_type(conn_type)
        rest = uri.replace(f"{conn_type}://", "" if host_with_protocol else "//", 1)
        if host_with_protocol:
            before = rest.split("://", 1)[0]
            if "@" in before or ":" in before:
                raise InvalidConnectionError(f"invalid connection URI {uri!r}")
        parts = urlsplit(rest)
        protocol = parts.scheme if host_with_protocol else None
        host = _parse_netloc_to_hostname(parts)
        self.host = f"{protocol}://{host}" if protocol else host
        quoted_schema = parts.path[1:]
        self.schema = unquote(quoted_schema) if quoted_schema else quoted_schema
        self.login = unquote(parts.username) if parts.username else parts.username
        self.password = unquote(parts.password) if parts.password else parts.password
        try:
            self.port = parts.port
        except ValueError as exc:
            raise InvalidConnectionError(f"invalid connection URI {uri!r}: {exc}") from None
        if parts.query:
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if self.EXTRA_KEY in query:
                self.extra = query[self.EXTRA_KEY]
            else:
                self.extra = json.dumps(query)

    def get_uri(self) -> str:
        """This connection as a URI that ``Connection(uri=...)`` parses back to the same fields."""
        if not self.conn_type:
            raise InvalidConnectionError(f"connection {self.conn_id!r} has no conn_type")
        uri = f"{self.conn_type.lower().replace('_', '-')}://"
        host = self.host
        if host and "://" in host:
            protocol, host = host.split("://", 1)
            uri += f"{protocol}://"
        authority = ""
        if self.login is not None:
            authority += quote(self.login, safe="")
        if self.password is not None:
            authority += ":" + quote(self.password, safe="")
        if authority:
            uri += authority + "@"
        host_block = quote(host, safe="") if host else ""
        if self.port:
            if not host_block and not authority:
                host_block += f"@:{self.port}"
            else:
                host_block += f":{self.port}"
        if self.schema:
            host_block += f"/{quote(self.schema, safe='')}"
        uri += host_block
        if self.extra:
            try:
                query: str | None = urlencode(self.extra_dejson)
            except TypeError:
                query = None
            if query and self.extra_dejson == dict(parse_qsl(query, keep_blank_values=True)):
                uri += ("?" if self.schema else "/?") + query
            else:
                uri += ("?" if self.schema else "/?") + urlencode({self.EXTRA_KEY: self.extra})
        return uri

    # Fields -----------------------------------------------------------------------------

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """``extra`` parsed as a JSON object ({} if empty or not valid JSON)."""
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except json.JSONDecodeError:
            log.error("extra of connection %s is not valid JSON; ignoring it", self.conn_id)
            return {}
        return value if isinstance(value, dict) else {}

    def get_password(self) -> str | None:
        """The password in clear."""
        return self.password

    def get_extra(self) -> str | None:
        """The extra JSON text in clear."""
        return self.extra

    def to_dict(self) -> dict[str, Any]:
        """Every field, in clear (for export; print it with care)."""
        return {name: getattr(self, name) for name in FIELDS}

    def get_hook(self, *, hook_params: dict | None = None):
        """The hook registered for this connection's type, built for this connection."""
        from updraft.hooks.base import hook_class_for_conn_type

        hook_class = hook_class_for_conn_type(self.conn_type)
        return hook_class(**{hook_class.conn_name_attr: self.conn_id, **(hook_params or {})})

    def __repr__(self) -> str:
        return f"Connection(conn_id={self.conn_id!r}, conn_type={self.conn_type!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Connection):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.conn_id)

    # Lookup -----------------------------------------------------------------------------

    @classmethod
    def from_json(cls, value: str | dict, conn_id: str | None = None) -> Connection:
        """Build a connection from a JSON object of fields (``uri`` allowed instead of fields)."""
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise InvalidConnectionError(
                    f"connection {conn_id}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(value, dict):
            raise InvalidConnectionError(f"connection {conn_id}: expected a JSON object")
        known = set(FIELDS) | {"uri"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise InvalidConnectionError(
                f"connection {conn_id}: unknown field(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(sorted(known))}")
        fields = {k: v for k, v in value.items() if k != "conn_id"}
        return cls(conn_id=value.get("conn_id", conn_id), **fields)

    @classmethod
    def from_env(cls, conn_id: str) -> Connection | None:
        """The connection defined by ``UPDRAFT_CONN_<ID>`` or ``AIRFLOW_CONN_<ID>``, if any."""
        for prefix in ENV_PREFIXES:
            value = os.environ.get(prefix + conn_id.upper())
            if value is None:
                continue
            value = value.strip()
            if value.startswith("{"):
                return cls.from_json(value, conn_id=conn_id)
            return cls(conn_id=conn_id, uri=value)
        return None

    @classmethod
    def get(cls, conn_id: str) -> Connection:
        """Airflow 3's ``Connection.get``: the same as ``get_connection_from_secrets``."""
        return cls.get_connection_from_secrets(conn_id)

    @classmethod
    def get_connection_from_secrets(cls, conn_id: str) -> Connection:
        """The connection ``conn_id`` from the environment, the secrets backends or the store;
        UpdraftNotFoundException if none has it."""
        conn = cls.from_env(conn_id)
        if conn is not None:
            return conn
        from updraft.secrets_backends import get_connection as from_backends

        conn = from_backends(conn_id)
        if conn is not None:
            return conn
        conn = get_connection(conn_id)
        if conn is not None:
            return conn
        from updraft.exceptions import UpdraftNotFoundException

        raise UpdraftNotFoundException(f"The conn_id `{conn_id}` isn't defined")


# Store ------------------------------------------------------------------------------------


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


def _row(session: Session, conn_id: str):
    from sqlalchemy import select

    from updraft.store.models import ConnectionModel

    return session.scalars(select(ConnectionModel).where(ConnectionModel.conn_id == conn_id)).first()


def _from_row(row) -> Connection:
    password = row.password
    if password is not None and row.is_encrypted:
        password = decrypt(password, what=f"the password of connection {row.conn_id}")
    extra = row.extra
    if extra is not None and row.is_extra_encrypted:
        extra = decrypt(extra, what=f"the extra of connection {row.conn_id}")
    return Connection(conn_id=row.conn_id, conn_type=row.conn_type, description=row.description,
                      host=row.host, login=row.login, password=password, schema=row.schema,
                      port=row.port, extra=extra)


def _fill_row(row, conn: Connection) -> None:
    if not conn.conn_type:
        raise InvalidConnectionError(f"connection {conn.conn_id}: conn_type is required")
    row.conn_type = conn.conn_type
    row.description = conn.description
    row.host = conn.host
    row.login = conn.login
    row.schema = conn.schema
    row.port = conn.port
    row.password = encrypt(conn.password) if conn.password is not None else None
    row.is_encrypted = conn.password is not None
    row.extra = encrypt(conn.extra) if conn.extra is not None else None
    row.is_extra_encrypted = conn.extra is not None


def get_connection(conn_id: str, session: Session | None = None) -> Connection | None:
    """The connection ``conn_id`` stored in the database, or None."""
    with _session(session) as s:
        row = _row(s, conn_id)
        return _from_row(row) if row is not None else None


def add_connection(conn: Connection, session: Session | None = None) -> None:
    """Store a new connection; ValueError if ``conn.conn_id`` already exists."""
    from updraft.store.models import ConnectionModel

    if not conn.conn_id:
        raise InvalidConnectionError("a connection needs a conn_id")
    with _session(session) as s:
        if _row(s, conn.conn_id) is not None:
            raise ValueError(f"connection {conn.conn_id} already exists")
        row = ConnectionModel(conn_id=conn.conn_id)
        _fill_row(row, conn)
        s.add(row)
        s.flush()


def update_connection(conn: Connection, session: Session | None = None,
                      create: bool = False) -> None:
    """Replace every field of a stored connection (create it if ``create``); KeyError if missing."""
    from updraft.store.models import ConnectionModel

    with _session(session) as s:
        row = _row(s, conn.conn_id)
        if row is None:
            if not create:
                raise KeyError(f"connection {conn.conn_id} does not exist")
            row = ConnectionModel(conn_id=conn.conn_id)
            s.add(row)
        _fill_row(row, conn)
        s.flush()


def delete_connection(conn_id: str, session: Session | None = None) -> int:
    """Delete a stored connection; return how many rows went (0 or 1)."""
    from sqlalchemy import delete

    from updraft.store.models import ConnectionModel

    with _session(session) as s:
        result = s.execute(delete(ConnectionModel).where(ConnectionModel.conn_id == conn_id))
        return result.rowcount or 0


def list_connections(session: Session | None = None) -> list[Connection]:
    """Every stored connection, sorted by conn_id (decrypted)."""
    from sqlalchemy import select

    from updraft.store.models import ConnectionModel

    with _session(session) as s:
        rows = s.scalars(select(ConnectionModel).order_by(ConnectionModel.conn_id)).all()
        return [_from_row(r) for r in rows]


def rotate_connections(session: Session) -> int:
    """Re-encrypt every stored password and extra with the first Fernet key; does not commit."""
    from sqlalchemy import select

    from updraft.secrets import rotate
    from updraft.store.models import ConnectionModel

    count = 0
    for row in session.scalars(select(ConnectionModel)):
        if row.password is not None:
            row.password = (rotate(row.password, what=f"the password of connection {row.conn_id}")
                            if row.is_encrypted else encrypt(row.password))
            row.is_encrypted = True
        if row.extra is not None:
            row.extra = (rotate(row.extra, what=f"the extra of connection {row.conn_id}")
                         if row.is_extra_encrypted else encrypt(row.extra))
            row.is_extra_encrypted = True
        count += 1
    session.flush()
    return count
