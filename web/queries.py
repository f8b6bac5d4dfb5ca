"""Read-only store queries shared by the REST API and the UI pages, and their JSON forms.

Every function takes the caller's session and never writes. Lists come back as
``(items, total)`` so pages and the API paginate the same way. The ``*_json`` functions give
the dict the API returns for a row, so the UI can show the same fields.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from updraft.store.models import (
    DagCode,
    DagModel,
    DagRunModel,
    ImportError_,
    LogEvent,
    NodeModel,
    SerializedDagModel,
    TaskInstanceModel,
    TaskInstanceTry,
    TiEvent,
    XComModel,
    utcnow,
)
from updraft.store.waiting import SCHEDULER_HEALTH_THRESHOLD
from web.masking import shown


def iso(value: datetime | None) -> str | None:
    """ISO 8601 text of a datetime (None stays None)."""
    return value.isoformat() if value is not None else None


def count_rows(session: Session, query) -> int:
    """How many rows ``query`` selects (ordering and paging ignored)."""
    inner = query.order_by(None).limit(None).offset(None).subquery()
    return session.scalar(select(func.count()).select_from(inner)) or 0


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- DAGs ------------------------------------------------------------------------------------

def dag_json(row: DagModel) -> dict[str, Any]:
    """The API form of a dag row."""
    return {
        "dag_id": row.dag_id,
        "is_paused": row.is_paused,
        "is_active": row.is_active,
        "fileloc": row.fileloc,
        "owners": [o.strip() for o in (row.owners or "").split(",") if o.strip()],
        "description": row.description,
        "tags": list(row.tags or []),
        "schedule_interval": row.schedule_description,
        "timetable_summary": row.schedule_description,
        "catchup": row.catchup,
        "max_active_runs": row.max_active_runs,
        "max_active_tasks": row.max_active_tasks,
        "dag_hash": row.dag_hash,
        "next_dagrun": iso(row.next_dagrun),
        "next_dagrun_data_interval_start": iso(row.next_dagrun_data_interval_start),
        "next_dagrun_data_interval_end": iso(row.next_dagrun_data_interval_end),
        "next_dagrun_create_after": iso(row.next_dagrun_create_after),
        "last_parsed_time": iso(row.last_parsed_time),
        "has_import_errors": row.has_import_errors,
    }


def list_dags(session: Session, *, limit: int = 100, offset: int = 0,
              tags: Sequence[str] = (), paused: bool | None = None,
              dag_id_pattern: str | None = None, owner: str | None = None,
              only_active: bool = True, order_by: str = "dag_id",
              ) -> tuple[list[DagModel], int]:
    """A page of DAGs matching the filters (tags: any of them), and how many match in all."""
    query = select(DagModel)
    if only_active:
        query = query.where(DagModel.is_active.is_(True))
    if paused is not None:
        query = query.where(DagModel.is_paused.is_(paused))
    if dag_id_pattern:
        query = query.where(DagModel.dag_id.ilike(f"%{_like_escape(dag_id_pattern)}%",
                                                  escape="\\"))
    if owner:
        query = query.where(DagModel.owners.ilike(f"%{_like_escape(owner)}%", escape="\\"))
    descending = order_by.startswith("-")
    column = {"dag_id": DagModel.dag_id, "next_dagrun": DagModel.next_dagrun,
              "last_parsed_time": DagModel.last_parsed_time}.get(order_by.lstrip("-"))
    if column is None:
        raise ValueError(f"cannot order DAGs by {order_by!r}: use dag_id, next_dagrun or "
                         "last_parsed_time, with '-' in front for descending")
    ordering = (column.desc() if descending else column.asc(), DagModel.dag_id.asc())
    if tags:
        # Tags are a JSON list; matching them in SQL differs per backend, so filter the ids
        # here (cheap: two short columns) and load only the page.
        wanted = set(tags)
        ids_query = query.with_only_columns(DagModel.dag_id, DagModel.tags).order_by(*ordering)
        ids = [r.dag_id for r in session.execute(ids_query) if wanted & set(r.tags or [])]
        total = len(ids)
        page_ids = ids[offset:offset + limit]
        if not page_ids:
            return [], total
        rows = {r.dag_id: r for r in session.scalars(
            select(DagModel).where(DagModel.dag_id.in_(page_ids)))}
        return [rows[i] for i in page_ids if i in rows], total
    total = count_rows(session, query)
    rows = list(session.scalars(query.order_by(*ordering).limit(limit).offset(offset)))
    return rows, total


def all_tags(session: Session) -> list[str]:
    """Every tag of an active DAG, sorted (for the filter box)."""
    tags: set[str] = set()
    for (value,) in session.execute(select(DagModel.tags).where(DagModel.is_active.is_(True))):
        tags.update(value or [])
    return sorted(tags)


def get_dag_row(session: Session, dag_id: str) -> DagModel | None:
    """The dag row of ``dag_id``, or None."""
    return session.get(DagModel, dag_id)


def serialized_dag_json(session: Session, dag_id: str, dag_hash: str | None = None
                        ) -> dict[str, Any] | None:
    """The ``dag`` object of the serialized DAG (current version, or ``dag_hash``)."""
    if dag_hash is None:
        dag_hash = session.scalar(select(DagModel.dag_hash).where(DagModel.dag_id == dag_id))
    query = select(SerializedDagModel.data).where(SerializedDagModel.dag_id == dag_id)
    if dag_hash is not None:
        query = query.where(SerializedDagModel.dag_hash == dag_hash)
    data = session.scalar(query.order_by(SerializedDagModel.id.desc()).limit(1))
    return None if data is None else data.get("dag")


def dag_source(session: Session, dag_id: str) -> tuple[str, str] | None:
    """``(fileloc, source)`` of the file that defines ``dag_id``, from the store, with every
    secret the store knows masked (a DAG file may hold one as a literal)."""
    row = session.execute(
        select(SerializedDagModel.file_hash).join(
            DagModel, (DagModel.dag_id == SerializedDagModel.dag_id)
            & (DagModel.dag_hash == SerializedDagModel.dag_hash))
        .where(DagModel.dag_id == dag_id)).first()
    if row is None or row.file_hash is None:
        return None
    code = session.get(DagCode, row.file_hash)
    return None if code is None else (code.fileloc, shown(code.source_code))


# -- runs ------------------------------------------------------------------------------------

def run_json(row: DagRunModel) -> dict[str, Any]:
    """The API form of a dag run."""
    return {
        "dag_id": row.dag_id,
        "dag_run_id": row.run_id,
        "state": row.state,
        "run_type": row.run_type,
        "logical_date": iso(row.logical_date),
        "data_interval_start": iso(row.data_interval_start),
        "data_interval_end": iso(row.data_interval_end),
        "queued_at": iso(row.queued_at),
        "start_date": iso(row.start_date),
        "end_date": iso(row.end_date),
        "conf": shown(row.conf or {}),
        "external_trigger": row.external_trigger,
        "triggered_by": row.triggered_by,
        "dag_hash": row.dag_hash,
        "bundle_version": row.bundle_version,
        "clear_number": row.clear_number,
        "note": row.note,
        "last_scheduling_decision": iso(row.last_scheduling_decision),
    }


RUN_ORDERINGS = ("id", "logical_date", "start_date", "end_date", "state", "run_id")


def list_runs(session: Session, dag_id: str | None, *, limit: int = 100, offset: int = 0,
              states: Sequence[str] = (), order_by: str = "-id",
              logical_date_gte: datetime | None = None, logical_date_lte: datetime | None = None,
              ) -> tuple[list[DagRunModel], int]:
    """A page of runs (of one DAG, or of all when ``dag_id`` is None) and the total."""
    query = select(DagRunModel)
    if dag_id is not None:
        query = query.where(DagRunModel.dag_id == dag_id)
    if states:
        query = query.where(DagRunModel.state.in_(list(states)))
    if logical_date_gte is not None:
        query = query.where(DagRunModel.logical_date >= logical_date_gte)
    if logical_date_lte is not None:
        query = query.where(DagRunModel.logical_date <= logical_date_lte)
    name = order_by.lstrip("-")
    if name not in RUN_ORDERINGS:
        raise ValueError(f"cannot order runs by {order_by!r}: use one of "
                         f"{', '.join(RUN_ORDERINGS)}, with '-' in front for descending")
    column = getattr(DagRunModel, name)
    ordering = column.desc() if order_by.startswith("-") else column.asc()
    total = count_rows(session, query)
    rows = list(session.scalars(query.order_by(ordering, DagRunModel.id.desc())
                                .limit(limit).offset(offset)))
    return rows, total


def get_run(session: Session, dag_id: str, run_id: str) -> DagRunModel | None:
    """One run, or None."""
    return session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                    DagRunModel.run_id == run_id))


# -- task instances --------------------------------------------------------------------------

def ti_json(row: TaskInstanceModel) -> dict[str, Any]:
    """The API form of a task instance."""
    return {
        "dag_id": row.dag_id,
        "dag_run_id": row.run_id,
        "task_id": row.task_id,
        "map_index": row.map_index,
        "state": row.state,
        "try_number": row.try_number,
        "max_tries": row.max_tries,
        "start_date": iso(row.start_date),
        "end_date": iso(row.end_date),
        "duration": row.duration,
        "queued_when": iso(row.queued_dttm),
        "scheduled_when": iso(row.scheduled_dttm),
        "next_retry_at": iso(row.next_retry_at),
        "hostname": row.hostname,
        "pid": row.pid,
        "executor": row.executor,
        "queue": row.queue,
        "pool": row.pool,
        "pool_slots": row.pool_slots,
        "priority_weight": row.priority_weight,
        "operator": row.operator,
        "rendered_fields": shown(row.rendered_fields or {}),
        "note": row.note,
        # Deferral (ADR 11): the trigger a deferred task waits for, until when.
        "trigger_id": row.trigger_id,
        "trigger_timeout": iso(row.trigger_timeout),
        "next_method": row.next_method,
    }


def trigger_json(session: Session, row: TaskInstanceModel) -> dict[str, Any] | None:
    """What a deferred task instance waits for: its trigger (class path, kwargs), since
    when, its timeout and the triggerer running it; None if it is not deferred."""
    from updraft.store.triggers import deferral_info

    info = deferral_info(session, row)
    if info is None:
        return None
    return {"id": info["trigger_id"], "classpath": info.get("classpath"),
            "kwargs": shown(info.get("kwargs") or {}), "created_date": iso(info.get("since")),
            "timeout": iso(info.get("timeout")), "triggerer_id": info.get("triggerer_id"),
            "lease_until": iso(info.get("lease_until")), "next_method": info.get("next_method")}


def list_task_instances(session: Session, dag_id: str, run_id: str, *,
                        states: Sequence[str] = (), limit: int | None = None, offset: int = 0,
                        ) -> tuple[list[TaskInstanceModel], int]:
    """The task instances of one run (by task id, map index) and the total."""
    query = select(TaskInstanceModel).where(TaskInstanceModel.dag_id == dag_id,
                                            TaskInstanceModel.run_id == run_id)
    if states:
        query = query.where(TaskInstanceModel.state.in_(list(states)))
    total = count_rows(session, query)
    query = query.order_by(TaskInstanceModel.task_id, TaskInstanceModel.map_index).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query)), total


def get_task_instance(session: Session, dag_id: str, run_id: str, task_id: str,
                      map_index: int = -1) -> TaskInstanceModel | None:
    """One task instance, or None."""
    return session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))


def grid(session: Session, dag_id: str, run_ids: Sequence[str]
         ) -> dict[tuple[str, str], dict[str, Any]]:
    """For the grid view: ``{(run_id, task_id): {"state", "count", "states"}}`` where mapped
    tasks are summed over their map indexes (one query)."""
    result: dict[tuple[str, str], dict[str, Any]] = {}
    if not run_ids:
        return result
    for run_id, task_id, state, count in session.execute(
            select(TaskInstanceModel.run_id, TaskInstanceModel.task_id, TaskInstanceModel.state,
                   func.count())
            .where(TaskInstanceModel.dag_id == dag_id,
                   TaskInstanceModel.run_id.in_(list(run_ids)))
            .group_by(TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                      TaskInstanceModel.state)):
        cell = result.setdefault((run_id, task_id), {"states": {}, "count": 0})
        cell["states"][state] = count
        cell["count"] += count
    for cell in result.values():
        cell["state"] = _summary_state(cell["states"])
    return result


_STATE_PRIORITY = ("failed", "upstream_failed", "up_for_retry", "up_for_reschedule", "running",
                   "queued", "deferred", "scheduled", "none", "removed", "skipped", "success")


def _summary_state(states: dict[str, int]) -> str:
    for state in _STATE_PRIORITY:
        if states.get(state):
            return state
    return next(iter(states), "none")


def try_json(row: TaskInstanceTry) -> dict[str, Any]:
    """The API form of one finished try."""
    return {"try_number": row.try_number, "map_index": row.map_index, "state": row.state,
            "start_date": iso(row.start_date), "end_date": iso(row.end_date),
            "duration": row.duration, "hostname": row.hostname, "executor": row.executor,
            "error": shown(row.error)}


def list_tries(session: Session, dag_id: str, run_id: str, task_id: str, map_index: int = -1
               ) -> list[TaskInstanceTry]:
    """The recorded tries of one task instance, first try first."""
    return list(session.scalars(select(TaskInstanceTry).where(
        TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
        TaskInstanceTry.task_id == task_id, TaskInstanceTry.map_index == map_index)
        .order_by(TaskInstanceTry.try_number)))


def event_json(row: TiEvent) -> dict[str, Any]:
    """The API form of one step in a task instance's story."""
    return {"timestamp": iso(row.timestamp), "try_number": row.try_number,
            "old_state": row.old_state, "new_state": row.new_state, "cause": shown(row.cause),
            "node": row.node}


