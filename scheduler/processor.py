"""The DAG processor: keeps the store's serialized DAGs in step with the DAGs folder.

A thread lists the folder every ``[scheduler] dag_dir_list_interval`` seconds and sends each
new or changed file (and every file at least every ``min_file_process_interval``) to a pool
of ``parsing_processes`` child processes that import it and store its DAGs or its import
error. A slow or broken file costs one child at most; the scheduler loop never waits on it.
DAGs whose file is gone, or which a file no longer defines, are marked inactive.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from updraft.config import conf

log = logging.getLogger("updraft.processor")


class DagFileProcessor:
    """Parses DAG files in child processes and records the results."""

    def __init__(self, dags_folder: str | None = None, store_url: str | None = None,
                 on_change: Callable[[], None] | None = None, node_id: str | None = None,
                 processes: int | None = None, include_examples: bool | None = None) -> None:
        self.dags_folder = Path(dags_folder or conf.dags_folder())
        self.store_url = store_url
        self.on_change = on_change
        self.node_id = node_id
        self.processes = processes or conf.getint("scheduler", "parsing_processes")
        self.list_interval = conf.getfloat("scheduler", "dag_dir_list_interval")
        self.reparse_interval = conf.getfloat("scheduler", "min_file_process_interval")
        self.timeout = conf.getfloat("core", "dagbag_import_timeout")
        self.include_examples = conf.getboolean("core", "load_examples") \
            if include_examples is None else include_examples
        self._seen: dict[str, tuple[float, float]] = {}  # path -> (mtime, parsed at)
        self._alive: dict[str, list[str] | None] = {}
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self.stats: dict[str, float] = {}
        self.parse_durations: dict[str, float] = {}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="updraft-dag-processor",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def refresh(self) -> None:
        """Scan the folder now instead of at the next interval."""
        self._kick.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.process_once()
            except Exception:  # noqa: BLE001  (the processor keeps going whatever happens)
                log.exception("DAG processing pass failed")
            self._kick.wait(self.list_interval)
            self._kick.clear()

    def _get_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.processes, mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=200)
        return self._pool

    def folders(self) -> list[Path]:
        from updraft.dagbag import example_dags_folder

        folders = [self.dags_folder]
        if self.include_examples:
            folders.append(example_dags_folder())
        return folders

    def list_files(self) -> list[str]:
        from updraft.dagbag import list_py_files

        safe_mode = conf.getboolean("core", "dag_discovery_safe_mode")
        files: list[str] = []
        for folder in self.folders():
            if folder.exists():
                files.extend(str(p) for p in list_py_files(folder, safe_mode))
        return files

    def process_once(self) -> dict:
        """One scan: parse what changed, wait for it, mark the gone DAGs inactive."""
        from scheduler.parse_worker import parse_and_store

        started = time.monotonic()
        files = self.list_files()
        now = time.time()
        todo = []
        for path in files:
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            seen = self._seen.get(path)
            if seen is None or seen[0] != mtime or now - seen[1] >= self.reparse_interval:
                todo.append((path, mtime))
        changed_any = False
        if todo:
            pool = self._get_pool()
            futures = {pool.submit(parse_and_store, path, self.store_url, self.node_id):
                       (path, mtime) for path, mtime in todo}
            deadline = time.monotonic() + self.timeout * (1 + len(todo) / self.processes) + 30
            try:
                for future in concurrent.futures.as_completed(
                        futures, timeout=max(deadline - time.monotonic(), 1)):
                    path, mtime = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # noqa: BLE001  (a dead child is one file's problem)
                        log.error("Parsing %s failed in its process: %s", path, exc)
                        self._record_crash(path, exc)
                        self._alive[path] = None
                        self._seen[path] = (mtime, now)
                        continue
                    self._seen[path] = (mtime, now)
                    self._alive[path] = result["dag_ids"]
                    self.parse_durations[path] = result["duration"]
                    if result["changed"] or result["error"]:
                        changed_any = True
            except concurrent.futures.TimeoutError:
                log.error("DAG parsing pass timed out; restarting the parsing processes")
                for future, (path, _mtime) in futures.items():
                    if not future.done():
                        # Unknown, not gone: keep the DAGs of files that could not be parsed.
                        self._alive.setdefault(path, None)
                        self._record_crash(path, TimeoutError("parsing took too long"))
                self._pool.shutdown(wait=False, cancel_futures=True)
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.kill()
                self._pool = None
        gone_files = set(self._alive) - set(files)
        for path in gone_files:
            self._alive.pop(path, None)
            self._seen.pop(path, None)
        changed_any |= self._mark_inactive(gone_files)
        self.stats = {"files": len(files), "parsed": len(todo),
                      "seconds": time.monotonic() - started}
        if changed_any and self.on_change is not None:
            self.on_change()
        return self.stats

    def _record_crash(self, path: str, exc: BaseException) -> None:
        from updraft.store.dags import set_import_error
        from updraft.store.engine import session_scope
        from updraft.store.models import utcnow

        with session_scope(self.store_url) as session:
            set_import_error(session, path, f"The process parsing this file died: {exc!r}",
                             utcnow())

    def _mark_inactive(self, gone_files: set[str]) -> bool:
        from updraft.store.dags import clear_import_error, mark_inactive
        from updraft.store.engine import session_scope
        from updraft.store.models import utcnow

        with session_scope(self.store_url) as session:
            for path in gone_files:
                clear_import_error(session, path)
            gone = mark_inactive(session, dict(self._alive), utcnow())
        if gone:
            log.info("Marked inactive (file gone or DAG removed): %s", ", ".join(gone))
        return bool(gone)
