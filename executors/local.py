"""The local executor: tries run in processes of their own on this machine.

Up to ``parallelism`` slot threads in this process each supervise one try at a time
(``updraft.isolation.Supervisor``): the try runs in a process forked from a warm zygote (a
separate interpreter started once, so nothing of the scheduler's process, its threads or
its database connections, reaches user code), while the slot streams its log, heartbeats
for it, enforces its timeout and memory limit, and records its outcome, or how its process
died. A try that segfaults or is killed fails alone, with the cause in its log; the slot
goes on with the next try.

- ``cancel`` drops a try not yet started, and stops a running one (SIGTERM, ``on_kill()``,
  SIGKILL after ``[core] kill_grace_period``); its event comes once its process is gone.
- ``stop(wait=False)`` stops every running try as an interruption: the try is recorded
  ``up_for_retry`` without using one of its retries, so a restart runs it again.

The local executor always isolates tries in processes: ``[core] task_isolation = thread``
would put user code in the scheduler's process, which ADR 3 forbids.
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


class LocalExecutor(BaseExecutor):
    """Supervises up to ``parallelism`` tries at once, each in a process of its own."""

    name = "local"
    isolation = "process"

    def __init__(self, parallelism: int | None = None, *, kill_grace: float | None = None,
                 stop_timeout: float = 10.0, **_legacy: Any) -> None:
        super().__init__(parallelism)
        self._kill_grace = kill_grace
        self._stop_timeout = stop_timeout
        self._pending: deque[int] = deque()
        self._ready = threading.Condition(self._lock)
        self._threads: list[threading.Thread] = []
        self._busy: dict[int, int] = {}  # thread ident -> token
        self._supervisor = None
        self._node = f"{socket.gethostname()}:{os.getpid()}:{self.name}"

    # -- interface -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote that forks the tries' processes; slot threads start on demand."""
        if self._started:
            return
        if self.isolation == "process":
            from updraft.isolation.supervisor import Supervisor

            self._supervisor = Supervisor(self.name, kill_grace=self._kill_grace,
                                          node=self._node)
            self._supervisor.start()
        super().start()

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Queue the tries; idle slot threads take them."""
        self._check_accepting()
        tokens = [self._accept(request) for request in requests]
        with self._ready:
            self._pending.extend(tokens)
            wanted = min(self.parallelism, len(self._busy) + len(self._pending))
            while len(self._threads) < wanted:
                thread = threading.Thread(target=self._work, daemon=True,
                                          name=f"updraft-{self.name}-slot-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
            self._ready.notify_all()

    def cancel(self, key: TryKey) -> bool:
        """Drop waiting submissions of ``key``; stop the process of a running one."""
        with self._lock:
            dropped = [token for token in self._pending
                       if try_key(self._in_flight[token]) == key]
            for token in dropped:
                self._pending.remove(token)
            running = any(try_key(self._in_flight[token]) == key
                          for token in self._busy.values() if token in self._in_flight)
        for token in dropped:
            self._finish(token, error="cancelled before it started")
        stopped = bool(running and self._supervisor is not None and self._supervisor.stop(
            key, "stopped: cancelled by the scheduler"))
        return bool(dropped) or stopped

    def warm(self, dags: list[tuple[str, str]]) -> None:
        """Have the zygote parse these DAGs ahead of their first tries."""
        if self._supervisor is not None:
            from updraft.bundles.cache import local_dag_refs

            supervisor = self._supervisor
            threading.Thread(target=lambda: supervisor.warm(local_dag_refs(dags)),
                             name="updraft-warm-dags", daemon=True).start()

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self, wait: bool = True) -> None:
        """Finish (wait=True) or interrupt (wait=False) the tries, then end the slots."""
        with self._ready:
            self._stopping = True
            dropped = [] if wait else list(self._pending)
            if not wait:
                self._pending.clear()
            self._ready.notify_all()
        for token in dropped:
            self._finish(token, error="cancelled: the executor stopped before it started")
        if wait:
            self.join()
        elif self._supervisor is not None:
            self._supervisor.stop_all()
        for thread in list(self._threads):
            thread.join(self._stop_timeout)
        self._threads = []
        if self._supervisor is not None:
            self._supervisor.close()

    def health(self) -> dict[str, Any]:
        info = super().health()
        with self._lock:
            info.update(alive=self._started and not self._stopping, workers=len(self._threads),
                        busy_workers=len(self._busy), node=self._node, isolation=self.isolation)
        if self._supervisor is not None:
            info.update(zygote_pid=self._supervisor.zygote.pid,
                        zygote_starts=self._supervisor.zygote.starts,
                        tries_died=self._supervisor.stats["died"],
                        tries_stopped=self._supervisor.stats["stopped"])
        return info

    # -- the slot threads ------------------------------------------------------------------

    def _work(self) -> None:
        me = threading.get_ident()
        while True:
            with self._ready:
                while not self._pending and not self._stopping:
                    self._ready.wait()
                if not self._pending:
                    return
                token = self._pending.popleft()
                request = self._in_flight.get(token)
                if request is None:
                    continue
                self._busy[me] = token
            try:
                outcome = self._run(request)
            except BaseException as exc:  # noqa: BLE001  (reported as an event; the slot lives)
                log.exception("the task runner failed for %s", request.label)
                self._finish(token, error=f"task runner failed: {type(exc).__name__}: {exc}\n"
                                          f"{traceback.format_exc(limit=5)}", worker=self._node)
            else:
                self._finish(token, outcome, worker=self._node)
            finally:
                with self._lock:
                    self._busy.pop(me, None)

    def _run(self, request: TryRequest):
        from executors.live_logs import run_with_live_logs
        from updraft.bundles.cache import localize_request

        request = localize_request(request)  # a pinned run's code, by hash (ADR 12)

        if self._supervisor is not None:
            return run_with_live_logs(request, lambda on_line: self._supervisor.run(
                request, node=self._node, on_log_line=on_line))
        from updraft.runtime import run_task_try

        return run_with_live_logs(request, lambda on_line: run_task_try(
            request, node=self._node, executor=self.name, on_log_line=on_line))


__all__ = ["LocalExecutor"]
