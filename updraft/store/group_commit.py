"""Group commit: the short write jobs of many threads of one process share transactions.

A worker process runs several tries at once, and each try writes twice (its claim and its
outcome). On SQLite every write transaction takes the one database-wide write lock, and
threads that each take it in turn spend most of their time waiting for it. Here one
writer thread per store takes the jobs queued meanwhile and runs them in one transaction:
one lock, one commit for the lot. When nobody else writes, a job waits for nothing but the
hand-over to the writer thread.

A job is ``job(session) -> result``: it may read and write through the session and must
not commit. If any job of a batch raises, the whole batch is rolled back and each of its
jobs runs again in a transaction of its own, so one job's error (an IntegrityError, say)
reaches only its caller and the others are unaffected. Jobs must therefore be safe to run
twice when the first run was rolled back, which compare-and-set updates are.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from updraft.store.engine import normalise_url, session_scope

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 64


class GroupCommitter:
    """Runs write jobs for one store in shared transactions, on one writer thread."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Batches committed and jobs run, for tests and benchmarks.
        self.batches = 0
        self.jobs = 0

    def run(self, job: Callable[..., T]) -> T:
        """Run ``job(session)`` in a write transaction shared with other threads' jobs;
        return its result or raise its error once it is committed or rolled back."""
        future: Future = Future()
        self._ensure_thread()
        self._jobs.put((job, future))
        return future.result()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="updraft-group-commit")
                self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._jobs.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[Callable, Future]]) -> None:
        if len(batch) > 1:
            try:
                with session_scope(self.url, write=True) as session:
                    results = [job(session) for job, _future in batch]
            except Exception:  # noqa: BLE001  (each job runs again alone, below)
                log.debug("a batch of %d store writes failed; running them one by one",
                          len(batch), exc_info=True)
            else:
                self.batches += 1
                self.jobs += len(batch)
                for (_job, future), result in zip(batch, results):
                    future.set_result(result)
                return
        for job, future in batch:
            try:
                with session_scope(self.url, write=True) as session:
                    result = job(session)
            except BaseException as exc:  # noqa: BLE001  (handed to the job's caller)
                future.set_exception(exc)
            else:
                self.batches += 1
                self.jobs += 1
                future.set_result(result)


_committers: dict[str, GroupCommitter] = {}
_committers_lock = threading.Lock()


def group_committer(url: str | None = None) -> GroupCommitter:
    """This process's committer for the store at ``url`` (default: the configured one)."""
    from updraft.config import conf

    key = normalise_url(url or conf.sql_alchemy_conn())
    with _committers_lock:
        committer = _committers.get(key)
        if committer is None:
            committer = _committers[key] = GroupCommitter(url)
        return committer


__all__ = ["GroupCommitter", "group_committer"]
