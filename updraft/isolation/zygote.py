"""The zygote: a warm, single-threaded process that forks the process of each try.

``ZygoteClient`` (in the supervisor's process) starts it with ``subprocess``, so it is a
fresh interpreter even when the supervisor runs threads (a Dask worker does: a ``fork()``
of it would copy locks held by other threads). The zygote imports the task runner once,
parses the DAGs its tries need (each file once per version), freezes that heap out of the
garbage collector's reach, and keeps one *spare* child forked ahead, so a try's process is
ready the moment it is asked for: the fork's cost (a few milliseconds on a virtual machine,
growing with the zygote's memory) is paid off the try's path.

Protocol (``wire.Channel`` over a socket pair; the zygote's end is fd ``argv[1]``):

- client -> zygote: ``("fork", request_id, (fileloc, dag_id))``; ``("warm", [(fileloc,
  dag_id), ...])``; ``("poison", [(fileloc, mtime), ...])`` (files that killed an earlier
  zygote while it parsed them: their tries parse them in their own process instead).
- zygote -> client: ``("forked", request_id, pid)`` with the child's end of a fresh socket
  pair as a passed fd; ``("exited", pid, wait_status)`` for every child it reaps;
  ``("warming", fileloc, mtime)`` and ``("warmed", fileloc, error)`` around each parse.

Each child is the leader of its own process group (so a stop reaches what it started), has
SIGKILL as its parent-death signal, and closes every descriptor of the zygote's before it
runs ``child.child_main``. When the client's end closes (the supervisor's process died or
closed it), the zygote kills its children and exits: nothing outlives the slot.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from updraft.isolation.wire import Channel

log = logging.getLogger("updraft.isolation")

DagRef = tuple[str, str]  # (fileloc, dag_id)


# -- the zygote process --------------------------------------------------------------------

class Zygote:
    """The zygote's main loop (runs in the zygote process)."""

    def __init__(self, channel: Channel, spare: bool = True) -> None:
        self.channel = channel
        self.use_spare = spare
        self.children: set[int] = set()
        self.spare: tuple[int, socket.socket] | None = None
        self.poisoned: set[tuple[str, float]] = set()
        self.warm_refs: set[DagRef] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    # -- forking ---------------------------------------------------------------------------

    def _fork(self) -> tuple[int, socket.socket]:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        keep_closed = [self.channel.sock.fileno(), self._wake_r, self._wake_w,
                       parent_end.fileno()]
        if self.spare is not None:
            keep_closed.append(self.spare[1].fileno())
        zygote_pid = os.getpid()
        pid = os.fork()
        if pid == 0:  # the try's process
            code = 1
            try:
                os.setpgid(0, 0)
                from updraft.isolation.limits import set_parent_death_signal

                set_parent_death_signal(signal.SIGKILL)
                if os.getppid() != zygote_pid:  # the zygote died before prctl took effect
                    os._exit(1)
                signal.set_wakeup_fd(-1)
                for number in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
                    signal.signal(number, signal.SIG_DFL)
                for fd in keep_closed:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                from updraft.isolation.child import child_main

                code = child_main(child_end)
            except BaseException:  # noqa: BLE001  (reported by the exit status)
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        child_end.close()
        try:
            os.setpgid(pid, pid)
        except OSError:  # the child did it first, or already exited
            pass
        self.children.add(pid)
        return pid, parent_end

    def _take_child(self) -> tuple[int, socket.socket]:
        if self.spare is not None:
            spare, self.spare = self.spare, None
            return spare
        return self._fork()

    def _refill_spare(self) -> None:
        if self.use_spare and self.spare is None:
            self.spare = self._fork()

    def _drop_spare(self) -> None:
        """A spare forked before a new DAG was parsed lacks it: replace it."""
        if self.spare is not None:
            pid, end = self.spare
            self.spare = None
            end.close()  # the spare sees end of file and exits
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- warming ---------------------------------------------------------------------------

    def _warm(self, ref: DagRef) -> bool:
        """Parse ``ref`` here unless cached or poisoned; True if something new was parsed."""
        from updraft.task_execution import is_dag_cached, load_dag

        fileloc, dag_id = ref
        try:
            mtime = os.stat(fileloc).st_mtime
        except OSError:
            return False
        if (fileloc, mtime) in self.poisoned or is_dag_cached(fileloc, dag_id):
            return False
        self.channel.send(("warming", fileloc, mtime))
        error = None
        before = threading.active_count()
        try:
            dag = load_dag(fileloc, dag_id)
            from updraft.templating import get_jinja_env

            get_jinja_env(dag)  # cached per DAG: built once here, not in every try's process
        except Exception as exc:  # noqa: BLE001  (the try parses it and reports the error)
            error = f"{type(exc).__name__}: {exc}"
        if threading.active_count() > before:
            # A DAG file started a thread: forking this process is no longer safe.
            self.channel.send(("tainted", fileloc, mtime))
            raise SystemExit(3)
        self.channel.send(("warmed", fileloc, error))
        gc.collect()
        gc.freeze()
        return error is None

    # -- the loop --------------------------------------------------------------------------

    def _on_sigchld(self, _signum, _frame) -> None:
        try:
            os.write(self._wake_w, b"c")
        except OSError:
            pass

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            if self.spare is not None and self.spare[0] == pid:
                self.spare[1].close()
                self.spare = None
                continue
            try:
                self.channel.send(("exited", pid, status))
            except OSError:
                return

    def _handle(self, message: Any) -> None:
        kind = message[0]
        if kind == "fork":
            _kind, request_id, ref = message
            pid, end = self._take_child()
            try:
                self.channel.send(("forked", request_id, pid), [end.fileno()])
            finally:
                end.close()
            changed = ref is not None and self._warm(tuple(ref))
            if changed:
                self._drop_spare()
            self._refill_spare()
        elif kind == "warm":
            changed = False
            for ref in message[1]:
                changed |= self._warm(tuple(ref))
            if changed:
                self._drop_spare()
            self._refill_spare()
        elif kind == "poison":
            self.poisoned.update((fileloc, mtime) for fileloc, mtime in message[1])

    def serve(self) -> None:
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, self._on_sigchld)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            self._refill_spare()
            while True:
                ready, _, _ = select.select([self.channel.sock, self._wake_r], [], [], 1.0)
                if self._wake_r in ready:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                self._reap()
                if self.channel.sock in ready:
                    if not self.channel.feed():
                        return  # the supervisor's process is gone
                    for message, fds in self.channel.messages():
                        for fd in fds:
                            os.close(fd)
                        self._handle(message)
        finally:
            self._kill_children()

    def _kill_children(self) -> None:
        for pid in list(self.children):
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def _exit_on_signal(_signum, _frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the zygote process:
    ``python -m updraft.isolation.zygote FD [nospare] [dask]``."""
    argv = sys.argv[1:] if argv is None else argv
    fd = int(argv[0])
    spare = "nospare" not in argv[1:]
    from updraft.runtime import preload

    preload()
    import updraft.isolation.child  # noqa: F401  (warm: every try's process runs it)

    if "dask" in argv[1:]:
        from updraft.isolation.dask_bridge import preload_bridge

        # Every try's process under a Dask worker installs the bridge: without this each
        # freshly forked process would import distributed (about 0.15 s of CPU).
        preload_bridge()

    gc.collect()
    gc.freeze()
    channel = Channel(socket.socket(fileno=fd))
    Zygote(channel, spare=spare).serve()
    return 0


# -- the client, in the supervisor's process -----------------------------------------------

class ZygoteUnavailable(RuntimeError):
    """The zygote could not fork a try's process (it died and could not be restarted)."""


@dataclass
class ChildProcess:
    """A try's process as its supervisor sees it."""

    pid: int
    channel: Channel
    exited: threading.Event
    status: int | None = None
    #: Called (from the client's reader thread) once ``exited`` is set.
    notify: Callable[[], None] | None = None

    def mark_exited(self, status: int | None) -> None:
        self.status = status
        self.exited.set()
        if self.notify is not None:
            self.notify()


class ZygoteClient:
    """Starts and talks to one zygote; thread-safe. Restarts it if it dies."""

    def __init__(self, *, spare: bool = True, name: str = "updraft-zygote",
                 dask: bool = False) -> None:
        self.spare = spare
        self.dask = dask
        self.name = name
        self._lock = threading.Lock()
        self._channel: Channel | None = None
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, list] = {}  # request id -> [Event, pid, fd]
        self._children: dict[int, ChildProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._forgotten: set[int] = set()
        self._warming: tuple[str, float] | None = None
        self._poisoned: set[tuple[str, float]] = set()
        self._closed = False
        self.starts = 0
        #: Grows each time the zygote parsed something new (a DAG or a new version of one).
        self.generation = 0
        #: Files the zygote parsed ahead, with the error if the parse failed (None: it
        #: worked).
        self.warmed: dict[str, str | None] = {}

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote (if not running). Blocks only for the process to start."""
        with self._lock:
            self._start_locked()

    def _start_locked(self) -> None:
        if self._closed:
            raise ZygoteUnavailable("the zygote client is closed")
        if self._process is not None and self._process.poll() is None and \
                self._channel is not None and not self._channel.closed:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        args = [sys.executable, "-m", "updraft.isolation.zygote", str(theirs.fileno())]
        if not self.spare:
            args.append("nospare")
        if self.dask:
            args.append("dask")
        try:
            self._process = subprocess.Popen(args, pass_fds=[theirs.fileno()],
                                             stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            theirs.close()
        self._channel = Channel(ours)
        self.starts += 1
        if self._poisoned:
            self._channel.send(("poison", sorted(self._poisoned)))
        self._reader = threading.Thread(target=self._read, args=(self._channel, self._process),
                                        name=f"{self.name}-reader", daemon=True)
        self._reader.start()

    def close(self) -> None:
        """Stop the zygote (it kills the children it still has) and wait for it."""
        with self._lock:
            self._closed = True
            channel, process = self._channel, self._process
            self._channel = None
        if channel is not None:
            channel.close()
        if process is not None:
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- requests --------------------------------------------------------------------------

    def fork(self, ref: DagRef | None, timeout: float = 30.0) -> ChildProcess:
        """A new try's process (from the spare when there is one); warms ``ref`` after."""
        for attempt in range(2):
            event = threading.Event()
            with self._lock:
                self._start_locked()
                request_id = next(self._ids)
                entry = [event, None, None]
                self._pending[request_id] = entry
                channel = self._channel
            try:
                channel.send(("fork", request_id, tuple(ref) if ref else None))
            except OSError:
                entry[1] = None
            else:
                event.wait(timeout)
            with self._lock:
                self._pending.pop(request_id, None)
            pid, fd = entry[1], entry[2]
            if pid is not None and fd is not None:
                child = ChildProcess(pid, Channel(socket.socket(fileno=fd)), threading.Event())
                with self._lock:
                    self._children[pid] = child
                    status = self._early_exits.pop(pid, None)
                if status is not None:
                    child.mark_exited(status)
                return child
            if attempt == 0:
                log.warning("the zygote did not fork a try's process; starting it again")
        raise ZygoteUnavailable("the zygote could not fork a process for the try")

    def warm(self, refs: list[DagRef]) -> None:
        """Have the zygote parse these DAGs ahead (best effort, never blocks long)."""
        if not refs:
            return
        with self._lock:
            self._start_locked()
            channel = self._channel
        try:
            channel.send(("warm", [tuple(ref) for ref in refs]))
        except OSError:
            log.debug("could not ask the zygote to warm DAGs", exc_info=True)

    def forget(self, pid: int) -> None:
        """The supervisor is done with child ``pid`` (its exit, if still to come, is
        not reported)."""
        with self._lock:
            child = self._children.pop(pid, None)
            if child is not None and not child.exited.is_set():
                self._forgotten.add(pid)
        if child is not None:
            child.channel.close()

    # -- the reader thread -----------------------------------------------------------------

    def _read(self, channel: Channel, process: subprocess.Popen) -> None:
        try:
            while True:
                message, fds = channel.recv()
                self._on_message(message, fds)
        except (EOFError, OSError):
            pass
        except Exception:  # noqa: BLE001
            log.exception("reading from the zygote failed")
        self._on_zygote_gone(channel, process)

    def _on_message(self, message: Any, fds: list[int]) -> None:
        kind = message[0]
        if kind == "forked":
            _kind, request_id, pid = message
            with self._lock:
                entry = self._pending.get(request_id)
            if entry is None:  # the requester gave up: the child sees end of file
                for fd in fds:
                    os.close(fd)
                return
            entry[1], entry[2] = pid, (fds[0] if fds else None)
            entry[0].set()
        elif kind == "exited":
            _kind, pid, status = message
            with self._lock:
                child = self._children.get(pid)
                if child is None and pid not in self._forgotten:
                    self._early_exits[pid] = status
                self._forgotten.discard(pid)
            if child is not None:
                child.mark_exited(status)
        elif kind == "warming":
            self._warming = (message[1], message[2])
        elif kind == "warmed":
            self._warming = None
            self.warmed[message[1]] = message[2]
            if message[2] is None:
                # Processes forked before this parse lack it: they are not reused.
                self.generation += 1
            if message[2]:
                log.info("the zygote could not parse %s ahead: %s", message[1], message[2])
        elif kind == "tainted":
            log.warning("DAG file %s started a thread while being parsed; the zygote will "
                        "not parse it ahead again (its tries parse it themselves)", message[1])
            self._poisoned.add((message[1], message[2]))
            self._warming = None

    def _on_zygote_gone(self, channel: Channel, process: subprocess.Popen) -> None:
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        if self._warming is not None:
            fileloc = self._warming[0]
            log.warning("the zygote died (%s) while parsing %s ahead; that file will be parsed "
                        "by each try's own process instead", _describe(process.returncode),
                        fileloc)
            self._poisoned.add(self._warming)
            self._warming = None
        elif not self._closed:
            log.warning("the zygote died (%s); it is started again for the next try",
                        _describe(process.returncode))
        with self._lock:
            if self._channel is channel:
                self._channel = None
            pending = list(self._pending.values())
            orphans = list(self._children.values())
        for entry in pending:
            entry[0].set()
        # Its children die with it (parent-death signal); nobody will report their status.
        for child in orphans:
            child.mark_exited(None)


def _describe(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        from updraft.isolation.limits import signal_name

        return f"signal {-returncode} ({signal_name(-returncode)})"
    return f"exit code {returncode}"


if __name__ == "__main__":
    sys.exit(main())
