"""Names of DAG bundle code, with no store access (the DAG bag imports this module).

A try request of a pinned run names its code as ``bundle://<version>/<path in the
bundle>``; a worker keeps the versions it fetched under ``[core] bundle_cache_folder``
(default ``$UPDRAFT_HOME/bundle_cache``), one folder per version.
"""

from __future__ import annotations

from pathlib import Path

SCHEME = "bundle://"


def bundle_fileloc(version: str, relative: str) -> str:
    """The reference to file ``relative`` of bundle ``version`` that a try request carries."""
    return f"{SCHEME}{version}/{relative}"


def split_fileloc(fileloc: str) -> tuple[str, str] | None:
    """``(version, relative path)`` of a bundle reference; None for a plain path."""
    if not fileloc.startswith(SCHEME):
        return None
    version, _, relative = fileloc[len(SCHEME):].partition("/")
    return version, relative


def cache_folder() -> Path:
    """Where this machine keeps the bundle versions it fetched."""
    from updraft.config import conf, updraft_home

    configured = conf.get("core", "bundle_cache_folder")
    return Path(configured or updraft_home() / "bundle_cache").expanduser()


__all__ = ["SCHEME", "bundle_fileloc", "cache_folder", "split_fileloc"]
