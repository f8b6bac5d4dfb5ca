"""DagBag: load every DAG of a folder, one file at a time, collecting import errors.

A broken file never stops the others: its traceback lands in ``import_errors[path]``. Files
listed in ``.updraftignore`` (regular expressions, one per line, relative to the folder that
holds the ignore file; ``.airflowignore`` too) are skipped, and in safe mode so are files that
do not mention both "dag" and "updraft" (or "airflow", when Airflow compatibility is on).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

from updraft.dag import DAG, DagContext
from updraft.exceptions import UpdraftException

IGNORE_FILES = (".updraftignore", ".airflowignore")


class DagImportTimeout(UpdraftException):
    """A DAG file took longer than ``[core] dagbag_import_timeout`` to import."""


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes: the version of a DAG file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def might_contain_dag(path: Path, safe_mode: bool) -> bool:
    """Airflow's safe-mode heuristic: the file mentions both "dag" and the framework."""
    if not safe_mode:
        return True
    try:
        content = path.read_bytes().lower()
    except OSError:
        return False
    if b"dag" not in content:
        return False
    from updraft.config import conf

    markers = [b"updraft"]
    if conf.getboolean("core", "airflow_compat"):
        markers.append(b"airflow")
    return any(m in content for m in markers)


def list_py_files(folder: Path, safe_mode: bool = True) -> Iterator[Path]:
    """Python files under ``folder`` that may hold DAGs, honouring ignore files."""
    if folder.is_file():
        yield folder
        return
    patterns: list[tuple[Path, re.Pattern]] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        root_path = Path(root)
        for name in IGNORE_FILES:
            ignore = root_path / name
            if ignore.is_file():
                for line in ignore.read_text().splitlines():
                    line = line.split("#", 1)[0].strip()
                    if line:
                        patterns.append((root_path, re.compile(line)))

        def ignored(path: Path) -> bool:
            for base, pattern in patterns:
                try:
                    rel = path.relative_to(base)
                except ValueError:
                    continue
                if pattern.search(str(rel)):
                    return True
            return False

        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__"))
                         and not ignored(root_path / d))
        for name in sorted(files):
            path = root_path / name
            if name.endswith(".py") and not ignored(path) and might_contain_dag(path, safe_mode):
                yield path


class _Timeout:
    def __init__(self, seconds: float, path: Path):
        self.seconds = seconds
        self.path = path
        self.armed = False

    def __enter__(self):
        if self.seconds > 0 and threading.current_thread() is threading.main_thread():
            def _raise(_signum, _frame):
                raise DagImportTimeout(f"DagBag import timeout for {self.path} after "
                                       f"{self.seconds:g}s; raise [core] dagbag_import_timeout "
                                       "or make the file faster to import")

            self.previous = signal.signal(signal.SIGALRM, _raise)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            self.armed = True
        return self

    def __exit__(self, *exc):
        if self.armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


def _enter_bundle(path: Path) -> str | None:
    """For a DAG file of a cached DAG bundle version (ADR 12), its version's root folder;
    modules imported from another version's root or from the DAGs folder are dropped from
    ``sys.modules`` first, so ``import helpers`` in this version's DAG file gets this
    version's helpers (DAGs already parsed keep the module objects they hold)."""
    from updraft.bundles.refs import cache_folder
    from updraft.config import conf

    cache = str(cache_folder()) + os.sep
    text = str(path)
    if not text.startswith(cache):
        return None
    root = cache + text[len(cache):].split(os.sep, 1)[0]
    inside = root + os.sep
    dags = str(conf.dags_folder()) + os.sep
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if where and (where.startswith(cache) and not where.startswith(inside) or
                      where.startswith(dags)):
            del sys.modules[name]
    for entry in [p for p in sys.path if p.startswith(cache) and not
                  (p + os.sep).startswith(inside)]:
        sys.path.remove(entry)
    return root