def list_ti_events(session: Session, dag_id: str, run_id: str, task_id: str,
                   map_index: int = -1) -> list[TiEvent]:
    """The story of one task instance (why it is in its state), oldest first."""
    return list(session.scalars(select(TiEvent).where(
        TiEvent.dag_id == dag_id, TiEvent.run_id == run_id, TiEvent.task_id == task_id,
        TiEvent.map_index == map_index).order_by(TiEvent.id)))


def log_path_for(ti: TaskInstanceModel, try_number: int, *, upcoming: bool = False
                 ) -> Path | None:
    """Where the log of try ``try_number`` of a task instance read from the store lives, or
    None.

    The path is built from the ids the store holds (never from URL parts), for a try that
    exists (1 to the task instance's try number; one more with ``upcoming``, for a live page
    waiting for it), and must stay inside ``[logging] base_log_folder``.
    """
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    last = max(ti.try_number or 0, 0) + (1 if upcoming else 0)
    if not 1 <= try_number <= last:
        return None
    folder = conf.log_folder().resolve()
    path = try_log_path(folder, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, try_number)
    try:
        resolved = path.resolve()
        resolved.relative_to(folder)
    except (ValueError, OSError):  # an id that climbs out of the log folder
        return None
    return resolved


def log_file(ti: TaskInstanceModel, try_number: int) -> Path | None:
    """The log file of one try (see ``log_path_for``) if this node has it, else None."""
    path = log_path_for(ti, try_number)
    return path if path is not None and path.is_file() else None


