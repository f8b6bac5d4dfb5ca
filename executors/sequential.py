"""The sequential executor: one try at a time in one worker thread, for debugging.

Tries run in this process (the scheduler's), in submission order, on a single thread; user
code therefore shares the scheduler's process, and a task that crashes the interpreter
takes the scheduler with it. ``cancel`` drops tries that have not started; a running try
cannot be interrupted (Python threads cannot be killed) and ``cancel`` returns False for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterable
from typing import Any

from executors.base import BaseExecutor, TryKey, try_key
from updraft.runtime import TryRequest

log = logging.getLogger(__name__)


class SequentialExecutor(BaseExecutor):
    """Runs tries one after the other in a single background thread."""

    name = "sequential"

    def __init__(self, parallelism: int | None = None) -> None:
        # One worker, but the slot count tells the scheduler how much to queue ahead.
        super().__init__(parallelism=1 if parallelism is None else parallelism)
        self._pending: deque[int] = deque()
        self._current: int | None = None
        self._ready = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._node = f"{socket.gethostname()}:{os.getpid()}:sequential"

    def start(self) -> None:
        """Start the worker thread."""
        if self._thread is not None:
            return
        super().start()
        self._thread = threading.Thread(target=self._work, name="updraft-sequential",
                                        daemon=True)
        self._thread.start()

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Append the tries to the queue; the worker thread runs them in order."""
        self._check_accepting()
        tokens = [self._accept(request) for request in requests]
        with self._ready:
            self._pending.extend(tokens)
            self._ready.notify()

    def cancel(self, key: TryKey) -> bool:
        """Drop the submissions of ``key`` not yet started; a running one goes on."""
        with self._lock:
            dropped = [token for token in self._pending
                       if try_key(self._in_flight[token]) == key]
            for token in dropped:
                self._pending.remove(token)
        for token in dropped:
            self._finish(token, error="cancelled before it started")
        return bool(dropped)

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self, wait: bool = True) -> None:
        """Finish (wait=True) or drop (wait=False) the queue, then end the thread."""
        with self._ready:
            self._stopping = True
            dropped = [] if wait else list(self._pending)
            if not wait:
                self._pending.clear()
            self._ready.notify()
        for token in dropped:
            self._finish(token, error="cancelled: the executor stopped before it started")
        if wait:
            self.join()
        thread, self._thread = self._thread, None
        with self._ready:
            self._ready.notify_all()
        if thread is not None and wait:
            thread.join()

    def health(self) -> dict[str, Any]:
        info = super().health()
        info.update(workers=1, alive=self._thread is not None and self._thread.is_alive(),
                    node=self._node)
        return info

    def _work(self) -> None:
        from updraft.runtime import run_task_try

        while True:
            with self._ready:
                while not self._pending and not self._stopping:
                    self._ready.wait()
                if not self._pending:
                    return
                token = self._pending.popleft()
                request = self._in_flight[token]
                self._current = token
            try:
                outcome = run_task_try(request, node=self._node, executor=self.name)
            except BaseException as exc:  # reported as an event, thread lives
                log.exception("task runner failed for %s", request.label)
                self._finish(token, error=f"task runner failed: {type(exc).__name__}: {exc}\n"
                                          f"{traceback.format_exc(limit=5)}",
                             worker=self._node)
            else:
                self._finish(token, outcome, worker=self._node)
            finally:
                with self._lock:
                    self._current = None
