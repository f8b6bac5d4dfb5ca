"""The content-addressed version of a DAGs folder, and its archive.

A bundle is every regular file under the folder (DAG files, the modules they import from
it, SQL and template files they read), less hidden files and ``__pycache__``. Its manifest
maps each relative path (``/``-separated) to the SHA-256 of the file's bytes; its version is
the SHA-256 of the manifest as canonical JSON. The archive is a zip of those files; whoever
extracts one checks every file against the manifest and the manifest against the version,
so a worker runs exactly the code the version names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path


class BundleMismatch(ValueError):
    """An archive or manifest that does not match the version it was fetched for."""


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


def bundle_files(folder: Path) -> list[str]:
    """The relative paths a bundle of ``folder`` holds, sorted."""
    found: list[str] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        for name in files:
            if _skipped(name) or name.endswith((".pyc", ".pyo")):
                continue
            path = Path(root) / name
            if path.is_file():
                found.append(path.relative_to(folder).as_posix())
    return sorted(found)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def version_of(manifest: dict[str, str]) -> str:
    """The version (SHA-256 hex) of a manifest ``{relative path: sha256}``."""
    text = json.dumps(dict(sorted(manifest.items())), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class FolderHasher:
    """Computes the manifest of a folder again and again, hashing only files whose size or
    modification time changed since the last time (the DAG processor calls it each scan)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._known: dict[str, tuple[int, int, str]] = {}

    def manifest(self) -> dict[str, str]:
        manifest: dict[str, str] = {}
        known: dict[str, tuple[int, int, str]] = {}
        for relative in bundle_files(self.folder):
            path = self.folder / relative
            try:
                stat = path.stat()
                seen = self._known.get(relative)
                if seen and seen[0] == stat.st_mtime_ns and seen[1] == stat.st_size:
                    digest = seen[2]
                else:
                    digest = file_sha256(path)
            except OSError:
                continue  # removed while listing
            known[relative] = (stat.st_mtime_ns, stat.st_size, digest)
            manifest[relative] = digest
        self._known = known
        return manifest


def build_archive(folder: Path, manifest: dict[str, str]) -> bytes:
    """A zip of the manifest's files; raises BundleMismatch if one changed meanwhile (the
    caller tries again at its next scan)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative, digest in sorted(manifest.items()):
            data = (Path(folder) / relative).read_bytes()
            if hashlib.sha256(data).hexdigest() != digest:
                raise BundleMismatch(f"{relative} changed while the bundle was built")
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def extract_verified(archive: bytes, manifest: dict[str, str], version: str,
                     target: Path) -> None:
    """Write the archive's files under ``target``, each checked against the manifest and the
    manifest against ``version``; raises BundleMismatch on any difference."""
    if version_of(manifest) != version:
        raise BundleMismatch(f"the manifest stored for bundle {version} has another hash")
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = set(zipped.namelist())
        if names != set(manifest):
            raise BundleMismatch(f"bundle {version}: the archive's files are not the "
                                 "manifest's")
        for relative, digest in manifest.items():
            if relative.startswith("/") or ".." in Path(relative).parts:
                raise BundleMismatch(f"bundle {version}: unsafe path {relative!r}")
            data = zipped.read(relative)
            if hashlib.sha256(data).hexdigest() != digest:
                raise BundleMismatch(f"bundle {version}: {relative} does not match its hash")
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


__all__ = ["BundleMismatch", "FolderHasher", "build_archive", "bundle_files",
           "extract_verified", "file_sha256", "version_of"]