def dask_report_file(ti: TaskInstanceModel, try_number: int) -> Path | None:
    """The Dask performance report a try saved beside its log (``log_path_for``), or None."""
    path = log_path_for(ti, try_number)
    if path is None:
        return None
    report = path.with_name(f"attempt={try_number}.dask-report.html")
    return report if report.is_file() else None


def xcom_refs(text: str | None) -> list[dict[str, Any]] | None:
    """What the UI shows for an XCom kept on the Dask cluster or in object storage: one
    entry per reference in it (type, shape, partitions, size, where, and the key path);
    None for a plain JSON value."""
    from updraft.models.xcom import REF_MARK, deserialize_value

    if not text or REF_MARK not in text:
        return None
    try:
        value = deserialize_value(text)
    except (ValueError, TypeError):
        return None
    found: list[dict[str, Any]] = []

    def walk(item: Any, path: str) -> None:
        from updraft.xcom_backends import XComReference

        if isinstance(item, XComReference):
            found.append({"path": path, **item.describe()})
        elif isinstance(item, dict):
            for key, inner in item.items():
                walk(inner, f"{path}.{key}" if path else str(key))
        elif isinstance(item, (list, tuple)):
            for index, inner in enumerate(item):
                walk(inner, f"{path}[{index}]")

    walk(value, "")
    return found or None


