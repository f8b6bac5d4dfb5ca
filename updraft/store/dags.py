"""DAGs in the store: write what the DAG processor parsed, read it back without DAG files.

The DAG processor calls ``write_dag`` for each DAG it parsed, ``set_import_error`` /
``clear_import_error`` per file and ``mark_inactive`` after a scan of the folder. The
scheduler and the web call ``read_dag``; the CLI calls ``list_dags`` and
``list_import_errors``. Every function takes the caller's session and never commits; the
caller owns the transaction.

A DAG id belongs to one file. The first file stored with it keeps it while its DAG is
active and that file exists: ``write_dag`` refuses the same id from any other file with
``DagIdConflict`` (the DAG processor records it as that file's import error), so the
stored DAG never flips between two files that define the same id.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from updraft.exceptions import UpdraftException
from updraft.serialization import SerializedDAG, dag_hash, deserialize_dag, serialize_dag
from updraft.store.models import DagCode, DagModel, ImportError_, SerializedDagModel

#: How many deserialized DAG versions one process keeps.
CACHE_SIZE = 512

_cache: OrderedDict[tuple[str, str], SerializedDAG] = OrderedDict()
_cache_lock = threading.Lock()


class DagIdConflict(UpdraftException):
    """A file defines a DAG id that an active DAG of another file already holds."""

    def __init__(self, dag_id: str, fileloc: str, holder: str) -> None:
        super().__init__(f"DAG id {dag_id!r} is already defined in {holder}")
        self.dag_id = dag_id
        self.fileloc = fileloc
        self.holder = holder


@dataclass(frozen=True)
class StoredDag:
    """What ``updraft dags list`` shows of a stored DAG."""

    dag_id: str
    fileloc: str | None
    owners: str | None
    is_paused: bool
    schedule: str | None
    tags: list[str]
    has_import_errors: bool


@dataclass(frozen=True)
class ImportErrorRecord:
    """A DAG file that failed to load."""

    filename: str
    stacktrace: str
    timestamp: datetime


def _cached(dag_id: str, version: str) -> SerializedDAG | None:
    with _cache_lock:
        found = _cache.get((dag_id, version))
        if found is not None:
            _cache.move_to_end((dag_id, version))
        return found


def _remember(dag: SerializedDAG) -> None:
    with _cache_lock:
        _cache[(dag.dag_id, dag.dag_hash)] = dag
        _cache.move_to_end((dag.dag_id, dag.dag_hash))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)


def clear_cache() -> None:
    """Forget every deserialized DAG kept by ``read_dag`` (tests)."""
    with _cache_lock:
        _cache.clear()


def _paused_at_creation(dag: Any) -> bool:
    if dag.is_paused_upon_creation is not None:
        return bool(dag.is_paused_upon_creation)
    from updraft.config import conf

    return conf.getboolean("core", "dags_are_paused_at_creation")


def write_dag(session: Session, dag: Any, *, file_hash: str | None,
              source_code: str | None = None, processor_node: str | None = None,
              now: datetime, holder_exists: Callable[[str], bool] | None = None) -> bool:
    """Store a parsed DAG: its dag row, a new serialized version if it changed, its code.

    An existing row keeps its ``is_paused``; a new one is paused as the DAG or
    ``[core] dags_are_paused_at_creation`` says. Returns True if the stored DAG changed
    (new DAG, new version, or a DAG that was inactive and is back). ``processor_node`` is
    accepted for the processor's uniform call; the dag table has no column for it yet.

    Raises ``DagIdConflict`` (and changes nothing) if an active DAG of another file holds
    the id, unless ``holder_exists(that file)`` says the file is gone (the DAG moved).
    Taking an id over is a compare-and-set on the row's file, so of two files taking the
    same id at once one wins and the other gets the conflict.
    """
    del processor_node
    fileloc = str(dag.fileloc) if dag.fileloc is not None else None
    row = session.get(DagModel, dag.dag_id)
    if row is not None and fileloc is not None and row.fileloc is not None \
            and row.fileloc != fileloc:
        holder = row.fileloc
        if row.is_active and (holder_exists is None or holder_exists(holder)):
            raise DagIdConflict(dag.dag_id, fileloc, holder)
        taken = session.execute(
            update(DagModel).where(DagModel.dag_id == dag.dag_id, DagModel.fileloc == holder,
                                   DagModel.is_active == row.is_active)
            .values(fileloc=fileloc).execution_options(synchronize_session=False))
        if taken.rowcount != 1:
            session.expire(row)
            raise DagIdConflict(dag.dag_id, fileloc, session.get(DagModel, dag.dag_id).fileloc
                                or holder)
        row.fileloc = fileloc
    data = serialize_dag(dag, file_hash=file_hash)
    version = dag_hash(data)
    created = row is None
    if row is None:
        row = DagModel(dag_id=dag.dag_id, is_paused=_paused_at_creation(dag))
        session.add(row)
    changed = created or row.dag_hash != version or not row.is_active
    body = data["dag"]
    row.is_active = True
    row.fileloc = body["fileloc"]
    row.owners = body["owner"][:2000]
    row.description = body["description"]
    row.tags = body["tags"]
    row.schedule_description = body["timetable_summary"][:1000]
    row.timetable = body["timetable"]
    row.catchup = body["catchup"]
    row.max_active_runs = body["max_active_runs"]
    row.max_active_tasks = body["max_active_tasks"]
    row.dag_hash = version
    row.last_parsed_time = now
    row.has_import_errors = False

    exists = session.scalar(select(SerializedDagModel.id).where(
        SerializedDagModel.dag_id == dag.dag_id, SerializedDagModel.dag_hash == version))
    if exists is None:
        session.add(SerializedDagModel(dag_id=dag.dag_id, dag_hash=version, data=data,
                                       fileloc=body["fileloc"], file_hash=file_hash,
                                       created_at=now))
    if file_hash is not None and source_code is not None:
        code = session.get(DagCode, file_hash)
        if code is None:
            session.add(DagCode(file_hash=file_hash, fileloc=body["fileloc"],
                                source_code=source_code, last_updated=now))
        elif code.fileloc != body["fileloc"]:
            code.fileloc = body["fileloc"]
            code.last_updated = now
    if changed or exists is None:
        # Assets the DAG defines or names, and what it does with them (ADR 10).
        from updraft.store.assets import sync_dag_assets

        sync_dag_assets(session, dag.dag_id, body, now)
    session.flush()
    return changed


def read_dag(session: Session, dag_id: str, dag_hash: str | None = None) -> SerializedDAG | None:
    """The current version of a DAG (or the version ``dag_hash``), or None if not stored."""
    version = dag_hash
    if version is None:
        version = session.scalar(select(DagModel.dag_hash).where(DagModel.dag_id == dag_id))
    if version is not None:
        found = _cached(dag_id, version)
        if found is not None:
            return found
        data = session.scalar(select(SerializedDagModel.data).where(
            SerializedDagModel.dag_id == dag_id, SerializedDagModel.dag_hash == version))
    else:
        data = session.scalar(select(SerializedDagModel.data)
                              .where(SerializedDagModel.dag_id == dag_id)
                              .order_by(SerializedDagModel.id.desc()).limit(1))
    if data is None:
        return None
    result = deserialize_dag(data)
    _remember(result)
    return result


def mark_inactive(session: Session, alive_dag_ids_by_file: Mapping[str, Iterable[str] | None],
                  now: datetime) -> list[str]:
    """After a scan of the DAG folder, mark the DAGs that are gone inactive; return their ids.

    ``alive_dag_ids_by_file`` maps every DAG file found to the DAG ids it defines now, or to
    None when the file failed to import (its DAGs are left as they are). A DAG whose file is
    not a key, or whose id is not among its file's ids, is marked inactive. ``now`` is the
    scan time; the dag table keeps no deactivation time.
    """
    del now
    alive = {str(f): (None if ids is None else set(ids))
             for f, ids in alive_dag_ids_by_file.items()}
    gone = []
    for dag_id, fileloc in session.execute(select(DagModel.dag_id, DagModel.fileloc)
                                           .where(DagModel.is_active.is_(True))):
        if fileloc in alive and alive[fileloc] is None:
            continue
        if fileloc not in alive or dag_id not in alive[fileloc]:
            gone.append(dag_id)
    gone.sort()
    for start in range(0, len(gone), 500):
        session.execute(update(DagModel).where(DagModel.dag_id.in_(gone[start:start + 500]))
                        .values(is_active=False))
    return gone


def set_import_error(session: Session, filename: str, stacktrace: str, now: datetime) -> None:
    """Record (or replace) the import error of a DAG file and flag the DAGs it defined."""
    row = session.scalar(select(ImportError_).where(ImportError_.filename == filename))
    if row is None:
        session.add(ImportError_(filename=filename, stacktrace=stacktrace, timestamp=now))
    else:
        row.stacktrace = stacktrace
        row.timestamp = now
    session.execute(update(DagModel).where(DagModel.fileloc == filename)
                    .values(has_import_errors=True))
    session.flush()


def clear_import_error(session: Session, filename: str) -> None:
    """Forget the import error of a DAG file (it loads again, or is gone)."""
    session.execute(delete(ImportError_).where(ImportError_.filename == filename))
    session.execute(update(DagModel).where(DagModel.fileloc == filename)
                    .values(has_import_errors=False))


def list_dags(session: Session) -> list[StoredDag]:
    """Every active DAG, by id: what the DAG processor stored, no DAG file imported."""
    rows = session.execute(
        select(DagModel.dag_id, DagModel.fileloc, DagModel.owners, DagModel.is_paused,
               DagModel.schedule_description, DagModel.tags, DagModel.has_import_errors)
        .where(DagModel.is_active.is_(True)).order_by(DagModel.dag_id))
    return [StoredDag(r.dag_id, r.fileloc, r.owners, bool(r.is_paused), r.schedule_description,
                      list(r.tags or []), bool(r.has_import_errors)) for r in rows]


def list_import_errors(session: Session) -> list[ImportErrorRecord]:
    """Every recorded import error, by file name."""
    rows = session.execute(select(ImportError_.filename, ImportError_.stacktrace,
                                  ImportError_.timestamp).order_by(ImportError_.filename))
    return [ImportErrorRecord(r.filename, r.stacktrace, r.timestamp) for r in rows]


__all__ = ["DagIdConflict", "ImportErrorRecord", "StoredDag", "clear_cache",
           "clear_import_error", "list_dags", "list_import_errors", "mark_inactive", "read_dag",
           "set_import_error", "write_dag"]
