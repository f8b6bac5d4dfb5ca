"""Releasing large XCom values once nothing may use them any more.

The rule (README "Dask-native tasks"), applied to every value a try kept on the cluster or
in object storage, whose name or folder says which try of which task instance made it:

- kept while its task instance is ``running`` that try (it is being written or used);
- kept afterwards while its task instance still holds that try's result (same try number,
  state success, failed or skipped) and the store's XCom row still refers to it,
- and, for cluster data, until ``[xcom] cluster_retention`` seconds after its run ended
  (object storage: ``[xcom] object_storage_retention``; 0 there means no time limit);
- released otherwise: the task instance was cleared or runs again (a new try number), the
  XCom row was replaced, the run or the DAG was deleted.

Everything needed is in the store and in the names, so the rule holds across restarts of
the scheduler, the workers and the web; the Dask executor applies it from its watchdog
(``reap_cluster`` every ``[xcom] reap_interval`` seconds), and ``reap_object_storage`` can
be called from any node that reaches the store and the storage.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from updraft.state import FINISHED_RUN_STATES

log = logging.getLogger("updraft.xcom_backends")

KEEP_STATES = ("success", "failed", "skipped")


def _facts(session, keys: set[tuple[str, str, str, int]]) -> tuple[dict, dict, dict]:
    """Task instances, runs and XCom values of these task-instance keys (three queries)."""
    from sqlalchemy import select, tuple_

    from updraft.store.models import DagRunModel, TaskInstanceModel, XComModel

    tis: dict[tuple, Any] = {}
    runs: dict[tuple, Any] = {}
    xcoms: dict[tuple, str] = {}
    if not keys:
        return tis, runs, xcoms
    listed = sorted(keys)
    for start in range(0, len(listed), 200):
        chunk = listed[start:start + 200]
        ti_key = tuple_(TaskInstanceModel.dag_id, TaskInstanceModel.run_id,
                        TaskInstanceModel.task_id, TaskInstanceModel.map_index)
        for row in session.execute(select(
                TaskInstanceModel.dag_id, TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                TaskInstanceModel.map_index, TaskInstanceModel.state,
                TaskInstanceModel.try_number).where(ti_key.in_(chunk))):
            tis[tuple(row[:4])] = row
        run_keys = sorted({k[:2] for k in chunk})
        for row in session.execute(select(
                DagRunModel.dag_id, DagRunModel.run_id, DagRunModel.state,
                DagRunModel.end_date).where(
                tuple_(DagRunModel.dag_id, DagRunModel.run_id).in_(run_keys))):
            runs[tuple(row[:2])] = row
        x_key = tuple_(XComModel.dag_id, XComModel.run_id, XComModel.task_id,
                       XComModel.map_index)
        for row in session.execute(select(
                XComModel.dag_id, XComModel.run_id, XComModel.task_id, XComModel.map_index,
                XComModel.key, XComModel.value).where(x_key.in_(chunk))):
            xcoms[tuple(row[:5])] = row.value or ""
    return tis, runs, xcoms


def _aware(value: datetime | None) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def keep(parts: dict[str, Any], marker: str, tis: dict, runs: dict, xcoms: dict,
         now: datetime, retention: float) -> tuple[bool, str]:
    """Whether the value named by ``parts`` is kept, and why (see the module docstring).
    ``marker`` is the text its XCom row contains when it still refers to it."""
    key = (parts["dag_id"], parts["run_id"], parts["task_id"], parts["map_index"])
    ti = tis.get(key)
    if ti is None:
        return False, "its task instance is gone (run or DAG deleted)"
    if ti.try_number != parts["try_number"]:
        return False, f"its task instance is at try {ti.try_number} now"
    if ti.state == "running":
        return True, "its try is running"
    if ti.state not in KEEP_STATES:
        return False, f"its task instance was cleared ({ti.state or 'none'})"
    if marker not in xcoms.get((*key, parts["key"]), ""):
        return False, "its XCom row no longer refers to it"
    run = runs.get(key[:2])
    if run is None:
        return False, "its run is gone"
    if retention > 0 and run.state in FINISHED_RUN_STATES and run.end_date is not None:
        if _aware(run.end_date) + timedelta(seconds=retention) <= now:
            return False, f"its run ended more than {retention:g} s ago"
    elif retention == 0 and run.state in FINISHED_RUN_STATES:
        return False, "its run ended"
    return True, "in use"


def _marker(text: str) -> str:
    """How a name appears inside the stored JSON text of its XCom row."""
    import json

    return json.dumps(text)[1:-1]


def reap_cluster(client: Any, store_url: str | None, now: datetime | None = None) -> list[str]:
    """Unpublish the cluster's Updraft datasets the rule no longer keeps; their names."""
    from updraft.config import conf
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow
    from updraft.xcom_backends import cluster

    now = now or utcnow()
    named = {name: cluster.parse_name(name) for name in cluster.list_names(client)}
    if not named:
        return []
    keys = {(p["dag_id"], p["run_id"], p["task_id"], p["map_index"]) for p in named.values()}
    with session_scope(store_url) as session:
        tis, runs, xcoms = _facts(session, keys)
    retention = conf.getfloat("xcom", "cluster_retention")
    released = []
    for name, parts in named.items():
        kept, why = keep(parts, _marker(name), tis, runs, xcoms, now, retention)
        if not kept:
            cluster.delete(client, name)
            released.append(name)
            log.info("released XCom data %s from the Dask cluster: %s", name, why)
    return released


def reap_object_storage(store_url: str | None, now: datetime | None = None) -> list[str]:
    """Remove the object-storage folders the rule no longer keeps; their paths."""
    from updraft.config import conf
    from updraft.store.engine import session_scope
    from updraft.store.models import utcnow
    from updraft.xcom_backends import object_storage

    now = now or utcnow()
    folders = object_storage.list_folders()
    if not folders:
        return []
    keys = {(p["dag_id"], p["run_id"], p["task_id"], p["map_index"]) for _, p in folders}
    with session_scope(store_url) as session:
        tis, runs, xcoms = _facts(session, keys)
    retention = conf.getfloat("xcom", "object_storage_retention")
    removed = []
    base = object_storage.root()
    for path, parts in folders:
        # The row holds the folder's URL: match on its quoted tail, the same on every fs.
        tail = path.rstrip("/").split("/")[-6:]
        marker = _marker("/".join(tail))
        kept, why = keep(parts, marker, tis, runs, xcoms, now, retention if retention > 0
                         else -1.0)
        if not kept:
            object_storage.delete(path)
            removed.append(path)
            log.info("removed XCom data %s from %s: %s", "/".join(tail), base, why)
    return removed


__all__ = ["keep", "reap_cluster", "reap_object_storage"]
