"""SQLAlchemy tables of the Updraft store.

The authoring API never imports this module: DAGs, operators and tasks are plain objects.
Nodes read and write these tables through sessions they own (see ``updraft.store.engine``).
Every schema change is an Alembic migration under ``updraft/store/migrations``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    LargeBinary,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from updraft.utils.timezone import utcnow

ID_LEN = 250

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def id_string(length: int = ID_LEN) -> String:
    """A case-sensitive identifier column; 3-byte charset on MySQL/MariaDB to fit index limits."""
    mysql_type = mysql.VARCHAR(length, charset="utf8mb3", collation="utf8mb3_bin")
    return String(length).with_variant(mysql_type, "mysql").with_variant(mysql_type, "mariadb")


def long_text() -> Text:
    """Text that may exceed 64 KiB (logs, tracebacks, serialized DAGs) on every backend."""
    return Text().with_variant(mysql.LONGTEXT(), "mysql").with_variant(mysql.LONGTEXT(), "mariadb")


def long_binary() -> LargeBinary:
    """Bytes that may exceed 64 KiB (a DAG bundle's archive) on every backend."""
    return LargeBinary().with_variant(mysql.LONGBLOB(), "mysql").with_variant(
        mysql.LONGBLOB(), "mariadb")


def json_type() -> JSON:
    """A JSON column (LONGTEXT-backed JSON on MariaDB)."""
    return JSON()


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite and MySQL store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where a timezone-aware one is needed")
        value = value.astimezone(timezone.utc)
        if dialect.name == "postgresql":
            return value
        return value.replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DagModel(Base):
    """One row per DAG id: what the scheduler and the web need without the serialized form."""

    __tablename__ = "dag"

    dag_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    is_paused: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    fileloc: Mapped[str | None] = mapped_column(String(2000))
    owners: Mapped[str | None] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list | None] = mapped_column(json_type())
    schedule_description: Mapped[str | None] = mapped_column(String(1000))
    timetable: Mapped[dict | None] = mapped_column(json_type())
    catchup: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    max_active_runs: Mapped[int | None] = mapped_column(Integer)
    max_active_tasks: Mapped[int | None] = mapped_column(Integer)
    dag_hash: Mapped[str | None] = mapped_column(String(64))
    next_dagrun: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun_data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun_data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_dagrun_create_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_parsed_time: Mapped[datetime | None] = mapped_column(UtcDateTime)
    has_import_errors: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    __table_args__ = (Index(None, "is_active", "is_paused"), Index(None, "next_dagrun_create_after"))


class SerializedDagModel(Base):
    """One row per version of a DAG: its JSON form, keyed by the hash of that JSON."""

    __tablename__ = "serialized_dag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    dag_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    data: Mapped[dict] = mapped_column(json_type(), nullable=False)
    fileloc: Mapped[str | None] = mapped_column(String(2000))
    file_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    #: The DAG bundle version (``dag_bundle``) this serialized DAG was parsed from.
    bundle_version: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("dag_id", "dag_hash"),)


class DagBundle(Base):
    """One content-addressed version of the DAGs folder (ADR 12): the files DAGs were
    parsed from, as a zip archive that workers fetch by ``version`` and verify."""

    __tablename__ = "dag_bundle"

    #: SHA-256 of the manifest (sorted paths and the SHA-256 of each file's bytes).
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    #: ``{"files": {relative path: sha256}}``
    manifest: Mapped[dict] = mapped_column(json_type(), nullable=False)
    archive: Mapped[bytes] = mapped_column(long_binary(), nullable=False)
    size_bytes: Mapped[int] = mapped_column(Integer, nullable=False)