class DagBag:
    """The DAGs of a folder (or one file), with the import errors of the files that failed."""

    def __init__(self, dag_folder: str | os.PathLike | None = None,
                 include_examples: bool | None = None, safe_mode: bool | None = None,
                 read_dags_from_db: bool = False, collect_dags: bool = True,
                 load_op_links: bool = True) -> None:
        from updraft.compat import install_if_enabled
        from updraft.config import conf

        install_if_enabled()  # Airflow DAG files import `airflow`: serve it from Updraft
        self.dag_folder = Path(dag_folder or conf.dags_folder()).expanduser()
        self.safe_mode = conf.getboolean("core", "dag_discovery_safe_mode") \
            if safe_mode is None else safe_mode
        self.import_timeout = conf.getfloat("core", "dagbag_import_timeout")
        self.dags: dict[str, DAG] = {}
        self.import_errors: dict[str, str] = {}
        self.file_last_changed: dict[str, float] = {}
        self.file_hashes: dict[str, str] = {}
        self.dag_files: dict[str, str] = {}
        self.parse_durations: dict[str, float] = {}
        if include_examples is None:
            include_examples = conf.getboolean("core", "load_examples")
        if collect_dags:
            self.collect_dags(self.dag_folder)
            if include_examples:
                self.collect_dags(example_dags_folder())

    def __len__(self) -> int:
        return len(self.dags)

    @property
    def dag_ids(self) -> list[str]:
        return list(self.dags)

    def size(self) -> int:
        return len(self.dags)

    def get_dag(self, dag_id: str) -> DAG | None:
        """The DAG with this id, or None."""
        return self.dags.get(dag_id)

    def collect_dags(self, folder: str | os.PathLike) -> None:
        """Load every DAG file under ``folder``."""
        folder = Path(folder)
        if not folder.exists():
            return
        for path in list_py_files(folder, self.safe_mode):
            self.process_file(path)

    def process_file(self, path: str | os.PathLike) -> list[DAG]:
        """Import one file and add its DAGs; on error, record the traceback and go on."""
        path = Path(path)
        key = str(path)
        started = time.monotonic()
        self.import_errors.pop(key, None)
        try:
            self.file_last_changed[key] = path.stat().st_mtime
            self.file_hashes[key] = file_hash(path)
        except OSError as exc:
            self.import_errors[key] = f"cannot read {path}: {exc}"
            return []
        found: list[DAG] = []
        try:
            module = self._import(path)
            found = self._dags_of(module)
            for dag in found:
                dag.fileloc = key
                dag.validate()
        except BaseException as exc:  # noqa: BLE001  (every kind of broken file is recorded)
            if isinstance(exc, KeyboardInterrupt):
                raise
            self.import_errors[key] = _format_error(exc, path)
            for dag_id in [d for d, f in self.dag_files.items() if f == key]:
                self.dags.pop(dag_id, None)
                self.dag_files.pop(dag_id, None)
            return []
        finally:
            self.parse_durations[key] = time.monotonic() - started
        # As in Airflow: a DAG id that an earlier file defines stays with that file; this
        # file gets the import error and keeps its other DAGs.
        taken = sorted(dag.dag_id for dag in found if self.dag_files.get(dag.dag_id, key) != key)
        if taken:
            self.import_errors[key] = "\n".join(
                duplicate_dag_id_message(dag_id, self.dag_files[dag_id]) for dag_id in taken)
            found = [dag for dag in found if dag.dag_id not in taken]
        for dag in found:
            self.dags[dag.dag_id] = dag
            self.dag_files[dag.dag_id] = key
        return found

    def _import(self, path: Path):
        module_name = "unusual_prefix_" + hashlib.sha1(str(path).encode()).hexdigest() + \
            "_" + re.sub(r"\W", "_", path.stem)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise UpdraftException(f"cannot import {path}: not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        folder = str(path.parent)
        bundle_root = _enter_bundle(path)
        if bundle_root is not None and bundle_root != folder and bundle_root not in sys.path:
            sys.path.insert(0, bundle_root)  # modules the DAG imports from its bundle
        added = folder not in sys.path
        if added:
            sys.path.insert(0, folder)
        previous_created = DagContext._created
        DagContext._created = []
        try:
            with _Timeout(self.import_timeout, path):
                spec.loader.exec_module(module)
            module.__updraft_created__ = list(DagContext._created)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        finally:
            DagContext._created = previous_created
            DagContext._stack.clear()
            if added:
                try:
                    sys.path.remove(folder)
                except ValueError:
                    pass
        return module

    @staticmethod
    def _dags_of(module) -> list[DAG]:
        found: list[DAG] = []
        for value in list(vars(module).values()):
            if isinstance(value, DAG) and value not in found:
                found.append(value)
        for dag in getattr(module, "__updraft_created__", []):
            if dag.auto_register and not any(d is dag for d in found):
                found.append(dag)
        unique: dict[str, DAG] = {}
        for dag in found:
            if dag.dag_id in unique and unique[dag.dag_id] is not dag:
                raise UpdraftException(f"DAG id {dag.dag_id!r} is defined more than once in "
                                       f"{module.__file__}")
            unique[dag.dag_id] = dag
        return list(unique.values())


def duplicate_dag_id_message(dag_id: str, holder: str) -> str:
    """The import error of a file that defines a DAG id another file already holds."""
    return f"DAG id {dag_id!r} is already defined in {holder}"


def _format_error(exc: BaseException, path: Path) -> str:
    """The traceback of an import error, limited to the frames of the DAG file's code."""
    frames = traceback.extract_tb(exc.__traceback__)
    user = [f for f in frames if not f.filename.startswith(str(Path(__file__).parent.parent))
            and "importlib" not in f.filename]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(user or frames[-3:])
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def example_dags_folder() -> Path:
    """The example DAGs shipped with Updraft (the repository's dags/ folder, when present)."""
    from updraft.config import conf

    configured = os.environ.get("UPDRAFT_EXAMPLE_DAGS")
    if configured:
        return Path(configured)
    del conf
    return Path(__file__).resolve().parent.parent / "dags"
