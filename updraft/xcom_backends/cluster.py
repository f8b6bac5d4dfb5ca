"""The cluster XCom backend: large values stay on the Dask cluster the try runs on.

A Dask collection is persisted (the try waits until every partition is in memory, so an
error in building it fails this try, not the next) and published as a Dask dataset; a
pandas / numpy value is scattered and published the same way. The dataset's name is owned
by the try (``dataset_name``): the reaper (``updraft.xcom_backends.reaper``) reads the task
instance and the XCom row back from it, which is how the data's lifetime survives a restart
of any node. A downstream try gets the same collection back (``get``): no copy through the
store, and the partitions stay on the workers that hold them.
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import quote, unquote

from updraft.xcom_backends import TryScope, XComReference, is_dask_kind

PREFIX = "updraft-xcom"
"""Every dataset Updraft publishes starts with this (and ``|``); others are left alone."""

MAX_COLUMNS = 50


class XComValueLost(LookupError):
    """A reference whose data is no longer on the cluster."""


def dataset_name(scope: TryScope, key: str, path: str = "") -> str:
    """``updraft-xcom|dag|run|task|map index|key|try|path`` (each part URL-quoted)."""
    parts = [scope.dag_id, scope.run_id, scope.task_id, str(scope.map_index), key,
             str(scope.try_number), path]
    return "|".join([PREFIX, *(quote(str(part), safe="") for part in parts)])


def parse_name(name: Any) -> dict[str, Any] | None:
    """The parts of a dataset name made by ``dataset_name`` (None for any other name)."""
    if not isinstance(name, str) or not name.startswith(PREFIX + "|"):
        return None
    parts = name.split("|")
    if len(parts) != 8:
        return None
    dag_id, run_id, task_id, map_index, key, try_number, path = (unquote(p) for p in parts[1:])
    try:
        return {"dag_id": dag_id, "run_id": run_id, "task_id": task_id,
                "map_index": int(map_index), "key": key, "try_number": int(try_number),
                "path": path}
    except ValueError:
        return None


def put(scope: TryScope, value: Any, kind: str, key: str, path: str) -> XComReference:
    """Keep ``value`` on the cluster under the try's name; its reference."""
    from distributed import futures_of, wait

    from updraft.dask_support import cluster_client

    client = cluster_client()
    name = dataset_name(scope, key, path)
    if is_dask_kind(kind):
        persisted = client.persist(value)
        futures = futures_of(persisted)
        wait(futures)
        for future in futures:
            if future.status == "error":
                raise future.exception()
        meta = collection_meta(client, persisted, kind, futures)
        kept = persisted
    else:
        kept = client.scatter(value, hash=False)
        meta = local_meta(value, kind)
    client.publish_dataset(kept, name=name, override=True)
    return XComReference("cluster", kind, name, scheduler=client.scheduler.address, meta=meta)


def get(ref: XComReference) -> Any:
    """The collection (or value) ``ref`` names, from the cluster this try runs on."""
    from updraft.dask_support import cluster_client

    client = cluster_client()
    try:
        kept = client.get_dataset(ref.location)
    except KeyError:
        here = client.scheduler.address
        elsewhere = (f" (it was kept on {ref.scheduler}; this try runs on {here})"
                     if ref.scheduler and ref.scheduler != here else "")
        raise XComValueLost(
            f"the {ref.kind} of this XCom is no longer on the Dask cluster{elsewhere}: it was "
            "released (its run ended more than [xcom] cluster_retention seconds ago, or its "
            "task was cleared) or the cluster restarted. Clear the task that produced it so "
            "it runs again, or keep such values in object storage "
            "(executor_config={'xcom_backend': 'object_storage'})") from None
    if is_dask_kind(ref.kind):
        return kept
    return kept.result()


def delete(client: Any, name: str) -> None:
    """Unpublish one dataset (its data goes once nobody else holds it)."""
    try:
        client.unpublish_dataset(name)
    except KeyError:
        pass


def list_names(client: Any) -> list[str]:
    """Every dataset of the cluster that Updraft published."""
    return [name for name in client.list_datasets() if parse_name(name) is not None]


def collection_meta(client: Any, collection: Any, kind: str, futures: list) -> dict[str, Any]:
    """Type facts of a persisted Dask collection: shape, partitions, size, columns."""
    meta: dict[str, Any] = {"npartitions": int(getattr(collection, "npartitions", 0) or 0)}
    try:
        sizes = client.nbytes(keys=[f.key for f in futures], summary=False)
        meta["nbytes"] = int(sum(sizes.values()))
    except Exception:  # noqa: BLE001  (only for display)
        logging.getLogger("updraft.xcom_backends").debug("no size", exc_info=True)
    if kind.startswith("dask.dataframe"):
        lengths = client.compute(collection.map_partitions(len)).result()
        rows = int(sum(lengths))
        if kind.endswith("DataFrame"):
            columns = {str(c): str(t) for c, t in collection.dtypes.items()}
            meta["shape"] = [rows, len(columns)]
            meta["columns"] = dict(list(columns.items())[:MAX_COLUMNS])
        else:
            meta["shape"] = [rows]
            meta["dtype"] = str(collection.dtype)
    elif kind == "dask.array.Array":
        meta["shape"] = [None if math.isnan(s) else int(s) for s in collection.shape]
        meta["dtype"] = str(collection.dtype)
        meta["chunks"] = [len(c) for c in collection.chunks]
    return meta


def local_meta(value: Any, kind: str) -> dict[str, Any]:
    """Type facts of a pandas / numpy value."""
    meta: dict[str, Any] = {"shape": [int(s) for s in getattr(value, "shape", ())]}
    if kind == "pandas.DataFrame":
        meta["nbytes"] = int(value.memory_usage(deep=True).sum())
        meta["columns"] = dict(list({str(c): str(t) for c, t in
                                     value.dtypes.items()}.items())[:MAX_COLUMNS])
    elif kind == "pandas.Series":
        meta["nbytes"] = int(value.memory_usage(deep=True))
        meta["dtype"] = str(value.dtype)
    else:
        meta["nbytes"] = int(value.nbytes)
        meta["dtype"] = str(value.dtype)
    return meta


__all__ = ["PREFIX", "XComValueLost", "dataset_name", "delete", "get", "list_names",
           "parse_name", "put"]