class DagCode(Base):
    """The source of a DAG file, by the hash of its content, so the web never reads DAG files."""

    __tablename__ = "dag_code"

    file_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    fileloc: Mapped[str] = mapped_column(String(2000), nullable=False)
    source_code: Mapped[str] = mapped_column(long_text(), nullable=False)
    last_updated: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class ImportError_(Base):
    """A DAG file that failed to load, with the traceback."""

    __tablename__ = "import_error"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    filename: Mapped[str] = mapped_column(String(1000), nullable=False, unique=True)
    stacktrace: Mapped[str] = mapped_column(long_text(), nullable=False)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class DagRunModel(Base):
    """One run of a DAG."""

    __tablename__ = "dag_run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    run_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    run_type: Mapped[str] = mapped_column(String(50), nullable=False)
    logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    data_interval_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    conf: Mapped[dict | None] = mapped_column(json_type())
    external_trigger: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    triggered_by: Mapped[str | None] = mapped_column(String(50))
    dag_hash: Mapped[str | None] = mapped_column(String(64))
    #: The DAG bundle version the run is pinned to (ADR 12); None: the DAGs folder as is.
    bundle_version: Mapped[str | None] = mapped_column(String(64))
    clear_number: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    last_scheduling_decision: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("dag_id", "run_id"),
        Index(None, "dag_id", "logical_date"),
        Index(None, "state", "dag_id"),
    )


class TaskInstanceModel(Base):
    """The current state of one task (one map index) in one run."""

    __tablename__ = "task_instance"

    dag_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    run_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    task_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True, default=-1)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="none")
    try_number: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    max_tries: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    queued_dttm: Mapped[datetime | None] = mapped_column(UtcDateTime)
    scheduled_dttm: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    hostname: Mapped[str | None] = mapped_column(String(1000))
    pid: Mapped[int | None] = mapped_column(Integer)
    executor: Mapped[str | None] = mapped_column(String(100))
    external_executor_id: Mapped[str | None] = mapped_column(String(250))
    #: Set when a try is queued; the claim and the outcome compare-and-set on it (ADR 2).
    try_id: Mapped[str | None] = mapped_column(String(32))
    #: The executor slot's node running the try (a Dask worker's name, a worker node id).
    worker: Mapped[str | None] = mapped_column(String(250))
    #: The scheduler node that queued the current try: when it stops heartbeating, another
    #: scheduler puts the try back to scheduled (``scheduler.zombies``).
    queued_by: Mapped[str | None] = mapped_column(String(250))
    queue: Mapped[str | None] = mapped_column(String(256))
    pool: Mapped[str] = mapped_column(String(256), nullable=False, default="default_pool")
    pool_slots: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    priority_weight: Mapped[int] = mapped_column(Integer, default=1, nullable=False)
    operator: Mapped[str | None] = mapped_column(String(1000))
    rendered_fields: Mapped[dict | None] = mapped_column(json_type())
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    #: Deferral (ADR 11): the trigger a deferred task waits for, when the wait fails it,
    #: and where the resumed try continues (``next_kwargs``: XCom-style JSON text).
    trigger_id: Mapped[int | None] = mapped_column(Integer)
    trigger_timeout: Mapped[datetime | None] = mapped_column(UtcDateTime)
    next_method: Mapped[str | None] = mapped_column(String(1000))
    next_kwargs: Mapped[str | None] = mapped_column(long_text())
    #: Why the scheduler holds it back, as it recorded it (``scheduler.waiting``): JSON
    #: ``{"state", "checks": [{"check", "reason"}]}``, meaningful only while the task
    #: instance is still in that state; ``waiting_since``: when this check was first recorded.
    waiting_reason: Mapped[str | None] = mapped_column(Text)
    waiting_since: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index(None, "state", "dag_id"),
        Index(None, "dag_id", "task_id", "state"),
        Index(None, "pool", "state"),
        Index(None, "state", "worker"),
        Index(None, "trigger_id"),
    )


class TaskInstanceTry(Base):
    """One finished try of a task instance. The unique key is what makes a try count once."""

    __tablename__ = "task_instance_try"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    run_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    task_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    map_index: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    try_number: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    start_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration: Mapped[float | None] = mapped_column(Float)
    hostname: Mapped[str | None] = mapped_column(String(1000))
    executor: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("dag_id", "run_id", "task_id", "map_index", "try_number"),)


class TriggerModel(Base):
    """A deferred task's trigger (ADR 11): what to run (class path and kwargs, XCom-style
    JSON text encrypted with the Fernet key) and which triggerer runs it until when
    (``lease_until``: once past, another triggerer takes it over)."""

    __tablename__ = "trigger"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    classpath: Mapped[str] = mapped_column(String(1000), nullable=False)
    kwargs: Mapped[str] = mapped_column(long_text(), nullable=False)
    created_date: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    triggerer_id: Mapped[str | None] = mapped_column(String(250))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index(None, "triggerer_id"), Index(None, "lease_until"))


