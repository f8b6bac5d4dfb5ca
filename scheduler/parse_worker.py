"""Parsing one DAG file in a child process and storing what it defines.

Runs in the DAG processor's process pool, never in the scheduler process itself: user code
(the DAG file) is imported here, under the DagBag's import timeout, and only the serialized
DAGs and the import error reach the store.
"""

from __future__ import annotations

import time


def parse_and_store(path: str, store_url: str | None, node: str | None) -> dict:
    """Import ``path``, write its DAGs (or its import error) to the store; return a summary."""
    from sqlalchemy import update
    from sqlalchemy.exc import IntegrityError

    from updraft.dagbag import DagBag
    from updraft.store.dags import clear_import_error, set_import_error, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel, utcnow

    started = time.monotonic()
    bag = DagBag(dag_folder=path, include_examples=False, safe_mode=False)
    error = bag.import_errors.get(path)
    file_hash = bag.file_hashes.get(path)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            source = handle.read()
    except OSError:
        source = None
    changed: list[str] = []
    for attempt in range(3):
        try:
            with session_scope(store_url) as session:
                now = utcnow()
                changed = []
                if error is not None:
                    set_import_error(session, path, error, now)
                else:
                    clear_import_error(session, path)
                    for dag in bag.dags.values():
                        if write_dag(session, dag, file_hash=file_hash, source_code=source,
                                     processor_node=node, now=now):
                            changed.append(dag.dag_id)
                    if changed:
                        # The schedule may have changed: let the scheduler compute it again.
                        session.execute(update(DagModel).where(DagModel.dag_id.in_(changed))
                                        .values(next_dagrun_create_after=None))
            break
        except IntegrityError:
            # Another scheduler stored the same version at the same moment: read it again.
            if attempt == 2:
                raise
    return {"path": path, "dag_ids": None if error is not None else sorted(bag.dags),
            "changed": changed, "error": error, "duration": time.monotonic() - started}
