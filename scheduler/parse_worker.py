"""Parsing one DAG file in a parsing process: store what it defines, or report it.

Runs in the parsing processes of ``scheduler/parsing_pool.py``, never in the scheduler
process itself: user code (the DAG file) is imported here, under the DagBag's import
timeout, and only the serialized DAGs and the import error leave the process.
``parse_and_store`` is the DAG processor's job (the store is written from here);
``parse_for_report`` is ``updraft dags list --local``'s (nothing is written).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

MODULES_TO_WARM = ("updraft.dagbag", "updraft.decorators", "updraft.operators.bash",
                   "updraft.operators.empty", "updraft.operators.python")
"""Imported once when a parsing process starts, so that no parse pays for them."""


def warm_up(store: bool, store_url: str | None = None) -> None:
    """Import what every parse needs (and the store's modules, if ``store``)."""
    import importlib

    from updraft.compat import install_if_enabled

    install_if_enabled()
    for name in MODULES_TO_WARM:
        importlib.import_module(name)
    if store:
        from updraft.serialization import serialize_dag  # noqa: F401
        from updraft.store.dags import write_dag  # noqa: F401
        from updraft.store.engine import get_engine

        get_engine(store_url)


def _memory_note(error: str | None) -> str | None:
    """An import error that is a MemoryError says which limit the file ran into."""
    if error is None or not error.rstrip().rsplit("\n", 1)[-1].startswith("MemoryError"):
        return error
    from updraft.config import conf

    limit = conf.getint("scheduler", "parsing_memory_limit_mb")
    if limit <= 0:
        return error
    return (f"{error.rstrip()}\nThe file ran out of memory: a parsing process may use "
            f"{limit} MB of address space ([scheduler] parsing_memory_limit_mb).\n")


def _import(path: str):
    from updraft.dagbag import DagBag

    bag = DagBag(dag_folder=path, include_examples=False, safe_mode=False)
    return bag, _memory_note(bag.import_errors.get(path))


def parse_and_store(path: str, store_url: str | None, node: str | None,
                    on_imported: Callable[[], None] | None = None) -> dict:
    """Import ``path``, write its DAGs (or its import error) to the store; return a summary.

    ``on_imported`` is called once the file is imported, before the store is written. A DAG
    id that another existing file holds is not stored: it becomes this file's import error
    (the file's other DAGs are stored) and is listed in ``conflicts`` (id -> that file).
    """
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from updraft.store.dags import DagIdConflict, clear_import_error, set_import_error, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, utcnow

    started = time.monotonic()
    bag, error = _import(path)
    if on_imported is not None:
        on_imported()
    file_hash = bag.file_hashes.get(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            source = handle.read()
    except OSError:
        source = None
    changed: list[str] = []
    conflicts: dict[str, str] = {}
    for attempt in range(3):
        try:
            with session_scope(store_url) as session:
                now = utcnow()
                changed, conflicts = [], {}
                if error is None:
                    for dag in bag.dags.values():
                        try:
                            if write_dag(session, dag, file_hash=file_hash, source_code=source,
                                         processor_node=node, now=now,
                                         holder_exists=os.path.exists):
                                changed.append(dag.dag_id)
                        except DagIdConflict as conflict:
                            conflicts[conflict.dag_id] = conflict.holder
                    if changed:
                        # The schedule may have changed: let the scheduler compute it again.
                        session.execute(update(DagModel).where(DagModel.dag_id.in_(changed))
                                        .values(next_dagrun_create_after=None))
                problem = error or _conflicts_error(path, conflicts)
                if problem is not None:
                    set_import_error(session, path, problem, now)
                else:
                    clear_import_error(session, path)
            break
        except IntegrityError:
            # Another process stored the same version (or took the same new DAG id) at the
            # same moment: read it again.
            if attempt == 2:
                raise
    stored = None if error is not None else sorted(set(bag.dags) - set(conflicts))
    return {"path": path, "dag_ids": stored, "changed": changed,
            "error": error or _conflicts_error(path, conflicts), "conflicts": conflicts,
            "duration": time.monotonic() - started}


def _conflicts_error(path: str, conflicts: dict[str, str]) -> str | None:
    """The import error of a file whose DAG ids other files hold, or None."""
    from updraft.store.dags import DagIdConflict

    return "\n".join(str(DagIdConflict(dag_id, path, holder))
                     for dag_id, holder in sorted(conflicts.items())) or None


def parse_for_report(path: str) -> dict:
    """Import ``path`` and describe its DAGs (what ``updraft dags list`` shows); write nothing."""
    started = time.monotonic()
    bag, error = _import(path)
    dags = [] if error is not None else [
        {"dag_id": dag.dag_id, "fileloc": dag.fileloc, "owners": dag.owner,
         "schedule": dag.timetable.summary, "tags": list(dag.tags)}
        for dag in sorted(bag.dags.values(), key=lambda d: d.dag_id)]
    return {"path": path, "dag_ids": None if error is not None else sorted(bag.dags),
            "changed": [], "error": error, "conflicts": {}, "dags": dags,
            "duration": time.monotonic() - started}
