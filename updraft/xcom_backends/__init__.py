"""Where large XCom values live: on the Dask cluster, or in object storage, with only a small
reference in the store.

A task that returns (or pushes) a Dask collection (DataFrame, Series, Array, Bag) or a
pandas / numpy value does not send it through the metadata store. Inside the try, before
its result leaves the try's process, each such value (also inside a returned dict, list or
tuple) is handed to a backend and replaced by an ``XComReference``: a small JSON object
(``{"__type__": "xcom_ref", ...}`` in the ``xcom`` row) that says what the value is (type,
shape, partitions, size) and where it lives. A downstream try that pulls the XCom gets the
value back from the backend, not from the store.

- ``cluster`` (``updraft.xcom_backends.cluster``, the default when the try runs on a Dask
  cluster): a Dask collection is persisted on the cluster and published as a Dask dataset
  under a name owned by the try; a pandas / numpy value is scattered to the cluster and
  published the same way. Downstream gets the same collection back (its partitions stay
  where they are) or the value itself.
- ``object_storage`` (``updraft.xcom_backends.object_storage``): the value is written with
  fsspec under ``[xcom] object_storage_path`` (Parquet for data frames, ``.npy`` for
  arrays, pickles for bags) and read back lazily (a Dask collection stays a Dask
  collection). For results that must outlive the cluster, or tries without one.

Which one: ``executor_config={"xcom_backend": ...}`` on the task, else ``[xcom]
large_value_backend`` (``auto``: the cluster when the try runs on one, else object storage,
by default the folder ``$UPDRAFT_HOME/xcom-data``).

Lifetime (``updraft.xcom_backends.reaper``; the rule is derived from the names and the
store, so it survives restarts of every node): a value is kept while its try runs, and
afterwards while the store's XCom row still refers to it and its task instance still holds
that try's result. It goes when the task instance is cleared or runs again, when the run
is deleted, and, for cluster data, ``[xcom] cluster_retention`` seconds after its run ended
(object storage: ``[xcom] object_storage_retention``, 0 = as long as the row exists).

Nothing here imports Dask, pandas or numpy at import time.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("updraft.xcom_backends")

REF_TAG = "xcom_ref"
"""The ``__type__`` of a reference in the stored JSON."""

BACKENDS = ("cluster", "object_storage")

# Classes are recognised by module and name, so that nothing here imports them.
_DASK_KINDS = {
    ("dask.dataframe", "DataFrame"): "dask.dataframe.DataFrame",
    ("dask.dataframe", "Series"): "dask.dataframe.Series",
    ("dask.array", "Array"): "dask.array.Array",
    ("dask.bag", "Bag"): "dask.bag.Bag",
}
_LOCAL_KINDS = {
    ("pandas", "DataFrame"): "pandas.DataFrame",
    ("pandas", "Series"): "pandas.Series",
    ("numpy", "ndarray"): "numpy.ndarray",
}


def value_kind(value: Any) -> str | None:
    """``"dask.dataframe.DataFrame"``, ``"pandas.DataFrame"``, ``"numpy.ndarray"``... for a
    value a backend stores, None for anything else (checked without importing them)."""
    for klass in type(value).__mro__:
        module = (klass.__module__ or "").split(".")
        name = klass.__name__
        for (prefix, wanted), kind in (*_DASK_KINDS.items(), *_LOCAL_KINDS.items()):
            parts = prefix.split(".")
            if name == wanted and module[:len(parts)] == parts:
                return kind
    return None


def is_dask_kind(kind: str | None) -> bool:
    return bool(kind) and kind.startswith("dask.")


@dataclass(frozen=True)
class XComReference:
    """A value kept outside the store: what it is and where it lives (all JSON)."""

    backend: str  # "cluster" or "object_storage"
    kind: str  # value_kind() of the value
    location: str  # the dataset name (cluster) or the URL of its folder (object storage)
    scheduler: str | None = None  # the Dask scheduler's address (cluster)
    meta: dict[str, Any] = field(default_factory=dict)  # shape, npartitions, nbytes, ...

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "kind": self.kind, "location": self.location,
                "scheduler": self.scheduler, "meta": dict(self.meta)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> XComReference:
        unknown = set(data) - {"backend", "kind", "location", "scheduler", "meta"}
        if unknown:
            raise ValueError(f"unknown fields in an XCom reference: {sorted(unknown)}")
        return cls(backend=data["backend"], kind=data["kind"], location=data["location"],
                   scheduler=data.get("scheduler"), meta=dict(data.get("meta") or {}))

    def describe(self) -> dict[str, Any]:
        """What the UI shows: type, shape, partitions, size and where the value lives."""
        meta = self.meta
        where = ("Dask cluster " + (self.scheduler or "?") + f", dataset {self.location!r}"
                 if self.backend == "cluster" else self.location)
        return {"type": self.kind, "backend": self.backend, "where": where,
                "shape": meta.get("shape"), "npartitions": meta.get("npartitions"),
                "nbytes": meta.get("nbytes"), "columns": meta.get("columns"),
                "dtype": meta.get("dtype")}


# -- the try's scope ---------------------------------------------------------------------

@dataclass
class TryScope:
    """What a running try needs to store and fetch large values (one per try)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    backend: str | None = None  # the task's executor_config choice
    #: Set once the try's process connected to the cluster (the performance report).
    cluster_used: bool = False
    report_path: str | None = None

    def offload(self, ti: Any, task: Any = None) -> None:
        """Replace the large values the try pushed by references (before its result leaves
        the process); raises if a backend cannot take one (the try then fails)."""
        config = getattr(task, "executor_config", None) or {}
        if isinstance(config, dict) and config.get("xcom_backend"):
            self.backend = str(config["xcom_backend"])
        pending = getattr(ti, "pending_xcoms", None)
        if not pending:
            return
        for key in list(pending):
            pending[key] = self._offload(pending[key], key, "")

    def drop_unsent(self, result: Any) -> None:
        """Leave out of a try's result the large values that were not offloaded (the try
        failed before it got there): they cannot travel to the supervisor or the store."""
        for key in list(result.xcoms):
            if _has_raw_value(result.xcoms[key]):
                log.warning("XCom %r of this failed try holds a %s: not stored", key,
                            value_kind(result.xcoms[key]) or "large value")
                del result.xcoms[key]

    def _offload(self, value: Any, key: str, path: str) -> Any:
        if isinstance(value, XComReference):
            return value
        kind = value_kind(value)
        if kind is not None:
            return store_value(self, value, kind, key, path)
        if isinstance(value, dict):
            return {k: self._offload(v, key, f"{path}.{k}" if path else str(k))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            items = [self._offload(v, key, f"{path}.{i}" if path else str(i))
                     for i, v in enumerate(value)]
            return items if isinstance(value, list) else tuple(items)
        return value


def _has_raw_value(value: Any) -> bool:
    if value_kind(value) is not None:
        return True
    if isinstance(value, dict):
        return any(_has_raw_value(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_raw_value(v) for v in value)
    return False


_scope: contextvars.ContextVar[TryScope | None] = contextvars.ContextVar(
    "updraft_xcom_scope", default=None)


def current_scope() -> TryScope | None:
    """The scope of the try running in this thread (None outside a try: web, scheduler)."""
    return _scope.get()


@contextmanager
def try_scope(request: Any) -> Iterator[TryScope]:
    """The try's scope: references pulled in it resolve to values; large values pushed in
    it are accepted (and offloaded by ``TryScope.offload``); at its end the Dask
    performance report of a try that used the cluster is written next to its log."""
    scope = TryScope(request.dag_id, request.run_id, request.task_id, request.map_index,
                     request.try_number)
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        try:
            from updraft.dask_support import finish_try_on_cluster

            finish_try_on_cluster(scope)
        except Exception:  # noqa: BLE001  (a report is an extra; it never fails a try)
            log.warning("could not write the Dask performance report of this try",
                        exc_info=True)


# -- storing and fetching ----------------------------------------------------------------

def choose_backend(scope: TryScope, kind: str) -> str:
    """Which backend stores a value of ``kind`` for this try (see the module docstring)."""
    from updraft.config import conf

    wanted = (scope.backend or conf.get("xcom", "large_value_backend") or "auto").strip()
    if wanted not in ("auto", *BACKENDS):
        raise ValueError(f"unknown XCom backend {wanted!r}: use auto, cluster or "
                         "object_storage")
    if wanted != "auto":
        return wanted
    from updraft.dask_support import cluster_reachable

    return "cluster" if cluster_reachable() else "object_storage"


def store_value(scope: TryScope, value: Any, kind: str, key: str, path: str) -> XComReference:
    """Hand one value to its backend; the reference that replaces it."""
    backend = choose_backend(scope, kind)
    if backend == "cluster":
        from updraft.xcom_backends import cluster

        return cluster.put(scope, value, kind, key, path)
    from updraft.xcom_backends import object_storage

    return object_storage.put(scope, value, kind, key, path)


def fetch_value(ref: XComReference) -> Any:
    """The value a reference stands for (in a try: from the cluster or object storage)."""
    if ref.backend == "cluster":
        from updraft.xcom_backends import cluster

        return cluster.get(ref)
    if ref.backend == "object_storage":
        from updraft.xcom_backends import object_storage

        return object_storage.get(ref)
    raise ValueError(f"unknown XCom backend {ref.backend!r} in a stored reference")


def resolve_references(value: Any) -> Any:
    """``value`` with every reference in it replaced by what it stands for."""
    if isinstance(value, XComReference):
        return fetch_value(value)
    if isinstance(value, dict):
        return {k: resolve_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_references(v) for v in value)
    return value


def has_reference(value: Any) -> bool:
    if isinstance(value, XComReference):
        return True
    if isinstance(value, dict):
        return any(has_reference(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_reference(v) for v in value)
    return False


def references_in(value: Any) -> list[XComReference]:
    """Every reference inside a decoded XCom value."""
    if isinstance(value, XComReference):
        return [value]
    found: list[XComReference] = []
    if isinstance(value, dict):
        for item in value.values():
            found.extend(references_in(item))
    elif isinstance(value, (list, tuple)):
        for item in value:
            found.extend(references_in(item))
    return found


__all__ = ["REF_TAG", "TryScope", "XComReference", "current_scope", "fetch_value",
           "has_reference", "is_dask_kind", "references_in", "resolve_references",
           "store_value", "try_scope", "value_kind"]
