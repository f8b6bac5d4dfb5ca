"""The object-storage XCom backend: large values in files under ``[xcom] object_storage_path``.

Any fsspec URL works (default: the folder ``$UPDRAFT_HOME/xcom-data``) (``file:///data/xcom``, ``s3://bucket/xcom``, ``gcs://...``, with the
fsspec package of that store installed and its credentials in the environment, as fsspec
reads them); tests use the local filesystem. Airflow users know this as the object-storage
XCom backend. Each value goes to a folder owned by its try::

    <root>/<dag>/<run>/<task>/<map index>/<key>/try-<n>/<path in the value or _>/

- Dask DataFrame / Series: Parquet, one file per partition (written by the cluster when
  the try has one), read back lazily with ``dask.dataframe.read_parquet``;
- pandas DataFrame / Series: ``data.parquet``; numpy arrays: ``data.npy``;
- Dask Array: one ``.npy`` per block, read back as a Dask Array of the same chunks;
- Dask Bag: one pickle per partition, read back as a Bag of the same partitions.

The value outlives the cluster; the reaper removes the folder once the store no longer
refers to it (``updraft.xcom_backends.reaper``).
"""

from __future__ import annotations

import json
import logging
import pickle
from typing import Any
from urllib.parse import quote, unquote

from updraft.xcom_backends import TryScope, XComReference

MARKER = "updraft-xcom.json"

log = logging.getLogger("updraft.xcom_backends")


def root() -> str:
    """``[xcom] object_storage_path`` without a trailing slash; when unset, the folder
    ``$UPDRAFT_HOME/xcom-data`` (right for one machine: ``dag.test()``, the local
    executor; tries on several machines need a URL they all reach)."""
    from updraft.config import conf, updraft_home

    path = str(conf.get("xcom", "object_storage_path") or "").rstrip("/")
    if not path:
        path = (updraft_home() / "xcom-data").resolve().as_uri()
    return path


def filesystem(url: str):
    """The fsspec filesystem of ``url`` and the path in it."""
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(url)
    return fs, paths[0]


def folder_url(scope: TryScope, key: str, path: str) -> str:
    parts = [scope.dag_id, scope.run_id, scope.task_id, str(scope.map_index), key,
             f"try-{scope.try_number}", path or "_"]
    return "/".join([root(), *(quote(str(p), safe="") for p in parts)])


def parse_folder(relative: str) -> dict[str, Any] | None:
    """The parts of a try's folder, from its path relative to the root (or None)."""
    parts = [unquote(p) for p in relative.strip("/").split("/")]
    if len(parts) != 6 or not parts[5].startswith("try-"):
        return None
    try:
        return {"dag_id": parts[0], "run_id": parts[1], "task_id": parts[2],
                "map_index": int(parts[3]), "key": parts[4],
                "try_number": int(parts[5][4:])}
    except ValueError:
        return None


def _save_npy(block: Any, url: str) -> int:
    import fsspec
    import numpy as np

    with fsspec.open(url, "wb") as handle:
        np.save(handle, block, allow_pickle=False)
    return 0


def _load_npy(url: str) -> Any:
    import fsspec
    import numpy as np

    with fsspec.open(url, "rb") as handle:
        return np.load(handle, allow_pickle=False)


def _save_pickle(items: Any, url: str) -> int:
    import fsspec

    with fsspec.open(url, "wb") as handle:
        pickle.dump(list(items), handle)
    return 0


def _load_pickle(url: str) -> Any:
    import fsspec

    with fsspec.open(url, "rb") as handle:
        return pickle.load(handle)


