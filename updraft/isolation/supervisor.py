"""The supervisor: runs each try in a process of its own and watches it from outside.

``Supervisor.run(request)`` is what an executor slot calls for one try. In the slot's own
process (a Dask worker thread, an ``updraft worker`` slot, a local executor thread) it:

1. claims the try in the store (``runtime.claim_try``; a stale or duplicate request stops
   here and runs nothing);
2. takes a try process from the zygote (forked ahead: no interpreter start, no import);
3. streams that process's stdout and stderr (C-level output included) into the try's log
   and to the live-log callback, heartbeats for it (from this process: user code holding
   the GIL in a long C call cannot make the try look dead), and watches its memory;
4. stops it when it must: past its ``execution_timeout`` (the process raises its own
   timeout first; the supervisor enforces it one second later), when ``stop()`` is called
   (a cancel, the executor shutting down), or when the heartbeat finds the task instance no
   longer running (marked, cleared, its run timed out or deleted). Stopping is SIGTERM
   (``on_kill()`` runs in the try), then SIGKILL of the process and everything it started
   after ``[core] kill_grace_period``;
5. records the outcome the try sent back (``runtime.record_try``) or, if its process died
   first, how it died ("the try's process died of signal 11 (SIGSEGV)", "... was killed:
   it used 1.02 GiB, over its memory limit of 512 MiB") under the retry policy. Nothing
   else on the worker is touched.

``run`` returns once the outcome is recorded and, for a try that was stopped or died, once
its process is gone, so a retry never runs beside the try it replaces.

A try's process serves the next try of this supervisor (never two at once) when the try
succeeded (or skipped, or was rescheduled), left nothing behind (no thread, no child
process), and the process stays small; after ``[core] tries_per_process`` tries, after a DAG changed, or after five idle
minutes it exits and a fresh one is forked. On virtual machines a freshly forked process
pays for copying every page it touches (about 30 ms for a no-op try here), a reused one
does not (about 2 ms more than running the try in the worker's thread);
``tries_per_process = 1`` gives every try a fresh process. The tries of a bundle
(``session()``) go one after the other through one process in the same way.
"""

from __future__ import annotations

import codecs
import logging
import os
import select
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from updraft.isolation.limits import (
    describe_exit,
    descendants,
    format_size,
    kill_group_quietly,
    kill_quietly,
    killed_by_signal,
    oom_kill_count,
    rss_bytes,
)
from updraft.isolation.zygote import ChildProcess, ZygoteClient, ZygoteUnavailable
from updraft.runtime import REFUSED_CLAIM, TryOutcome, TryRequest, claim_try, record_try
from updraft.state import FAILED_TRY_STATES, TaskInstanceState as TI

log = logging.getLogger("updraft.isolation")

TIMEOUT_MARGIN = 1.0
"""Seconds after its execution_timeout before the supervisor stops a try (the try's own
timeout, which runs ``on_kill()`` and names the task's line, normally comes first)."""

MEMORY_POLL = 0.1
"""Seconds between two looks at a try process's memory."""

INTERRUPTED = ("interrupted: the executor shut down while the try ran; it runs again "
               "without using one of its retries")

TryKey = tuple[str, str, str, int]


class _Stop:
    """Why and how a try is being stopped."""

    def __init__(self, reason: str, counts: bool) -> None:
        self.reason = reason
        self.counts = counts  # False: an interruption that must not use a retry
        self.signalled_at: float | None = None
        self.killed = False


class _Watched:
    """One try being supervised: what the loop of ``_supervise`` needs to know."""

    def __init__(self, request: TryRequest) -> None:
        self.request = request
        self.stop: _Stop | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def request_stop(self, reason: str, counts: bool = True) -> None:
        if self.stop is None:
            self.stop = _Stop(reason, counts)
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except OSError:
            pass

    def drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


IDLE_LIFETIME = 300.0
"""Seconds an idle try process is kept for the next try."""

REUSE_MAX_RSS = 512 * 2 ** 20
"""A try process larger than this after a try is not reused."""


