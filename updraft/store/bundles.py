"""The ``dag_bundle`` table: record a version of the DAGs folder once, read it back.

The DAG processor records a version when the folder's content changes (``record_bundle``);
a new run is pinned to the newest version (``latest_bundle_version``); a worker with no
DAGs folder reads a version's manifest and archive by hash (``read_bundle``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from updraft.store.models import DagBundle, utcnow

_LATEST = select(DagBundle.version).order_by(DagBundle.created_at.desc(),
                                             DagBundle.version).limit(1)


def record_bundle(session: Session, version: str, manifest: dict[str, str], archive: bytes,
                  now: datetime | None = None) -> bool:
    """Insert the version unless it is there (several schedulers may race); True if this
    call inserted it. Commits (an insert lost to another node is not an error)."""
    if session.get(DagBundle, version) is not None:
        return False
    session.add(DagBundle(version=version, manifest={"files": manifest}, archive=archive,
                          size_bytes=len(archive), created_at=now or utcnow()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True


def touch_bundle(session: Session, version: str, now: datetime | None = None) -> None:
    """Make an existing version the newest again (the folder went back to it)."""
    row = session.get(DagBundle, version)
    if row is not None:
        row.created_at = now or utcnow()


def latest_bundle_version(session: Session) -> str | None:
    """The version new runs are pinned to: the newest recorded; None if none is."""
    return session.scalar(_LATEST)


def read_bundle(session: Session, version: str) -> tuple[dict[str, str], bytes] | None:
    """A version's manifest ``{path: sha256}`` and archive; None if unknown."""
    row = session.execute(select(DagBundle.manifest, DagBundle.archive).where(
        DagBundle.version == version)).first()
    if row is None:
        return None
    return dict(row.manifest["files"]), bytes(row.archive)


def bundle_manifest(session: Session, version: str) -> dict[str, str] | None:
    """A version's manifest only (the web lists its files without loading the archive)."""
    manifest = session.scalar(select(DagBundle.manifest).where(DagBundle.version == version))
    return dict(manifest["files"]) if manifest is not None else None


__all__ = ["bundle_manifest", "latest_bundle_version", "read_bundle", "record_bundle",
           "touch_bundle"]