def read_try_log(ti: TaskInstanceModel, try_number: int, offset: int = 0) -> str | None:
    """The text of one try's log from byte ``offset`` on, or None if there is no file."""
    path = log_file(ti, try_number)
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            if offset:
                handle.seek(offset)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


# -- XComs -----------------------------------------------------------------------------------

def xcom_json(row: XComModel, with_value: bool = True) -> dict[str, Any]:
    """The API form of an XCom (the value is the stored JSON text)."""
    body = {"dag_id": row.dag_id, "dag_run_id": row.run_id, "task_id": row.task_id,
            "map_index": row.map_index, "key": row.key, "timestamp": iso(row.timestamp)}
    if with_value:
        body["value"] = shown(row.value)
    return body


def list_xcoms(session: Session, dag_id: str, run_id: str, task_id: str | None = None,
               map_index: int | None = None, *, limit: int = 100, offset: int = 0,
               ) -> tuple[list[XComModel], int]:
    """A page of the XComs of a run (or of one task instance) and the total."""
    query = select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id)
    if task_id is not None:
        query = query.where(XComModel.task_id == task_id)
    if map_index is not None:
        query = query.where(XComModel.map_index == map_index)
    total = count_rows(session, query)
    rows = list(session.scalars(query.order_by(XComModel.task_id, XComModel.map_index,
                                               XComModel.key).limit(limit).offset(offset)))
    return rows, total


