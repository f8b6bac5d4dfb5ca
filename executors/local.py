"""The local executor: tries run in parallel worker processes on this machine.

Up to ``parallelism`` (``[core] parallelism``) long-lived worker processes are started with
the ``spawn`` method, on demand, each running one try at a time with ``run_task_try``. One
monitor thread in the scheduler's process hands tries to idle workers over a pipe per
worker, reads their outcomes and watches each process's sentinel, so it always knows which
try a worker was running when it died:

- A worker that dies mid-try (killed, segfault, ``os._exit``) yields an error event for
  that try (``outcome`` None) and is replaced by a new process when work is waiting. The
  store still says ``running`` for the try: the scheduler fails it under the retry policy.
- ``cancel`` drops a try not yet started, and terminates (SIGTERM) the process running one.

Why ``spawn``: a forked child inherits the scheduler's threads, locks and database
connections; a forkserver child inherits the environment of the moment the fork server
started, which may predate ``UPDRAFT_HOME`` or the store URL. A spawned worker sees the
environment of the moment it starts. Workers ignore SIGINT: the scheduler stops them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from executors.base import BaseExecutor, TryKey, try_key
from updraft.runtime import TryRequest

log = logging.getLogger(__name__)


def _worker_main(conn: Connection) -> None:
    """Body of a worker process: run the tries the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # let user code start processes of its own (daemonic processes may not)
        multiprocessing.current_process().daemon = False
    except (AssertionError, AttributeError):
        pass
    from executors.live_logs import run_with_live_logs
    from updraft.runtime import run_task_try

    node = f"{socket.gethostname()}:{os.getpid()}:local"
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the scheduler went away
            return
        if message is None:
            return
        token, data = message
        try:
            request = TryRequest.from_json(data)
            outcome = run_with_live_logs(request, lambda on_line, request=request: run_task_try(
                request, node=node, executor="local", on_log_line=on_line))
            reply = (token, outcome, None)
        except BaseException as exc:  # noqa: BLE001  (reported to the parent as an event)
            problem = (f"task runner failed: {type(exc).__name__}: {exc}\n"
                       f"{traceback.format_exc(limit=8)}")
            reply = (token, None, problem)
        try:
            conn.send(reply)
        except (EOFError, OSError):
            return


@dataclass(eq=False)
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    current: int | None = None
    retiring: bool = False
    sent: list[int] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"worker process {self.process.pid}"


