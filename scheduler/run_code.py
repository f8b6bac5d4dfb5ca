"""Which code a run's tries execute (ADR 12): the fileloc their requests carry.

With ``[core] run_version_policy = pinned`` (the default) a try of a run executes the DAG
bundle version the run was created with; with ``latest``, the newest version recorded. Either
way the request names the file inside that version (``bundle://<version>/<path>``), so a
worker with no DAGs folder fetches it by hash. A run created before any version was
recorded (an older store, a DAG outside the DAGs folder such as the examples) keeps the
DAG's file path as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from updraft.bundles.refs import bundle_fileloc
from updraft.store.bundles import latest_bundle_version
from updraft.store.models import DagRunModel


def newest_code(session: Session, dags: list[tuple[str, str]],
                dags_folder: str | None) -> list[tuple[str, str]]:
    """``(fileloc, dag_id)`` pairs with each fileloc in the DAGs folder named as the newest
    bundle version's file (what a run created now executes); others unchanged."""
    version = latest_bundle_version(session)
    if not version or not dags_folder:
        return list(dags)
    root = os.path.realpath(dags_folder) + os.sep
    return [(_in_bundle(version, root, fileloc), dag_id) for fileloc, dag_id in dags]


def _in_bundle(version: str, root: str, fileloc: str) -> str:
    """``fileloc`` as the file of bundle ``version`` if it lies in the DAGs folder ``root``
    (an example DAG does not: it stays as it is)."""
    real = os.path.realpath(fileloc)
    if not real.startswith(root):
        return fileloc
    return bundle_fileloc(version, real[len(root):].replace(os.sep, "/"))


_PINNED: dict[tuple[str, str, str], str] = {}  # (store, dag_id, run_id) -> version
_PINNED_MAX = 20000


class RunCode:
    """Maps (run, DAG file) to the fileloc of the run's code, for one dispatch pass."""

    def __init__(self, session: Session, runs: Iterable[tuple[str, str]], dags_folder: str,
                 policy: str | None = None) -> None:
        from updraft.config import conf

        policy = (policy or conf.get("core", "run_version_policy")).strip().lower()
        if policy not in ("pinned", "latest"):
            from updraft.config import ConfigError

            raise ConfigError(f"[core] run_version_policy: expected pinned or latest, got "
                              f"{policy!r}")
        self.root = os.path.realpath(dags_folder) + os.sep
        self.versions: dict[tuple[str, str], str | None] = {}
        keys = sorted(set(runs))
        if policy == "latest":
            latest = latest_bundle_version(session)
            self.versions = dict.fromkeys(keys, latest)
        elif keys:
            # A run's version is written when the run is created and never changes: each
            # run's is read once per scheduler, not at every dispatch.
            store = str(session.get_bind().url)
            self.versions = {key: _PINNED[(store, *key)] for key in keys
                             if (store, *key) in _PINNED}
            missing = [key for key in keys if key not in self.versions]
            if missing:
                dag_ids = sorted({dag_id for dag_id, _ in missing})
                rows = session.execute(select(
                    DagRunModel.dag_id, DagRunModel.run_id, DagRunModel.bundle_version).where(
                    DagRunModel.dag_id.in_(dag_ids),
                    DagRunModel.run_id.in_(sorted({run_id for _, run_id in missing})))).all()
                if len(_PINNED) > _PINNED_MAX:
                    _PINNED.clear()
                for row in rows:
                    self.versions[(row.dag_id, row.run_id)] = row.bundle_version
                    if row.bundle_version:
                        _PINNED[(store, row.dag_id, row.run_id)] = row.bundle_version

    def fileloc(self, dag_id: str, run_id: str, fileloc: str) -> str:
        version = self.versions.get((dag_id, run_id))
        if not version or not fileloc:
            return fileloc
        return _in_bundle(version, self.root, fileloc)


__all__ = ["RunCode"]