class _Held:
    """A try process and its log pipe, possibly kept for the next try."""

    def __init__(self, child: ChildProcess, log_r: int, generation: int) -> None:
        self.child = child
        self.log_r = log_r
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.reusable = False
        self.generation = generation
        self.tries = 0
        self.idle_since = 0.0


class Session:
    """Tries run one after the other, sharing a process while that is safe (bundles)."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.held: _Held | None = None

    def run(self, request: TryRequest, *, node: str | None = None,
            on_log_line=None) -> TryOutcome:
        return self.supervisor.run(request, node=node, on_log_line=on_log_line, session=self)

    def close(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            self.supervisor._keep_or_release(held)


class Supervisor:
    """Runs tries in processes forked by one zygote (see the module docstring).

    One per process that hosts executor slots; thread-safe: each slot thread calls ``run``.
    """

    def __init__(self, executor: str, *, zygote: ZygoteClient | None = None,
                 kill_grace: float | None = None, node: str | None = None) -> None:
        from updraft.config import conf

        self.executor = executor
        self.node = node
        self.zygote = zygote or ZygoteClient(dask=executor == "dask")
        self.kill_grace = conf.getfloat("core", "kill_grace_period") if kill_grace is None \
            else kill_grace
        self.tries_per_process = max(1, conf.getint("core", "tries_per_process"))
        self._idle: list[_Held] = []
        self._lock = threading.Lock()
        self._running: dict[TryKey, _Watched] = {}
        self._closing = False
        self.stats = {"tries": 0, "died": 0, "stopped": 0, "reused": 0}

    # -- control ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote now rather than at the first try."""
        self.zygote.start()

    def warm(self, refs: list[tuple[str, str]]) -> None:
        """Have the zygote parse these ``(fileloc, dag_id)`` DAGs ahead (never blocks)."""
        try:
            self.zygote.warm(refs)
        except Exception:  # noqa: BLE001  (only an optimisation)
            log.debug("warming the zygote failed", exc_info=True)

    def stop(self, key: TryKey, reason: str, *, counts: bool = True) -> bool:
        """Stop the running try of task instance ``key``; False if none runs here."""
        with self._lock:
            watched = self._running.get(key)
        if watched is None:
            return False
        watched.request_stop(reason, counts)
        return True

    def stop_all(self, reason: str = INTERRUPTED, *, counts: bool = False) -> int:
        """Stop every try running here (a shutdown: by default they use no retry)."""
        with self._lock:
            self._closing = True
            watched = list(self._running.values())
        for one in watched:
            one.request_stop(reason, counts)
        return len(watched)

    def running(self) -> list[TryKey]:
        with self._lock:
            return list(self._running)

    def close(self) -> None:
        """Let the idle try processes go and stop the zygote (its children with it)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for held in idle:
            self._release(held, wait=False)
        self.zygote.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        one = Session(self)
        try:
            yield one
        finally:
            one.close()

    # -- one try ---------------------------------------------------------------------------

    def run(self, request: TryRequest, *, node: str | None = None, on_log_line=None,
            session: Session | None = None) -> TryOutcome:
        """Claim, run and record one try in a process of its own (see the module docstring).

        Never raises for what the try does; raises only if the store stays unreachable
        while the supervisor is closing, or if no process can be forked at all.
        """
        node = node or self.node
        # Known as running before the claim commits: a stop that comes as soon as the store
        # says "running" (a cancel, a mark) finds it, and ends it before its child starts.
        watched = _Watched(request)
        key: TryKey = (request.dag_id, request.run_id, request.task_id, request.map_index)
        with self._lock:
            # A duplicate request of a try running here is refused by the claim: it must
            # not take the running one's place meanwhile.
            early = key not in self._running
            if early:
                self._running[key] = watched
        try:
            claimed = claim_try(request, node, self.executor, give_up=lambda: self._closing)
        except BaseException:
            self._forget(key, watched)
            raise
        if claimed is None:
            self._forget(key, watched)
            return TryOutcome(state=None, try_number=request.try_number, refused=True,
                              error=REFUSED_CLAIM)
        self.stats["tries"] += 1
        with self._lock:
            if not early:
                self._running[key] = watched
            closing = self._closing
        if closing:
            watched.request_stop(INTERRUPTED, counts=False)
        from updraft.heartbeats import heartbeats

        heartbeats.add(request.heartbeat_key, request.store_url, try_id=request.try_id,
                       on_gone=lambda state: watched.request_stop(
                           f"stopped: the task instance is now {state} (marked, cleared or "
                           "timed out while the try ran)"))
        try:
            return self._supervise(request, claimed, watched, node, on_log_line, session)
        finally:
            heartbeats.remove(request.heartbeat_key)
            self._forget(key, watched)

    def _forget(self, key: TryKey, watched: _Watched) -> None:
        with self._lock:
            if self._running.get(key) is watched:
                del self._running[key]
        watched.close()

    def _acquire(self, request: TryRequest, session: Session | None) -> _Held:
        held = None
        if session is not None and session.held is not None:
            held, session.held = session.held, None
        else:
            held = self._take_idle()
        if held is not None:
            if self._usable(held):
                self.stats["reused"] += 1
                return held
            self._release(held, wait=False)
        from updraft.config import conf

        generation = self.zygote.generation
        child = self.zygote.fork((request.fileloc, request.dag_id))
        log_r, log_w = os.pipe()
        options = {"log_level": conf.get("logging", "level")}
        if self.executor == "dask":
            from updraft.isolation.dask_bridge import worker_facts

            options["dask_worker"] = worker_facts()
        try:
            child.channel.send(("setup", options), [log_w])
        except OSError:
            pass  # it died already: the loop sees it
        finally:
            os.close(log_w)
        os.set_blocking(log_r, False)
        return _Held(child, log_r, generation)

    def _take_idle(self) -> _Held | None:
        now = time.monotonic()
        expired = []
        taken = None
        with self._lock:
            while self._idle:
                held = self._idle.pop()
                if now - held.idle_since > IDLE_LIFETIME:
                    expired.append(held)
                    continue
                taken = held
                break
        for held in expired:
            self._release(held, wait=False)
        return taken

    def _usable(self, held: _Held) -> bool:
        return (held.reusable and not held.child.exited.is_set()
                and held.tries < self.tries_per_process
                and held.generation == self.zygote.generation)

    def _keep_or_release(self, held: _Held) -> None:
        """Keep a try process for the next try if it may serve one, else let it go."""
        rss = rss_bytes(held.child.pid)
        if self._usable(held) and not self._closing and rss is not None and \
                rss < REUSE_MAX_RSS:
            held.idle_since = time.monotonic()
            with self._lock:
                # Never more idle processes than tries ran at once here lately.
                if len(self._idle) < max(2, len(self._running) + 1):
                    self._idle.append(held)
                    return
        self._release(held, wait=False)

    def _release(self, held: _Held, *, wait: bool, kill: bool = False) -> None:
        """Let a try process go: tell it to exit (or kill it with what it started)."""
        child = held.child
        if kill:
            self._kill_everything(child.pid)
        else:
            try:
                child.channel.send(("exit",))
            except OSError:
                pass
        if wait:
            if not child.exited.wait(max(self.kill_grace, 1.0)):
                self._kill_everything(child.pid)
                child.exited.wait(2.0)
        try:
            os.close(held.log_r)
        except OSError:
            pass
        self.zygote.forget(child.pid)

    @staticmethod
    def _kill_everything(pid: int) -> None:
        """SIGKILL a try process, its process group and every descendant it has."""
        family = descendants(pid)
        kill_group_quietly(pid, signal.SIGKILL)
        kill_quietly(pid, signal.SIGKILL)
        for other in family:
            kill_quietly(other, signal.SIGKILL)

    def _supervise(self, request: TryRequest, claimed, watched: _Watched, node: str | None,
                   on_log_line, session: Session | None) -> TryOutcome:
        from updraft.config import conf
        from updraft.tasklog import TryLogSink, try_log_path

        path = try_log_path(conf.log_folder(), request.dag_id, request.run_id,
                            request.task_id, request.map_index, request.try_number)
        sink = TryLogSink(path, on_line=on_log_line)
        started = time.monotonic()
        oom_before = oom_kill_count()
        try:
            held = self._acquire(request, session)
        except ZygoteUnavailable as exc:
            # No process, so none of the task's code ran: that is not a try of the task.
            sink.write(f"[supervisor] the try's process could not be started ({exc}); "
                       "the try runs again without using a retry\n")
            sink.close()
            outcome = self._interrupt(request, claimed, node, started)
            outcome.log_path = str(path)
            return outcome
        child = held.child
        child.notify = watched.wake
        if child.exited.is_set():
            watched.wake()
        limits: dict[str, Any] = {}
        deadline: float | None = None
        outcome: TryOutcome | None = None
        done = False
        peak = 0
        over_limit: str | None = None
        next_poll = 0.0
        seceded = False
        try:
            child.channel.send(("run", {"request": request.to_json(), "claimed": claimed}))
        except OSError:
            pass  # it died: the loop records how
        while not done:
            now = time.monotonic()
            stop = watched.stop
            if stop is None and deadline is not None and now >= deadline:
                timeout = limits["execution_timeout"]
                watched.request_stop(f"Timeout: the try ran longer than its execution_timeout "
                                     f"({timeout:g} s) and was stopped")
                stop = watched.stop
            if stop is not None and stop.signalled_at is None:
                sink.write(f"[supervisor] stopping the try's process: {stop.reason}\n")
                stop.signalled_at = now
                kill_quietly(child.pid, signal.SIGTERM)
                self.stats["stopped"] += 1
            if stop is not None and not stop.killed and stop.signalled_at is not None and \
                    now >= stop.signalled_at + self.kill_grace:
                sink.write(f"[supervisor] the try's process did not end within "
                           f"{self.kill_grace:g} s of SIGTERM: killing it (SIGKILL)\n")
                stop.killed = True
                self._kill_everything(child.pid)
            if now >= next_poll and not child.exited.is_set():
                next_poll = now + MEMORY_POLL
                rss = rss_bytes(child.pid)
                if rss is not None:
                    peak = max(peak, rss)
                    limit = limits.get("memory_limit")
                    if limit and rss > limit and over_limit is None:
                        over_limit = (f"the try's process was killed: it used {format_size(rss)}"
                                      f", over its memory limit of {format_size(limit)}")
                        watched.request_stop(over_limit)
                        watched.stop.signalled_at = now
                        watched.stop.killed = True
                        self._kill_everything(child.pid)
            waits = [next_poll - now]
            if deadline is not None and watched.stop is None:
                waits.append(deadline - now)
            if watched.stop is not None and watched.stop.signalled_at is not None and \
                    not watched.stop.killed:
                waits.append(watched.stop.signalled_at + self.kill_grace - now)
            timeout = max(0.0, min(waits))
            readable = [watched._wake_r, held.log_r]
            if not child.channel.closed:
                readable.append(child.channel.sock)
            try:
                ready, _, _ = select.select(readable, [], [], timeout)
            except (OSError, ValueError):
                ready = []
            if watched._wake_r in ready:
                watched.drain_wake()
            if held.log_r in ready:
                self._pump_log(held, sink)
            if child.channel.sock in ready and not child.channel.closed:
                try:
                    alive = child.channel.feed()
                except OSError:
                    alive = False
                for message, _fds in child.channel.messages():
                    kind = message[0]
                    if kind == "task":
                        limits = message[1]
                        if limits.get("execution_timeout"):
                            # From now: the task's code is about to start (waiting for a
                            # process to be forked does not count).
                            deadline = time.monotonic() + limits["execution_timeout"] + \
                                TIMEOUT_MARGIN
                    elif kind == "result" and outcome is None:
                        result, wants_reply = message[1], message[2]
                        stop = watched.stop
                        if stop is not None and result.state in FAILED_TRY_STATES:
                            result.error = stop.reason
                        if stop is not None and not stop.counts:
                            outcome = self._interrupt(request, claimed, node, started)
                        else:
                            outcome = record_try(request, claimed, result, node=node,
                                                 duration=time.monotonic() - started)
                        if wants_reply:
                            try:
                                child.channel.send(("recorded", outcome.state))
                            except OSError:
                                pass
                    elif kind == "secede" and not seceded:
                        from updraft.isolation.dask_bridge import secede_here

                        seceded = secede_here()
                    elif kind == "done":
                        # Only a try that ended well hands its process on: one that failed
                        # (a timeout, an error) may have been cut off halfway.
                        held.reusable = bool(message[1].get("reusable")) and \
                            watched.stop is None and outcome is not None and \
                            outcome.state in (TI.SUCCESS, TI.SKIPPED, TI.UP_FOR_RESCHEDULE,
                                              TI.DEFERRED)
                        done = True
                if not alive:
                    child.channel.closed = True
            if child.exited.is_set() or (child.channel.closed and not done):
                if not child.exited.wait(2.0):
                    # Its end closed but the zygote has not reported it: make sure.
                    self._kill_everything(child.pid)
                    child.exited.wait(2.0)
                self._pump_log(held, sink, final=True)
                if outcome is None:
                    reason = self._death_reason(child.status, watched.stop, over_limit, peak,
                                                oom_before)
                    sink.write(f"[supervisor] {reason}\n")
                    self.stats["died"] += 1
                    if watched.stop is not None and not watched.stop.counts:
                        outcome = self._interrupt(request, claimed, node, started)
                    else:
                        outcome = self._record_failure(request, claimed,
                                                       limits.get("retry_policy"), node,
                                                       started, reason)
                elif not done:
                    sink.write(f"[supervisor] the try's process "
                               f"{describe_exit(child.status)} after its outcome was recorded"
                               "\n")
                done = True
        self._pump_log(held, sink, final=True)
        if seceded:
            from updraft.isolation.dask_bridge import rejoin_here

            rejoin_here()
        stopped = watched.stop is not None
        held.tries += 1
        if stopped or child.exited.is_set() or not held.reusable:
            self._release(held, wait=stopped, kill=stopped and not child.exited.is_set())
        elif session is not None:
            session.held = held
        else:
            self._keep_or_release(held)
        sink.close()
        if outcome.refused:
            log.info("%s: outcome not recorded: %s", request.label, outcome.error)
        outcome.log_path = str(path)
        return outcome

    def _pump_log(self, held: _Held, sink, final: bool = False) -> None:
        while True:
            try:
                data = os.read(held.log_r, 1 << 16)
            except BlockingIOError:
                return
            except OSError:
                return
            if not data:
                if final:
                    tail = held.decoder.decode(b"", final=True)
                    if tail:
                        sink.write(tail)
                return
            sink.write(held.decoder.decode(data))
            if not final:
                return

    @staticmethod
    def _death_reason(status: int | None, stop: _Stop | None, over_limit: str | None,
                      peak: int, oom_before: int | None) -> str:
        if over_limit is not None:
            return over_limit
        if stop is not None:
            return f"{stop.reason} (the process {describe_exit(status)})"
        number = killed_by_signal(status)
        if number == signal.SIGKILL:
            oom_after = oom_kill_count()
            if oom_before is not None and oom_after is not None and oom_after > oom_before:
                return (f"the try's process was killed: out of memory (the kernel's OOM "
                        f"killer; it had used {format_size(peak)})")
            return (f"the try's process died of signal 9 (SIGKILL): killed from outside "
                    f"Updraft (it had used {format_size(peak)})")
        return f"the try's process {describe_exit(status)}"

    def _record_failure(self, request: TryRequest, claimed, policy, node: str | None,
                        started: float, reason: str) -> TryOutcome:
        from updraft.retries import RetryPolicy, failure_state
        from updraft.task_execution import TryResult

        policy = policy or RetryPolicy.default()
        state = failure_state(policy, request.try_number, claimed.ti.max_tries)
        result = TryResult(state=state, error=reason, retry_policy=policy)
        return record_try(request, claimed, result, node=node,
                          duration=time.monotonic() - started)

    def _interrupt(self, request: TryRequest, claimed, node: str | None,
                   started: float) -> TryOutcome:
        from updraft.runtime import interrupt_try

        return interrupt_try(request, reason=INTERRUPTED, node=node,
                             duration=time.monotonic() - started)


__all__ = ["INTERRUPTED", "Session", "Supervisor"]