class LocalExecutor(BaseExecutor):
    """Runs tries in up to ``parallelism`` worker processes on this machine."""

    name = "local"

    def __init__(self, parallelism: int | None = None, *, start_method: str = "spawn",
                 stop_timeout: float = 10.0) -> None:
        super().__init__(parallelism)
        self._context = multiprocessing.get_context(start_method)
        self._stop_timeout = stop_timeout
        self._pending: deque[int] = deque()
        self._workers: list[_Worker] = []
        self._monitor: threading.Thread | None = None
        self._poke_r, self._poke_w = -1, -1
        self._closing = False
        self._deaths = 0

    # -- interface -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the monitor thread; worker processes start when tries arrive."""
        if self._monitor is not None:
            return
        super().start()
        self._poke_r, self._poke_w = os.pipe()
        os.set_blocking(self._poke_r, False)
        self._monitor = threading.Thread(target=self._monitor_loop, name="updraft-local-monitor",
                                         daemon=True)
        self._monitor.start()

    def submit(self, requests: Iterable[TryRequest]) -> None:
        """Queue the tries; the monitor thread hands them to idle workers."""
        self._check_accepting()
        tokens = [self._accept(request) for request in requests]
        with self._lock:
            self._pending.extend(tokens)
        self._poke()

    def cancel(self, key: TryKey) -> bool:
        """Drop waiting submissions of ``key``; terminate the process running one."""
        with self._lock:
            dropped = [token for token in self._pending
                       if try_key(self._in_flight[token]) == key]
            for token in dropped:
                self._pending.remove(token)
            killed = [worker for worker in self._workers if worker.current is not None
                      and worker.current in self._in_flight
                      and try_key(self._in_flight[worker.current]) == key]
            for worker in killed:
                worker.retiring = True
        for token in dropped:
            self._finish(token, error="cancelled before it started")
        for worker in killed:
            token = worker.current
            worker.process.terminate()
            if token is not None:
                self._finish(token, error=f"cancelled: {worker.label} was terminated",
                             worker=worker.label)
        return bool(dropped or killed)

    def queue_depth(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self, wait: bool = True) -> None:
        """Finish (wait=True) or cancel (wait=False) the tries, then end the workers."""
        if self._monitor is None:
            self._stopping = True
            return
        with self._lock:
            self._stopping = True
            dropped = [] if wait else list(self._pending)
            if not wait:
                self._pending.clear()
            busy = [] if wait else [w for w in self._workers if w.current is not None]
            for worker in busy:
                worker.retiring = True
        for token in dropped:
            self._finish(token, error="cancelled: the executor stopped before it started")
        for worker in busy:
            token = worker.current
            worker.process.terminate()
            if token is not None:
                self._finish(token, error=f"cancelled: the executor stopped; {worker.label} "
                                          "was terminated", worker=worker.label)
        if wait:
            self.join()
        self._closing = True
        self._poke()
        self._monitor.join(self._stop_timeout + 5)
        self._monitor = None
        for fd in (self._poke_r, self._poke_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def health(self) -> dict[str, Any]:
        info = super().health()
        with self._lock:
            info.update(alive=self._monitor is not None and self._monitor.is_alive(),
                        workers=len(self._workers),
                        busy_workers=sum(1 for w in self._workers if w.current is not None),
                        worker_pids=[w.process.pid for w in self._workers],
                        worker_deaths=self._deaths, start_method=self._context.get_start_method())
        return info

    # -- the monitor thread ----------------------------------------------------------------

    def _poke(self) -> None:
        try:
            os.write(self._poke_w, b"x")
        except (BlockingIOError, OSError):  # pipe full: the monitor is awake anyway
            pass

    def _spawn_worker(self) -> _Worker:
        parent_end, child_end = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(child_end,),
                                        name="updraft-local-worker", daemon=True)
        process.start()
        child_end.close()
        return _Worker(process=process, conn=parent_end)

    def _dispatch(self) -> None:
        """Hand waiting tries to idle workers, starting workers up to ``parallelism``."""
        while True:
            with self._lock:
                if not self._pending or self._closing:
                    return
                idle = next((w for w in self._workers
                             if w.current is None and not w.retiring), None)
                if idle is None and len(self._workers) >= self.parallelism:
                    return
            if idle is None:
                idle = self._spawn_worker()
                with self._lock:
                    self._workers.append(idle)
            with self._lock:
                if not self._pending:
                    return
                token = self._pending.popleft()
                request = self._in_flight.get(token)
                idle.current = token
            if request is None:
                idle.current = None
                continue
            try:
                idle.conn.send((token, request.to_json()))
            except (OSError, ValueError) as exc:
                self._finish(token, error=f"could not hand the try to {idle.label}: {exc}",
                             worker=idle.label)
                self._retire(idle)

    def _retire(self, worker: _Worker) -> None:
        with self._lock:
            worker.retiring = True
            worker.current = None
        if worker.process.is_alive():
            worker.process.terminate()

    def _on_message(self, worker: _Worker) -> bool:
        """Read one outcome from ``worker``; False at end of file (it died)."""
        try:
            token, outcome, error = worker.conn.recv()
        except (EOFError, OSError):
            return False  # the sentinel reports the death
        with self._lock:
            if worker.current == token:
                worker.current = None
        self._finish(token, outcome, error, worker=worker.label)
        return True

    def _on_death(self, worker: _Worker) -> None:
        while True:  # an outcome sent just before dying still counts
            try:
                if not worker.conn.poll():
                    break
            except (EOFError, OSError):
                break
            if not self._on_message(worker):
                break
        worker.process.join(1)
        code = worker.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else \
            f"exit code {code}"
        with self._lock:
            token, worker.current = worker.current, None
            if worker in self._workers:
                self._workers.remove(worker)
            if not worker.retiring:
                self._deaths += 1
        try:
            worker.conn.close()
        except OSError:
            pass
        if token is not None:
            request = self._request(token)
            label = request.label if request is not None else "a try"
            log.warning("%s died (%s) while running %s", worker.label, how, label)
            self._finish(token, error=f"{worker.label} died ({how}) while running {label}",
                         worker=worker.label)

    def _monitor_loop(self) -> None:
        try:
            while not self._closing:
                self._dispatch()
                with self._lock:
                    workers = list(self._workers)
                conns = {w.conn: w for w in workers}
                sentinels = {w.process.sentinel: w for w in workers}
                ready = wait([self._poke_r, *conns, *sentinels])
                for obj in ready:
                    if obj == self._poke_r:
                        try:
                            while os.read(self._poke_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                for obj in ready:
                    if obj in conns and conns[obj].process.sentinel not in ready:
                        self._on_message(conns[obj])
                for obj in ready:
                    if isinstance(obj, int) and obj in sentinels:
                        self._on_death(sentinels[obj])
        except Exception:  # lost tries are reported below
            log.exception("local executor monitor failed")
        finally:
            self._shutdown_workers()

    def _shutdown_workers(self) -> None:
        with self._lock:
            workers, self._workers = list(self._workers), []
            dropped = list(self._pending)
            self._pending.clear()
        for token in dropped:
            self._finish(token, error="the executor stopped before it started")
        for worker in workers:
            try:
                worker.conn.send(None)
            except (OSError, ValueError):
                pass
        for worker in workers:
            worker.process.join(self._stop_timeout)
            if worker.process.is_alive():
                worker.process.terminate()
                worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2)
            token = worker.current
            if token is not None:
                self._finish(token, error=f"the executor stopped while {worker.label} ran it",
                             worker=worker.label)
            try:
                worker.conn.close()
            except OSError:
                pass