# -- import errors, audit log, nodes ---------------------------------------------------------

def import_error_json(row: ImportError_) -> dict[str, Any]:
    """The API form of an import error."""
    return {"import_error_id": row.id, "filename": row.filename,
            "stack_trace": shown(row.stacktrace),
            "timestamp": iso(row.timestamp)}


def list_import_errors(session: Session, *, limit: int = 100, offset: int = 0
                       ) -> tuple[list[ImportError_], int]:
    """A page of import errors (by file name) and the total."""
    total = session.scalar(select(func.count()).select_from(ImportError_)) or 0
    rows = list(session.scalars(select(ImportError_).order_by(ImportError_.filename)
                                .limit(limit).offset(offset)))
    return rows, total


def event_log_json(row: LogEvent) -> dict[str, Any]:
    """The API form of an audit entry."""
    return {"event_log_id": row.id, "when": iso(row.dttm), "event": row.event,
            "owner": row.owner, "dag_id": row.dag_id, "run_id": row.run_id,
            "task_id": row.task_id, "map_index": row.map_index, "try_number": row.try_number,
            "extra": shown(row.extra)}


def list_event_logs(session: Session, *, limit: int = 100, offset: int = 0,
                    dag_id: str | None = None, event: str | None = None,
                    owner: str | None = None) -> tuple[list[LogEvent], int]:
    """A page of the audit log, newest first, and the total."""
    query = select(LogEvent)
    if dag_id:
        query = query.where(LogEvent.dag_id == dag_id)
    if event:
        query = query.where(LogEvent.event == event)
    if owner:
        query = query.where(LogEvent.owner == owner)
    total = count_rows(session, query)
    rows = list(session.scalars(query.order_by(LogEvent.id.desc()).limit(limit).offset(offset)))
    return rows, total


def node_json(row: NodeModel, now: datetime | None = None) -> dict[str, Any]:
    """The API form of a node (scheduler, worker, web) and whether its heartbeat is recent."""
    now = now or utcnow()
    age = (now - row.heartbeat_at).total_seconds() if row.heartbeat_at else None
    return {"node_id": row.node_id, "kind": row.kind, "hostname": row.hostname, "pid": row.pid,
            "state": row.state, "started_at": iso(row.started_at),
            "latest_heartbeat": iso(row.heartbeat_at), "heartbeat_age_seconds": age,
            "healthy": row.state == "running" and age is not None
            and age <= SCHEDULER_HEALTH_THRESHOLD.total_seconds(),
            "info": row.info or {}}