def put(scope: TryScope, value: Any, kind: str, key: str, path: str) -> XComReference:
    """Write ``value`` under the try's folder; its reference."""
    import dask

    from updraft.xcom_backends.cluster import local_meta

    url = folder_url(scope, key, path)
    fs, folder = filesystem(url)
    if fs.exists(folder):  # a try number is never reused, but a repeated write must not mix
        fs.rm(folder, recursive=True)
    fs.makedirs(folder, exist_ok=True)
    meta: dict[str, Any] = {}
    if kind in ("dask.dataframe.DataFrame", "dask.dataframe.Series"):
        frame = value.to_frame() if kind.endswith("Series") else value
        meta["npartitions"] = int(value.npartitions)
        if kind.endswith("Series"):
            meta["series_name"] = str(frame.columns[0])
        frame.to_parquet(url + "/data", write_index=True)
        meta["columns"] = {str(c): str(t) for c, t in frame.dtypes.items()}
    elif kind == "dask.array.Array":
        blocks = value.to_delayed()
        flat = blocks.ravel()
        writes = [dask.delayed(_save_npy)(block, f"{url}/block-{i}.npy")
                  for i, block in enumerate(flat)]
        dask.compute(*writes)
        meta.update(shape=[int(s) for s in value.shape], dtype=str(value.dtype),
                    chunks=[list(map(int, c)) for c in value.chunks],
                    npartitions=len(flat), nbytes=int(value.nbytes))
    elif kind == "dask.bag.Bag":
        parts = value.to_delayed()
        dask.compute(*[dask.delayed(_save_pickle)(part, f"{url}/part-{i}.pickle")
                       for i, part in enumerate(parts)])
        meta["npartitions"] = len(parts)
    elif kind in ("pandas.DataFrame", "pandas.Series"):
        frame = value.to_frame() if kind == "pandas.Series" else value
        if kind == "pandas.Series":
            meta["series_name"] = str(frame.columns[0])
        import fsspec

        with fsspec.open(url + "/data.parquet", "wb") as handle:
            frame.to_parquet(handle)
        meta.update(local_meta(value, kind))
    elif kind == "numpy.ndarray":
        _save_npy(value, url + "/data.npy")
        meta.update(local_meta(value, kind))
    else:  # pragma: no cover - value_kind() knows no other
        raise TypeError(f"the object-storage XCom backend cannot store a {kind}")
    try:
        meta["nbytes"] = meta.get("nbytes") or int(fs.du(folder))
    except Exception:  # noqa: BLE001  (only for display)
        log.debug("no size for %s", url, exc_info=True)
    if kind.startswith("dask.dataframe"):
        try:
            import dask.dataframe as dd

            rows = int(dd.read_parquet(url + "/data").map_partitions(len).compute().sum())
            meta["shape"] = [rows, len(meta["columns"])] if kind.endswith("DataFrame") \
                else [rows]
        except Exception:  # noqa: BLE001  (only for display)
            log.debug("no row count for %s", url, exc_info=True)
    with fs.open(f"{folder}/{MARKER}", "w") as handle:
        handle.write(json.dumps({"kind": kind, "meta": meta}))
    return XComReference("object_storage", kind, url, meta=meta)


def get(ref: XComReference) -> Any:
    """The value ``ref`` names (a Dask collection comes back lazily, as one)."""
    fs, folder = filesystem(ref.location)
    if not fs.exists(folder):
        raise LookupError(f"the {ref.kind} of this XCom is gone from object storage "
                          f"({ref.location}): its task was cleared or ran again, or its run "
                          "was deleted")
    kind, meta = ref.kind, ref.meta
    if kind in ("dask.dataframe.DataFrame", "dask.dataframe.Series"):
        import dask.dataframe as dd

        frame = dd.read_parquet(ref.location + "/data")
        return frame[meta["series_name"]] if kind.endswith("Series") else frame
    if kind == "dask.array.Array":
        import dask
        import dask.array as da
        import numpy as np

        chunks = [tuple(c) for c in meta["chunks"]]
        grid = [len(c) for c in chunks]
        dtype = np.dtype(meta["dtype"])
        blocks = []
        for flat, index in enumerate(np.ndindex(*grid)):
            shape = tuple(chunks[d][i] for d, i in enumerate(index))
            blocks.append(da.from_delayed(dask.delayed(_load_npy)(
                f"{ref.location}/block-{flat}.npy"), shape=shape, dtype=dtype))
        nested = np.empty(grid, dtype=object)
        for flat, index in enumerate(np.ndindex(*grid)):
            nested[index] = blocks[flat]
        return da.block(nested.tolist()) if grid else blocks[0]
    if kind == "dask.bag.Bag":
        import dask
        import dask.bag as db

        return db.from_delayed([dask.delayed(_load_pickle)(f"{ref.location}/part-{i}.pickle")
                                for i in range(int(meta["npartitions"]))])
    if kind in ("pandas.DataFrame", "pandas.Series"):
        import fsspec
        import pandas as pd

        with fsspec.open(ref.location + "/data.parquet", "rb") as handle:
            frame = pd.read_parquet(handle)
        return frame[meta["series_name"]] if kind == "pandas.Series" else frame
    if kind == "numpy.ndarray":
        return _load_npy(ref.location + "/data.npy")
    raise TypeError(f"the object-storage XCom backend cannot read a {kind}")


def list_folders() -> list[tuple[str, dict[str, Any]]]:
    """Every try folder under the root: (its path on the filesystem, its parts)."""
    base = root()
    fs, base_path = filesystem(base)
    found = []
    for path in fs.glob(f"{base_path}/*/*/*/*/*/try-*"):
        parts = parse_folder(path[len(base_path):])
        if parts is not None:
            found.append((path, parts))
    return found


def delete(path: str) -> None:
    fs, _ = filesystem(root())
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


__all__ = ["delete", "folder_url", "get", "list_folders", "parse_folder", "put", "root"]
