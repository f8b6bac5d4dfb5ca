"""Making a plugin package visible to a test without installing it.

The sample package (``tests/sample_plugin``) is a real package with its own
``pyproject.toml``. Rather than ``pip install -e`` it into the shared venv for the session
(seconds of pip, and every other process using the venv meanwhile, other engineers' test
runs included, would load its listener and executor), :func:`plugin_on_path` writes the
``.dist-info`` that pip would write (``METADATA`` and ``entry_points.txt``, from the
package's own pyproject tables) into a temporary folder, and puts that folder and the
package's ``src`` on ``sys.path`` and ``PYTHONPATH``: ``importlib.metadata`` then finds its
entry points in this process and in every process it starts (parsing processes, zygotes,
spawned workers), and nowhere else. Leaving the block takes both away and resets the registry.
"""

from __future__ import annotations

import importlib
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SAMPLE_PLUGIN = TESTS / "sample_plugin"


def write_dist_info(site: Path, name: str, version: str,
                    entry_points: dict[str, dict[str, str]]) -> Path:
    """Write ``<name>-<version>.dist-info`` with these entry points into ``site``."""
    normalized = name.replace("-", "_")
    dist_info = site / f"{normalized}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\n"
                                        f"Version: {version}\n")
    lines = []
    for group, entries in entry_points.items():
        lines.append(f"[{group}]")
        lines.extend(f"{key} = {value}" for key, value in entries.items())
        lines.append("")
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    return dist_info


def dist_info_from_pyproject(site: Path, package: Path) -> Path:
    """The dist-info pip would write for ``package`` (its pyproject's name, version and
    entry-point tables)."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    return write_dist_info(site, project["name"], project["version"],
                           project.get("entry-points", {}))


@contextmanager
def plugin_on_path(site: Path, *paths: Path) -> Iterator[None]:
    """Put ``site`` (with dist-infos) and ``paths`` (package sources) on sys.path and
    PYTHONPATH for the block; the registry reads entry points afresh inside and after."""
    from updraft.plugins import registry

    added = [str(p) for p in (site, *paths)]
    old_pythonpath = os.environ.get("PYTHONPATH")
    sys.path[:0] = added
    os.environ["PYTHONPATH"] = os.pathsep.join(added + ([old_pythonpath] if old_pythonpath
                                                        else []))
    importlib.invalidate_caches()
    registry.reset()
    try:
        yield
    finally:
        for entry in added:
            while entry in sys.path:
                sys.path.remove(entry)
        if old_pythonpath is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old_pythonpath
        importlib.invalidate_caches()
        registry.reset()


@contextmanager
def sample_plugin(tmp_path: Path) -> Iterator[Path]:
    """The sample plugin package visible for the block; yields its dist-info folder."""
    site = tmp_path / "site-packages"
    dist_info = dist_info_from_pyproject(site, SAMPLE_PLUGIN)
    with plugin_on_path(site, SAMPLE_PLUGIN / "src"):
        yield dist_info