def list_nodes(session: Session) -> list[NodeModel]:
    """Every node that ever sent a heartbeat, newest heartbeat first."""
    return list(session.scalars(select(NodeModel).order_by(NodeModel.heartbeat_at.desc())))


_nats_cache: dict[str, tuple[float, dict[str, Any]]] = {}


def scrub_credentials(text: str) -> str:
    """``text`` with the ``user:password@`` of any URL in it removed."""
    import re

    return re.sub(r"//[^/@\s]*@", "//", text)


def without_credentials(url: str) -> str:
    """``url`` without the user and password it may carry (``nats://u:p@h:4222`` ->
    ``nats://h:4222``): the health answers are public."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
    except ValueError:
        return "(unparsable address)"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def nats_status(timeout: float = 1.0, cache_seconds: float = 5.0) -> dict[str, Any]:
    """Whether a NATS server of ``[nats] servers`` answers (it greets with an INFO line)."""
    from urllib.parse import urlsplit

    from updraft.config import conf

    servers = [s.strip() for s in str(conf.get("nats", "servers")).split(",") if s.strip()]
    key = ",".join(servers)
    cached = _nats_cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < cache_seconds:
        return cached[1]
    errors = []
    shown = [without_credentials(s) for s in servers]
    status: dict[str, Any] = {"status": "unhealthy", "servers": shown}
    for server, public in zip(servers, shown, strict=True):
        try:
            parts = urlsplit(server if "://" in server else f"nats://{server}")
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222),
                                          timeout=timeout) as sock:
                sock.settimeout(timeout)
                greeting = sock.recv(16)
            if greeting.startswith(b"INFO"):
                status = {"status": "healthy", "servers": shown, "server": public}
                break
            errors.append(f"{public}: unexpected greeting")
        except (OSError, ValueError) as exc:
            errors.append(f"{public}: {type(exc).__name__}")
    if status["status"] != "healthy":
        status["error"] = "; ".join(errors) or "no NATS server configured"
    _nats_cache[key] = (time.monotonic(), status)
    return status


def health(session: Session, now: datetime | None = None) -> dict[str, Any]:
    """Store, schedulers (heartbeats), workers, NATS and the Dask dashboard link."""
    now = now or utcnow()
    result: dict[str, Any] = {}
    try:
        session.execute(select(1))
        result["metadatabase"] = {"status": "healthy"}
    except Exception as exc:  # noqa: BLE001  (reported, not raised: this is the health check)
        session.rollback()
        result["metadatabase"] = {"status": "unhealthy", "error": scrub_credentials(str(exc))}
        result["scheduler"] = {"status": "unknown", "latest_scheduler_heartbeat": None}
        result["nats"] = nats_status()
        return result
    nodes = [node_json(n, now) for n in list_nodes(session)]
    schedulers = [n for n in nodes if n["kind"] == "scheduler"]
    healthy = [n for n in schedulers if n["healthy"]]
    dashboard = None
    for node in healthy or schedulers:
        info = node["info"]
        dashboard = (info.get("dask_dashboard") or info.get("dashboard_link")
                     or info.get("dashboard"))
        if dashboard:
            break
    result["scheduler"] = {
        "status": "healthy" if healthy else "unhealthy",
        "latest_scheduler_heartbeat": schedulers[0]["latest_heartbeat"] if schedulers else None,
        "schedulers": schedulers,
    }
    result["workers"] = [n for n in nodes if n["kind"] not in ("scheduler", "web",
                                                               "triggerer")]
    result["web"] = [n for n in nodes if n["kind"] == "web"]
    # Airflow's health answer names the triggerer (ADR 11): unknown without one running.
    triggerers = [n for n in nodes if n["kind"] == "triggerer" and n["state"] != "stopped"]
    result["triggerer"] = {
        "status": ("healthy" if any(n["healthy"] for n in triggerers) else "unhealthy")
        if triggerers else "unknown",
        "latest_triggerer_heartbeat": triggerers[0]["latest_heartbeat"] if triggerers else None,
        "triggerers": triggerers,
    }
    result["nats"] = nats_status()
    result["dask"] = {"dashboard_link": dashboard}
    return result
