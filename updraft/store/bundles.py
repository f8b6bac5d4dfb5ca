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


def bundle_info(session: Session, version: str) -> dict | None:
    """A version's creation time, size and files ``{path: sha256}`` (not the archive)."""
    row = session.execute(select(DagBundle.version, DagBundle.created_at,
                                 DagBundle.size_bytes, DagBundle.manifest).where(
        DagBundle.version == version)).first()
    if row is None:
        return None
    return {"version": row.version, "created_at": row.created_at,
            "size_bytes": row.size_bytes, "files": dict(row.manifest["files"])}


def read_bundle_file(session: Session, version: str, path: str) -> bytes | None:
    """One file of a version, as stored; None if the version or the file is unknown."""
    import io
    import zipfile

    fetched = read_bundle(session, version)
    if fetched is None or path not in fetched[0]:
        return None
    with zipfile.ZipFile(io.BytesIO(fetched[1])) as archive:
        return archive.read(path)


__all__ = ["bundle_info", "bundle_manifest", "read_bundle_file", "latest_bundle_version", "read_bundle", "record_bundle",
           "touch_bundle"]
