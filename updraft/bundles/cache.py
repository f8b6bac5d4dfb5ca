"""A worker's copy of DAG bundle versions: fetched from the store by hash, verified, kept.

A try request of a pinned run names its code as ``bundle://<version>/<path in the
bundle>`` (``bundle_fileloc``). Before the try runs, the worker turns that into a path on
its own disk (``local_fileloc`` / ``localize_request``): the first time a process sees a
version it looks in the cache folder (``[core] bundle_cache_folder``, default
``$UPDRAFT_HOME/bundle_cache``) and, if the version is not there, reads it from the store,
checks every file and the version's hash, and moves it into place atomically (a rename:
processes that race keep one copy). After that a version costs one dictionary lookup per
try: a warm cache costs nothing measurable. A folder in the cache is never changed, so a
parsed DAG of a version stays valid for as long as a process lives.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from updraft.bundles.refs import SCHEME, bundle_fileloc, cache_folder, split_fileloc

log = logging.getLogger(__name__)

_local_roots: dict[str, str] = {}
_fetch_lock = threading.Lock()


def local_root(version: str, store_url: str | None = None) -> str:
    """This machine's folder holding bundle ``version``, fetched and verified if needed."""
    root = _local_roots.get(version)
    if root is not None:
        return root
    with _fetch_lock:
        root = _local_roots.get(version)
        if root is None:
            root = _local_roots[version] = str(_ensure_cached(version, store_url))
    return root


def local_fileloc(fileloc: str, store_url: str | None = None) -> str:
    """A path on this machine for ``fileloc``: itself, or the cached file of a bundle."""
    if not fileloc.startswith(SCHEME):
        return fileloc
    version, relative = split_fileloc(fileloc)  # type: ignore[misc]
    return os.path.join(local_root(version, store_url), relative)


def local_dag_refs(dags: list[tuple[str, str]],
                   store_url: str | None = None) -> list[tuple[str, str]]:
    """``(fileloc, dag_id)`` pairs with each fileloc on this machine, for parsing ahead; a
    version that cannot be fetched now is left out (the try that needs it fetches it and
    reports)."""
    found = []
    for fileloc, dag_id in dags:
        try:
            found.append((local_fileloc(fileloc, store_url), dag_id))
        except Exception:  # noqa: BLE001
            log.debug("could not fetch %s ahead of time", fileloc, exc_info=True)
    return found


def localize_request(request: Any, store_url: str | None = None) -> Any:
    """The try request with its ``fileloc`` on this machine (unchanged for a plain path)."""
    if not request.fileloc.startswith(SCHEME):
        return request
    return dataclasses.replace(request, fileloc=local_fileloc(
        request.fileloc, store_url or request.store_url))


def _ensure_cached(version: str, store_url: str | None) -> Path:
    from updraft.bundles.version import extract_verified

    if not version or any(c not in "0123456789abcdef" for c in version):
        raise ValueError(f"not a bundle version: {version!r}")
    folder = cache_folder()
    target = folder / version
    if (target / ".complete").exists():
        return target
    fetched = _fetch(version, store_url)
    if fetched is None:
        from updraft.exceptions import DagNotFound

        raise DagNotFound(f"DAG bundle {version} is not in the store")
    manifest, archive = fetched
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version[:12]}-", dir=folder))
    try:
        extract_verified(archive, manifest, version, staging)
        (staging / ".complete").write_text(version)
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / ".complete").exists():
                raise  # another process did not finish it either: say why
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("DAG bundle %s fetched from the store (%d files, %d bytes)", version[:12],
             len(manifest), len(archive))
    return target


def _fetch(version: str, store_url: str | None):
    from updraft.store.bundles import read_bundle
    from updraft.store.engine import session_scope

    with session_scope(store_url) as session:
        return read_bundle(session, version)


def forget_local_roots() -> None:
    """Forget which versions this process has (tests that empty the cache folder)."""
    _local_roots.clear()


__all__ = ["SCHEME", "bundle_fileloc", "cache_folder", "forget_local_roots", "local_fileloc",
           "local_root", "localize_request", "split_fileloc"]