class TaskReschedule(Base):
    """A sensor in reschedule mode that asked to be poked again later."""

    __tablename__ = "task_reschedule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    run_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    task_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    map_index: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    try_number: Mapped[int] = mapped_column(Integer, nullable=False)
    start_date: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    end_date: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    duration: Mapped[float] = mapped_column(Float, nullable=False)
    reschedule_date: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (Index(None, "dag_id", "run_id", "task_id", "map_index", "try_number"),)


class XComModel(Base):
    """A value a task pushed for others to pull, stored as JSON."""

    __tablename__ = "xcom"

    dag_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    run_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    task_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    map_index: Mapped[int] = mapped_column(Integer, primary_key=True, default=-1)
    key: Mapped[str] = mapped_column(id_string(128), primary_key=True)
    value: Mapped[str | None] = mapped_column(long_text())
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


class VariableModel(Base):
    """A key/value setting that DAGs read; the value may be encrypted."""

    __tablename__ = "variable"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(id_string(), nullable=False, unique=True)
    val: Mapped[str | None] = mapped_column(long_text())
    description: Mapped[str | None] = mapped_column(Text)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class ConnectionModel(Base):
    """Credentials for an outside system; password and extra are encrypted at rest."""

    __tablename__ = "connection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conn_id: Mapped[str] = mapped_column(id_string(), nullable=False, unique=True)
    conn_type: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(500))
    schema: Mapped[str | None] = mapped_column(String(500))
    login: Mapped[str | None] = mapped_column(Text)
    password: Mapped[str | None] = mapped_column(Text)
    port: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)
    is_encrypted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_extra_encrypted: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class PoolModel(Base):
    """A named number of slots that tasks share."""

    __tablename__ = "slot_pool"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pool: Mapped[str] = mapped_column(String(256), nullable=False, unique=True)
    slots: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    description: Mapped[str | None] = mapped_column(Text)
    #: Deferred tasks hold a slot of this pool too (Airflow's ``include_deferred``).
    include_deferred: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class UserModel(Base):
    """A person (or program) that logs in to the web UI or the API."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(256), nullable=False, unique=True)
    email: Mapped[str | None] = mapped_column(String(512))
    first_name: Mapped[str | None] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    password_hash: Mapped[str | None] = mapped_column(String(512))
    role: Mapped[str] = mapped_column(String(64), nullable=False, default="Viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    last_login: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A bearer token for the REST API; only its hash is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str | None] = mapped_column(String(256))
    token_hash: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LogEvent(Base):
    """The audit log: who did what, when, to which DAG, run or task."""

    __tablename__ = "log_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dttm: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    event: Mapped[str] = mapped_column(String(60), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(500))
    dag_id: Mapped[str | None] = mapped_column(id_string())
    run_id: Mapped[str | None] = mapped_column(id_string())
    task_id: Mapped[str | None] = mapped_column(id_string())
    map_index: Mapped[int | None] = mapped_column(Integer)
    try_number: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "dttm"), Index(None, "dag_id", "dttm"))


class NodeModel(Base):
    """A running scheduler, worker or web node and its last heartbeat."""

    __tablename__ = "node"

    node_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    hostname: Mapped[str | None] = mapped_column(String(1000))
    pid: Mapped[int | None] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    state: Mapped[str] = mapped_column(String(20), default="running", nullable=False)
    info: Mapped[dict | None] = mapped_column(json_type())


class SlaMiss(Base):
    """A task that had not finished within its SLA."""

    __tablename__ = "sla_miss"

    dag_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    run_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    task_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    logical_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    email_sent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    notification_sent: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class TiEvent(Base):
    """The story of a task instance: each transition with its cause."""

    __tablename__ = "ti_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    run_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    task_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    map_index: Mapped[int] = mapped_column(Integer, nullable=False, default=-1)
    try_number: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    old_state: Mapped[str | None] = mapped_column(String(20))
    new_state: Mapped[str | None] = mapped_column(String(20))
    cause: Mapped[str | None] = mapped_column(Text)
    node: Mapped[str | None] = mapped_column(String(250))

    __table_args__ = (Index(None, "dag_id", "run_id", "task_id", "map_index"),)


class TriggerDedup(Base):
    """Message ids of outside triggers already turned into runs, so a redelivery starts none."""

    __tablename__ = "trigger_dedup"

    msg_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    run_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)


# -- assets (ADR 10) ---------------------------------------------------------------------------

#: Longest asset name, URI or alias name kept (an index over it fits MariaDB's 3072 bytes).
ASSET_ID_LEN = 1000


class AssetModel(Base):
    """An asset some DAG defines, schedules on or refers to; its name identifies it."""

    __tablename__ = "asset"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(id_string(ASSET_ID_LEN), nullable=False, unique=True)
    uri: Mapped[str] = mapped_column(id_string(ASSET_ID_LEN), nullable=False)
    asset_group: Mapped[str] = mapped_column(String(1000), nullable=False, default="asset")
    extra: Mapped[dict | None] = mapped_column(json_type())
    #: NATS watchers from the asset's definition: [{"name", "kind", "subject", "servers"}].
    watchers: Mapped[list | None] = mapped_column(json_type())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)

    __table_args__ = (Index(None, "uri"),)


class AssetAliasModel(Base):
    """An asset alias; the assets it resolved to are in asset_alias_asset."""

    __tablename__ = "asset_alias"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(id_string(ASSET_ID_LEN), nullable=False, unique=True)
    alias_group: Mapped[str] = mapped_column(String(1000), nullable=False, default="asset")


class AssetAliasAsset(Base):
    """An asset an alias resolved to: a task added an event of it through the alias."""

    __tablename__ = "asset_alias_asset"

    alias_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer, primary_key=True)

    __table_args__ = (Index(None, "asset_id"),)


class AssetReference(Base):
    """What a DAG does with an asset: schedules on it (task_id ''), or a task's outlet or
    inlet. ``target_type`` is asset / alias / name / uri (a reference by name or URI)."""

    __tablename__ = "asset_reference"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dag_id: Mapped[str] = mapped_column(id_string(), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    task_id: Mapped[str] = mapped_column(id_string(), nullable=False, default="")
    target_type: Mapped[str] = mapped_column(String(20), nullable=False)
    target: Mapped[str] = mapped_column(id_string(ASSET_ID_LEN), nullable=False)

    __table_args__ = (Index(None, "target"), Index(None, "dag_id"))


class AssetEventModel(Base):
    """One event of an asset: a producing task's success, an outside message, an API call.
    Ids grow with every event (the order runs consume them in)."""

    __tablename__ = "asset_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(Integer, nullable=False)
    extra: Mapped[dict | None] = mapped_column(json_type())
    #: task / nats / watcher / api / cli
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="task")
    source_dag_id: Mapped[str | None] = mapped_column(id_string())
    source_run_id: Mapped[str | None] = mapped_column(id_string())
    source_task_id: Mapped[str | None] = mapped_column(id_string())
    source_map_index: Mapped[int | None] = mapped_column(Integer)
    source_try_number: Mapped[int | None] = mapped_column(Integer)
    #: Aliases the event came through (names).
    source_aliases: Mapped[list | None] = mapped_column(json_type())
    #: Deduplicates outside events (``Nats-Msg-Id``, an API client's id).
    msg_id: Mapped[str | None] = mapped_column(String(250), unique=True)
    timestamp: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)

    __table_args__ = (Index(None, "asset_id", "id"),
                      Index(None, "source_dag_id", "source_run_id"))


class AssetDelivery(Base):
    """An event waiting for, or consumed by, a run of one consuming DAG (ADR 10): written
    with the event for every DAG scheduled on its asset; ``run_id`` is set, once, by the
    run that consumes it."""

    __tablename__ = "asset_delivery"

    dag_id: Mapped[str] = mapped_column(id_string(), primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    asset_id: Mapped[int] = mapped_column(Integer, nullable=False)
    run_id: Mapped[str | None] = mapped_column(id_string())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, nullable=False)

    __table_args__ = (Index(None, "dag_id", "run_id", "event_id"), Index(None, "event_id"))
