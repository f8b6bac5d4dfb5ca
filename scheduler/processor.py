"""The DAG processor: keeps the store's serialized DAGs in step with the DAGs folder.

One thread lists the folder every ``[scheduler] dag_dir_list_interval`` seconds (or at once
after ``refresh()``) and queues each new or changed file, and every file at least every
``min_file_process_interval``, for a ``ParsingPool`` of ``parsing_processes`` warm child
processes (``scheduler/parsing_pool.py``). Each child imports one file at a time and stores
its DAGs or its import error; the thread never waits for a whole batch, so a file that
hangs holds one child until ``[core] dagbag_import_timeout`` and nothing else. A child that
dies is blamed on the one file it was importing (that file gets an import error saying how
the process ended, written from here) and replaced at once.

DAGs whose file is gone, or which a file no longer defines, are marked inactive; a file
whose DAG id another file holds gets an import error, and is parsed again when that file
changes or goes, since the id may then be free.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
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
        self.memory_limit_mb = conf.getint("scheduler", "parsing_memory_limit_mb")
        self.include_examples = conf.getboolean("core", "load_examples") \
            if include_examples is None else include_examples
        self._listed: set[str] = set()
        self._seen: dict[str, tuple[float, float]] = {}  # path -> (mtime, parsed at)
        self._alive: dict[str, list[str] | None] = {}
        self._submitted: dict[str, float] = {}  # path -> mtime, while in the pool
        self._blocked: dict[str, set[str]] = {}  # path -> files holding its DAG ids
        self._frees = 0  # how many times marking DAGs inactive freed DAG ids
        self._frees_at_submit: dict[str, int] = {}  # path -> _frees when it was submitted
        self._gone: set[str] = set()
        self._inactive_due = False
        self._synced_at = 0.0
        self._first_round: set[str] | None = None
        self._hasher = None
        #: The DAGs folder's bundle version last recorded in the store (ADR 12).
        self.bundle_version: str | None = None
        self._started = time.monotonic()
        self._parsed = 0
        self._pool = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self.stats: dict[str, float] = {}
        """Empty until every file of the first listing has an outcome; then counters."""
        from updraft.store.outage import FIRST_PAUSE, OutageReporter

        self._outage = OutageReporter("DAG processor", log)
        self._outage_pause = FIRST_PAUSE
        self.parse_durations: dict[str, float] = {}

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Parse in a thread of this process until ``stop()``."""
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._thread = threading.Thread(target=self._loop, name="updraft-dag-processor",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; every parsing process ends with it."""
        self._stop.set()
        self._kick.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1

    def close(self) -> None:
        """End the parsing processes (``process_once`` users; ``stop`` does it)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def refresh(self) -> None:
        """Scan the folder now instead of at the next interval (thread-safe)."""
        self._kick.set()
        self._poke()

    def pids(self) -> list[int]:
        """PIDs of the parsing processes alive now."""
        pool = self._pool
        return pool.pids() if pool is not None else []

    def in_flight(self) -> list[str]:
        """The files being parsed now."""
        pool = self._pool
        return pool.in_flight() if pool is not None else []

    def _poke(self) -> None:
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):  # pipe full: the thread is awake anyway
                pass

    def _drain(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _loop(self) -> None:
        next_scan = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if self._kick.is_set() or time.monotonic() >= next_scan:
                        self._kick.clear()
                        self._scan()
                        next_scan = time.monotonic() + self._scan_pause()
                    outcomes = self._get_pool().poll(next_scan - time.monotonic(),
                                                     wake=[self._wake_r])
                    self._drain()
                    self._handle(outcomes)
                except Exception as exc:  # noqa: BLE001  (the processor goes on whatever happens)
                    from updraft.store.outage import is_store_unavailable

                    if is_store_unavailable(exc):
                        self._store_away(exc)
                    else:
                        log.exception("DAG processing failed; going on")
                    self._stop.wait(self._scan_pause())
        finally:
            self.close()

    def process_once(self, timeout: float | None = None) -> dict:
        """List the folder once, parse every file due and wait for all of them (tests and
        tools; not while ``start()``'s thread runs). Returns ``stats``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._scan()
        pool = self._get_pool()
        while pool.busy():
            while pool.busy():
                left = 1.0 if deadline is None else deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"files still parsing after {timeout:g}s: "
                                       f"{pool.in_flight()}")
                self._handle(pool.poll(min(left, 1.0)))
            self._sync_store()  # may queue files waiting for a DAG id that is now free
        return self.stats

    def _get_pool(self):
        if self._pool is None:
            from scheduler.parsing_pool import STORE, ParsingPool

            self._pool = ParsingPool(self.processes, mode=STORE, store_url=self.store_url,
                                     node_id=self.node_id, import_timeout=self.timeout,
                                     memory_limit_mb=self.memory_limit_mb,
                                     folders=[str(f) for f in self.folders()])
        return self._pool

    # -- the folder ------------------------------------------------------------------------

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

    def _scan(self) -> None:
        """List the folder; queue what is new, changed or due; forget what is gone."""
        files = self.list_files()
        listed = set(files)
        gone = self._listed - listed
        self._listed = listed
        now = time.time()
        for path in files:
            if path in self._submitted:
                continue  # changed while parsing: the next scan sees the new mtime
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            seen = self._seen.get(path)
            if seen is None or seen[0] != mtime or now - seen[1] >= self.reparse_interval:
                self._submit(path, mtime)
        if self._first_round is None:
            self._first_round = set(self._submitted)
        for path in gone:
            self._alive.pop(path, None)
            self._seen.pop(path, None)
            self._blocked.pop(path, None)
        if gone:
            self._gone |= gone
            self._release(gone)
        self._sync_store()
        self._record_bundle()

    def _record_bundle(self) -> None:
        """Record the DAGs folder's content-addressed version when it changed (ADR 12)."""
        from updraft.bundles.version import BundleMismatch, FolderHasher, build_archive, \
            version_of

        if not self.dags_folder.is_dir():
            return
        if self._hasher is None:
            self._hasher = FolderHasher(self.dags_folder)
        manifest = self._hasher.manifest()
        version = version_of(manifest)
        if version == self.bundle_version:
            return
        from updraft.store.bundles import record_bundle, touch_bundle
        from updraft.store.engine import session_scope

        try:
            archive = build_archive(self.dags_folder, manifest)
        except (BundleMismatch, OSError) as exc:
            log.info("DAG bundle not recorded yet (%s); next scan", exc)
            return
        with session_scope(self.store_url) as session:
            if not record_bundle(session, version, manifest, archive):
                touch_bundle(session, version)
        log.info("DAG bundle version %s: %d files, %d bytes", version[:12], len(manifest),
                 len(archive))
        self.bundle_version = version

    def _submit(self, path: str, mtime: float | None = None) -> None:
        if path in self._submitted or path not in self._listed:
            return
        if mtime is None:
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                return
        self._submitted[path] = mtime
        self._frees_at_submit[path] = self._frees
        self._get_pool().submit(path)

    def _release(self, holders: Iterable[str]) -> None:
        """Parse again the files whose DAG ids ``holders`` held: the ids may be free."""
        holders = set(holders)
        for path, held_by in list(self._blocked.items()):
            if held_by & holders:
                self._submit(path)

    # -- outcomes --------------------------------------------------------------------------

    def _handle(self, outcomes) -> None:
        changed_any = False
        now = time.time()
        for outcome in outcomes:
            path = outcome.path
            mtime = self._submitted.pop(path, -1.0)
            frees_at_submit = self._frees_at_submit.pop(path, self._frees)
            self._parsed += 1
            if self._first_round is not None:
                self._first_round.discard(path)
            if path not in self._listed:
                self._gone.add(path)  # went while parsing: undo what the child stored
                continue
            if outcome.retry:
                if outcome.store_away:
                    self._store_away(outcome.retry)
                else:
                    log.error("Parsing %s did not complete: %s; trying again at the next "
                              "scan", path, outcome.retry)
                self._seen[path] = (-1.0, now)
                continue
            self._store_back()
            if outcome.unrecorded:
                try:
                    self._record_import_error(path, outcome.error or "")
                except Exception:  # noqa: BLE001  (tried again at the next scan)
                    log.exception("Cannot record the import error of %s", path)
                    mtime = -1.0
            self._seen[path] = (mtime, now)
            ids = None if outcome.dag_ids is None else list(outcome.dag_ids)
            if self._alive.get(path, ()) != ids:
                self._inactive_due = True
            self._alive[path] = ids
            self.parse_durations[path] = outcome.duration
            if outcome.changed or outcome.error:
                changed_any = True
            if outcome.conflicts:
                self._blocked[path] = set(outcome.conflicts.values())
                if frees_at_submit != self._frees:
                    # DAG ids were freed while it was parsing: its child may have found
                    # the holder still active just before. Parse it again, as
                    # ``_sync_store`` would have had it not been in flight.
                    self._submit(path)
            else:
                self._blocked.pop(path, None)
        if outcomes:
            self._release(o.path for o in outcomes)
        changed_any |= self._sync_store(soon=True)
        if self._first_round is not None and not self._first_round:
            pool = self._pool
            self.stats = {"files": len(self._listed), "parsed": self._parsed,
                          "queued": pool.queued if pool else 0,
                          "deaths": pool.deaths if pool else 0,
                          "seconds": time.monotonic() - self._started}
        if changed_any and self.on_change is not None:
            self.on_change()

    # -- store outages ---------------------------------------------------------------------

    def _store_away(self, why: BaseException | str) -> None:
        """The store could not be reached: one warning per outage, and the pause between
        scans doubles (up to ``MAX_PAUSE``) instead of parsing every file every interval."""
        from updraft.store.outage import MAX_PAUSE

        if self._outage.in_outage:
            self._outage_pause = min(self._outage_pause * 2, MAX_PAUSE)
        self._outage.failed(why)

    def _store_back(self) -> None:
        from updraft.store.outage import FIRST_PAUSE

        if self._outage.in_outage:
            self._outage.succeeded()
            self._outage_pause = FIRST_PAUSE

    def _scan_pause(self) -> float:
        if self._outage.in_outage:
            return max(self.list_interval, self._outage_pause)
        return self.list_interval

    def _record_import_error(self, path: str, error: str) -> None:
        from updraft.store.dags import set_import_error
        from updraft.store.engine import session_scope
        from updraft.store.models import utcnow

        with session_scope(self.store_url) as session:
            set_import_error(session, path, error, utcnow())

    def _sync_store(self, soon: bool = False) -> bool:
        """Forget the import errors of gone files and mark gone DAGs inactive; True if any.
        ``soon``: a DAG may have gone from a file; look at most once a second for that."""
        if not self._gone and not self._inactive_due:
            return False
        if soon and not self._gone and time.monotonic() - self._synced_at < 1.0:
            return False
        self._synced_at = time.monotonic()
        from updraft.store.dags import clear_import_error, mark_inactive
        from updraft.store.engine import session_scope
        from updraft.store.models import utcnow

        gone_files = set(self._gone)
        with session_scope(self.store_url) as session:
            for path in gone_files:
                clear_import_error(session, path)
            alive = {path: self._alive.get(path) for path in self._listed}
            gone = mark_inactive(session, alive, utcnow())
        self._store_back()
        self._gone -= gone_files
        self._inactive_due = False
        if gone:
            log.info("Marked inactive (file gone or DAG removed): %s", ", ".join(gone))
            self._frees += 1  # a file parsing now is submitted again by _handle if blocked
            for path in list(self._blocked):  # a DAG id they wanted may be free now
                self._submit(path)
        return bool(gone) or bool(gone_files)
