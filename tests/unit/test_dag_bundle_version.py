"""DAG bundle versions (ADR 12): content-addressed, stable, and verified when extracted."""

from __future__ import annotations

import pytest

from updraft.bundles.refs import bundle_fileloc, split_fileloc
from updraft.bundles.version import (
    BundleMismatch,
    FolderHasher,
    build_archive,
    extract_verified,
    version_of,
)


def make_folder(tmp_path):
    folder = tmp_path / "dags"
    (folder / "lib").mkdir(parents=True)
    (folder / "my_dag.py").write_text("import lib.helpers\n")
    (folder / "lib" / "__init__.py").write_text("")
    (folder / "lib" / "helpers.py").write_text("VALUE = 1\n")
    (folder / "query.sql").write_text("select 1\n")
    (folder / ".hidden").write_text("x")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "my_dag.cpython-311.pyc").write_bytes(b"\0")
    return folder


def test_the_version_names_the_content(tmp_path):
    folder = make_folder(tmp_path)
    hasher = FolderHasher(folder)
    manifest = hasher.manifest()
    assert sorted(manifest) == ["lib/__init__.py", "lib/helpers.py", "my_dag.py", "query.sql"]
    first = version_of(manifest)
    assert version_of(hasher.manifest()) == first  # nothing changed: same version
    (folder / "lib" / "helpers.py").write_text("VALUE = 2\n")  # an imported module changed
    second = version_of(hasher.manifest())
    assert second != first
    (folder / "lib" / "helpers.py").write_text("VALUE = 1\n")
    assert version_of(hasher.manifest()) == first  # back to the same content


def test_an_archive_extracts_verified(tmp_path):
    folder = make_folder(tmp_path)
    manifest = FolderHasher(folder).manifest()
    version = version_of(manifest)
    archive = build_archive(folder, manifest)
    target = tmp_path / "out"
    extract_verified(archive, manifest, version, target)
    assert (target / "lib" / "helpers.py").read_text() == "VALUE = 1\n"
    assert not (target / ".hidden").exists()


def test_tampering_is_refused(tmp_path):
    folder = make_folder(tmp_path)
    manifest = FolderHasher(folder).manifest()
    version = version_of(manifest)
    archive = build_archive(folder, manifest)
    with pytest.raises(BundleMismatch, match="another hash"):
        extract_verified(archive, {**manifest, "my_dag.py": "0" * 64}, version, tmp_path / "a")
    (folder / "my_dag.py").write_text("import os\n")
    other = build_archive(folder, FolderHasher(folder).manifest())
    with pytest.raises(BundleMismatch, match="my_dag.py does not match its hash"):
        extract_verified(other, manifest, version, tmp_path / "b")


def test_bundle_references_round_trip():
    ref = bundle_fileloc("ab" * 32, "sub/dir/my dag.py")
    assert split_fileloc(ref) == ("ab" * 32, "sub/dir/my dag.py")
    assert split_fileloc("/opt/dags/x.py") is None
