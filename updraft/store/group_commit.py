"""Group commit: the short write jobs of many threads of one process share transactions.

A worker process runs several tries at once, and each try writes twice (its claim and its
outcome). On SQLite every write transaction takes the one database-wide write lock, and
threads that each take it in turn spend most of their time waiting for it. Here the jobs
of threads that arrive while another thread is writing wait in a queue; the thread that
finds nobody writing becomes the leader, runs the queued jobs in one transaction (one lock,
one commit for the lot), then hands the lead to the first job that queued meanwhile. A
thread alone runs its job itself: no hand-over to another thread.

A job is ``job(connection) -> result``: it may read and write through the SQLAlchemy
Core connection (``execute`` as on a session) and must not commit. If any job of a batch
raises, the whole batch is rolled back and each of its jobs runs again in a transaction of
its own, so one job's error (an IntegrityError, say) reaches only its caller and the
others are unaffected. Jobs must therefore be safe to run twice when the first run was
rolled back, which compare-and-set updates are.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from updraft.store.engine import normalise_url, write_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 64


class _Job:
    __slots__ = ("error", "fn", "lead", "ready", "result")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.ready = threading.Event()
        self.lead = False  # woken to lead the next batch rather than with a result
        self.result: Any = None
        self.error: BaseException | None = None


class GroupCommitter:
    """Runs write jobs for one store in shared transactions (see the module docstring)."""

    def __init__(self, url: str | None) -> None:
        self.url = url
        self._queue: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._busy = False

    def run(self, fn: Callable[..., T]) -> T:
        """Run ``fn(connection)`` in a write transaction, possibly shared with other threads'
        jobs; return its result or raise its error once committed or rolled back."""
        job = _Job(fn)
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
        if not lead:
            job.ready.wait()
        if lead or job.lead:
            with self._lock:
                batch = [self._queue.popleft()
                         for _ in range(min(MAX_BATCH, len(self._queue)))]
            try:
                self._run_batch(batch)
            finally:
                with self._lock:
                    if self._queue:
                        following = self._queue[0]
                        following.lead = True
                        following.ready.set()
                    else:
                        self._busy = False
        if job.error is not None:
            raise job.error
        return job.result

    def _run_batch(self, batch: list[_Job]) -> None:
        if len(batch) > 1:
            try:
                with write_transaction(self.url) as connection:
                    results = [job.fn(connection) for job in batch]
            except Exception:  # noqa: BLE001  (each job runs again alone, below)
                log.debug("a batch of %d store writes failed; running them one by one",
                          len(batch), exc_info=True)
            else:
                for job, result in zip(batch, results):
                    self._finish(job, result)
                return
        for job in batch:
            try:
                with write_transaction(self.url) as connection:
                    result = job.fn(connection)
            except BaseException as exc:  # noqa: BLE001  (handed to the job's caller)
                self._finish(job, None, exc)
            else:
                self._finish(job, result)

    @staticmethod
    def _finish(job: _Job, result: Any, error: BaseException | None = None) -> None:
        job.result, job.error = result, error
        job.lead = False
        job.ready.set()


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
