"""Parsing processes that the caller owns: one DAG file at a time each, watched one by one.

A ``ParsingPool`` keeps ``size`` warm parsing processes (started with ``spawn``: the
scheduler process runs threads and must never fork). Each process takes one file at a time
over its own pipe, imports it (``scheduler/parse_worker.py``) and answers. The caller
(one thread) calls ``poll`` in its loop, which hands queued files to idle processes and
waits on every pipe and every process sentinel, so:

- a process that dies (``os._exit``, a segfault, the out-of-memory killer) is known to
  have died while importing exactly the file it had: that file's outcome says how
  ("the parsing process exited with code 0 / died of signal 11 while importing X"), and
  no other file is touched. The process is replaced at once;
- a file still importing ``[core] dagbag_import_timeout`` (plus a short grace) after it
  was handed over has its process killed and gets an import error. The DagBag's own alarm
  normally stops the import at the timeout, with a traceback that shows where it hung;
  the kill is for code that does not let it (signals blocked, C code). Other files go on
  in the other processes meanwhile;
- memory is capped per process by ``[scheduler] parsing_memory_limit_mb`` (RLIMIT_AS).

Processes die with their owner: each asks the kernel for SIGKILL when the thread that
started it ends (``PR_SET_PDEATHSIG``), so none outlives a killed scheduler. A process is
replaced after ``max_files_per_process`` files, and after any file that left a thread
running (that thread could kill the process while it parses the next file, which would
then be blamed).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

log = logging.getLogger("updraft.processor")

STORE = "store"
"""Mode of the DAG processor: each process writes what it parsed to the store."""
REPORT = "report"
"""Mode of ``updraft dags list --local``: each process reports what it parsed; no writes."""

KILL_GRACE = 2.0
"""Seconds past the import timeout before the process is killed (the DagBag's own alarm
fires at the timeout and reports where the import hung)."""


@dataclass(frozen=True)
class ParseOutcome:
    """What became of one file handed to the pool."""

    path: str
    dag_ids: tuple[str, ...] | None
    """The DAG ids the file defines (stored, in STORE mode); None: it failed to import."""
    error: str | None = None
    """The file's import error (a traceback, a DAG id conflict, how its process died)."""
    changed: tuple[str, ...] = ()
    conflicts: Mapping[str, str] = field(default_factory=dict)
    """DAG id -> the other file that holds it (STORE mode)."""
    dags: tuple[dict, ...] = ()
    """What ``dags list`` shows of each DAG (REPORT mode)."""
    duration: float = 0.0
    unrecorded: bool = False
    """``error`` is not in the store (the process died or was killed with the file, or
    storing its DAGs failed): the owner writes it."""
    retry: str | None = None
    """Not the file's fault (the store could not be reached or was too slow): why; parse
    it again."""
    store_away: bool = False
    """``retry`` because the store could not be reached (an outage, not this file)."""


@dataclass(eq=False)
class _Parser:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    ready: bool = False
    path: str | None = None
    importing: bool = True
    handed_at: float = 0.0
    deadline: float = float("inf")
    files: int = 0

    @property
    def pid(self) -> int | None:
        return self.process.pid


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to SIGKILL this process when the thread that started it ends."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _forget_modules_under(folders: tuple[str, ...], before: set[str]) -> None:
    """Drop the modules a parse imported from the DAG folders (helpers next to the DAG
    files), so the next parse in this process sees their new content."""
    for name in set(sys.modules) - before:
        module = sys.modules.get(name)
        filename = getattr(module, "__file__", None) or ""
        if any(filename.startswith(folder) for folder in folders):
            sys.modules.pop(name, None)


def _serve(conn: Connection, options: dict[str, Any]) -> None:
    """Body of a parsing process: parse the files the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner stops us, not the terminal
    _die_with_parent(options["parent_pid"])
    try:  # let DAG files start processes of their own (daemonic processes may not)
        multiprocessing.current_process().daemon = False
    except (AssertionError, AttributeError):
        pass
    limit = options["memory_limit_mb"]
    if limit > 0:
        import resource

        wanted = limit * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    from scheduler import parse_worker

    storing = options["mode"] == STORE
    parse_worker.warm_up(storing, options["store_url"])
    folders = tuple(os.path.join(os.path.abspath(f), "") for f in options["folders"])
    conn.send(("ready", os.getpid()))
    threads = threading.active_count()
    while True:
        try:
            path = conn.recv()
        except (EOFError, OSError):  # the owner went away
            return
        if path is None:
            return
        before = set(sys.modules)
        try:
            if storing:
                result = parse_worker.parse_and_store(
                    path, options["store_url"], options["node_id"],
                    on_imported=lambda path=path: conn.send(("imported", path)))
            else:
                result = parse_worker.parse_for_report(path)
        except Exception as exc:  # noqa: BLE001  (reported to the owner)
            result = _failure(path, exc)
        result["threads_left"] = threading.active_count() - threads
        _forget_modules_under(folders, before)
        try:
            conn.send(("done", result))
        except (EOFError, OSError):
            return


def _failure(path: str, exc: Exception) -> dict:
    """What to answer when parsing ``path`` raised outside the DagBag: the store's fault
    (parse the file again later) or the file's (serializing what it defines failed)."""
    from sqlalchemy.exc import SQLAlchemyError

    from updraft.store.outage import is_store_unavailable

    text = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=8)}"
    if isinstance(exc, SQLAlchemyError | OSError):
        if is_store_unavailable(exc):
            return {"path": path, "retry": f"{type(exc).__name__}: {exc}", "store_away": True}
        return {"path": path, "retry": text}
    return {"path": path, "dag_ids": None, "unrecorded": True,
            "error": f"storing the DAGs of {path} failed: {text}"}


def describe_death(exitcode: int | None, path: str, doing: str = "importing") -> str:
    """The import error of a file whose parsing process ended while ``doing`` it."""
    if exitcode is not None and exitcode < 0:
        number = -exitcode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "an unknown signal"
        why = {signal.SIGKILL: "killed from outside the process, most often by the kernel's "
                               "out-of-memory killer",
               signal.SIGSEGV: "a crash in native code (a C extension, ctypes)",
               signal.SIGBUS: "a crash in native code (a C extension, ctypes)",
               signal.SIGABRT: "native code aborted the process"}.get(number)
        text = f"the parsing process died of signal {number} ({name}) while {doing} {path}"
        return text + (f": {why}" if why else "")
    if exitcode is None:
        return f"the parsing process vanished while {doing} {path}"
    return (f"the parsing process exited with code {exitcode} while {doing} {path}: the "
            "file (or code it imports) ended the process, e.g. with os._exit()")


class ParsingPool:
    """``size`` parsing processes, owned and watched by the one thread that calls ``poll``."""

    def __init__(self, size: int, *, mode: str = STORE, store_url: str | None = None,
                 node_id: str | None = None, import_timeout: float = 30.0,
                 memory_limit_mb: int = 0, folders: Iterable[str] = (),
                 max_files_per_process: int = 200, store_timeout: float = 120.0) -> None:
        self.size = max(1, size)
        self.import_timeout = import_timeout
        self.store_timeout = store_timeout
        self.max_files_per_process = max_files_per_process
        self._options = {"mode": mode, "store_url": store_url, "node_id": node_id,
                         "memory_limit_mb": memory_limit_mb, "parent_pid": os.getpid(),
                         "folders": [str(f) for f in folders]}
        self._context = multiprocessing.get_context("spawn")
        # In REPORT mode the caller shows every outcome: a death is no news for the log.
        self._blame_level = logging.ERROR if mode == STORE else logging.DEBUG
        self._pending: deque[str] = deque()
        self._parsers: list[_Parser] = []
        self._retired: list[_Parser] = []
        self._failed_starts = 0
        self._start_after = 0.0
        self.deaths = 0
        self.started = 0

    # -- what the owner calls --------------------------------------------------------------

    def submit(self, path: str) -> None:
        """Queue a file (the caller sends each file once until its outcome is back)."""
        self._pending.append(path)

    @property
    def queued(self) -> int:
        return len(self._pending)

    def in_flight(self) -> list[str]:
        """The files being parsed now."""
        return [p.path for p in self._parsers if p.path is not None]

    def busy(self) -> bool:
        """Files queued or being parsed."""
        return bool(self._pending) or any(p.path is not None for p in self._parsers)

    def cannot_start(self) -> bool:
        """Three starts in a row died before they were ready, and none is ready now."""
        return self._failed_starts >= 3 and not any(p.ready for p in self._parsers)

    def pids(self) -> list[int]:
        """PIDs of the parsing processes alive now."""
        return [p.pid for p in self._parsers + self._retired if p.pid is not None]

    def poll(self, timeout: float, wake: Iterable[Any] = ()) -> list[ParseOutcome]:
        """Hand queued files to idle processes, wait up to ``timeout`` seconds for an answer,
        a death, a deadline or one of ``wake`` (file descriptors); return the outcomes."""
        outcomes: list[ParseOutcome] = []
        self._start_parsers()
        self._dispatch()
        now = time.monotonic()
        until = min([now + max(timeout, 0.0)] + [p.deadline for p in self._parsers]
                    + ([self._start_after] if self._wants_parsers() else []))
        conns = {p.conn: p for p in self._parsers}
        sentinels = {p.process.sentinel: p for p in self._parsers}
        retired = {p.process.sentinel: p for p in self._retired}
        ready = wait([*conns, *sentinels, *retired, *wake], timeout=max(until - now, 0.0))
        for obj in ready:
            if obj in conns and conns[obj].process.sentinel not in ready:
                self._read(conns[obj], outcomes)
        for obj in ready:
            if isinstance(obj, int) and obj in sentinels:
                self._on_death(sentinels[obj], outcomes)
            elif isinstance(obj, int) and obj in retired:
                self._reap(retired[obj])
        self._expire(outcomes)
        self._start_parsers()
        self._dispatch()
        return outcomes

    def close(self) -> None:
        """End every process: idle ones are asked to exit; busy ones, and ones still
        starting (they would read the request only once warm), are killed."""
        self._pending.clear()
        parsers, self._parsers = self._parsers + self._retired, []
        self._retired = []
        for parser in parsers:
            if parser.ready and parser.path is None:
                try:
                    parser.conn.send(None)
                    continue
                except (OSError, ValueError):
                    pass
            parser.process.kill()
        deadline = time.monotonic() + 3.0
        for parser in parsers:
            parser.process.join(max(deadline - time.monotonic(), 0.0))
            if parser.process.is_alive():
                parser.process.kill()
                parser.process.join(2.0)
            self._close_conn(parser)

    # -- processes -------------------------------------------------------------------------

    def _wants_parsers(self) -> bool:
        return len(self._parsers) < self.size

    def _start_parsers(self) -> None:
        """Keep ``size`` processes (after a failed start, wait a little longer each time)."""
        while self._wants_parsers() and time.monotonic() >= self._start_after:
            parent_end, child_end = self._context.Pipe(duplex=True)
            process = self._context.Process(target=_serve, args=(child_end, self._options),
                                            name="updraft-dag-parser", daemon=True)
            try:
                process.start()
            except OSError as exc:
                log.error("Cannot start a DAG parsing process: %s", exc)
                self._failed_start()
                return
            finally:
                child_end.close()
            self.started += 1
            self._parsers.append(_Parser(process=process, conn=parent_end))

    def _failed_start(self) -> None:
        self._failed_starts += 1
        delay = min(30.0, 0.5 * 2 ** (self._failed_starts - 1))
        self._start_after = time.monotonic() + delay

    def _dispatch(self) -> None:
        for parser in self._parsers:
            if not self._pending:
                return
            if not parser.ready or parser.path is not None:
                continue
            path = self._pending.popleft()
            try:
                parser.conn.send(path)
            except (OSError, ValueError):  # it died: its sentinel says so
                self._pending.appendleft(path)
                continue
            now = time.monotonic()
            parser.path, parser.importing, parser.handed_at = path, True, now
            parser.deadline = now + self.import_timeout + KILL_GRACE \
                if self.import_timeout > 0 else float("inf")

    def _read(self, parser: _Parser, outcomes: list[ParseOutcome]) -> None:
        """Read every message ``parser`` has sent."""
        while True:
            try:
                if not parser.conn.poll():
                    return
                kind, body = parser.conn.recv()
            except (EOFError, OSError):  # its sentinel reports the death...
                parser.process.join(0.5)
                if parser.process.is_alive():  # ...unless it closed the pipe and lives on
                    parser.process.kill()
                return
            if kind == "ready":
                parser.ready = True
                self._failed_starts = 0
                log.log(logging.INFO if self._blame_level > logging.DEBUG else logging.DEBUG,
                        "DAG parsing process %s ready", body)
            elif kind == "imported":
                parser.importing = False
                parser.deadline = time.monotonic() + self.store_timeout
            elif kind == "done":
                outcomes.append(self._outcome(body))
                parser.path, parser.deadline = None, float("inf")
                parser.files += 1
                if parser.files >= self.max_files_per_process or body.get("threads_left", 0) > 0:
                    self._retire(parser)
                    return

    @staticmethod
    def _outcome(body: dict) -> ParseOutcome:
        if body.get("retry"):
            return ParseOutcome(body["path"], None, retry=body["retry"],
                                store_away=bool(body.get("store_away")))
        ids = body.get("dag_ids")
        return ParseOutcome(body["path"], None if ids is None else tuple(ids),
                            error=body.get("error"), changed=tuple(body.get("changed", ())),
                            conflicts=dict(body.get("conflicts", {})),
                            dags=tuple(body.get("dags", ())), duration=body.get("duration", 0.0),
                            unrecorded=bool(body.get("unrecorded")))

    def _retire(self, parser: _Parser) -> None:
        """Ask ``parser`` to exit; a new process takes its place."""
        self._parsers.remove(parser)
        try:
            parser.conn.send(None)
        except (OSError, ValueError):
            pass
        self._retired.append(parser)

    def _reap(self, parser: _Parser) -> None:
        parser.process.join(1.0)
        if parser in self._retired:
            self._retired.remove(parser)
        self._close_conn(parser)

    def _on_death(self, parser: _Parser, outcomes: list[ParseOutcome]) -> None:
        self._read(parser, outcomes)  # an answer sent just before dying still counts
        parser.process.join(1.0)
        code = parser.process.exitcode
        if parser in self._parsers:
            self._parsers.remove(parser)
        self._close_conn(parser)
        if not parser.ready:
            self._failed_start()
            log.error("A DAG parsing process (pid %s) died while starting, exit code %s; "
                      "next attempt in %.1fs", parser.pid, code,
                      self._start_after - time.monotonic())
            return
        self.deaths += 1
        path = parser.path
        if path is None:
            log.warning("DAG parsing process %s died while idle (exit code %s); replaced",
                        parser.pid, code)
            return
        # After the import, the process serializes what the file defined (user objects
        # too) and writes it: a death then is still the file's doing.
        error = describe_death(code, path, "importing" if parser.importing
                               else "storing the DAGs of")
        log.log(self._blame_level, "DAG parsing process %s: %s; replaced", parser.pid, error)
        outcomes.append(ParseOutcome(path, None, error=error, unrecorded=True))

    def _expire(self, outcomes: list[ParseOutcome]) -> None:
        now = time.monotonic()
        for parser in [p for p in self._parsers if p.path is not None and now >= p.deadline]:
            parser.process.kill()
            parser.process.join(2.0)
            self._parsers.remove(parser)
            self._close_conn(parser)
            self.deaths += 1
            path, took = parser.path, now - parser.handed_at
            if parser.importing:
                error = (f"the parsing process was killed after {took:.0f}s while importing "
                         f"{path}: the import took longer than [core] dagbag_import_timeout "
                         f"({self.import_timeout:g}s) and did not stop when interrupted")
                log.log(self._blame_level, "DAG parsing process %s: %s", parser.pid, error)
                outcomes.append(ParseOutcome(path, None, error=error, unrecorded=True))
            else:
                why = (f"the parsing process was killed after {took:.0f}s: writing {path} to "
                       f"the store took longer than {self.store_timeout:g}s")
                log.error("DAG parsing process %s: %s", parser.pid, why)
                outcomes.append(ParseOutcome(path, None, retry=why))

    @staticmethod
    def _close_conn(parser: _Parser) -> None:
        try:
            parser.conn.close()
        except OSError:
            pass


def parse_here(paths: Iterable[str], *, processes: int, import_timeout: float,
               memory_limit_mb: int = 0, folders: Iterable[str] = (),
               give_up_after: float | None = None) -> list[ParseOutcome]:
    """Parse ``paths`` in parsing processes of this process, writing nothing; return the
    outcomes in path order (``updraft dags list --local``).

    As in a DagBag, a DAG id that an earlier file (in path order) defines is refused in the
    later file: it becomes that file's import error and its other DAGs stay.
    """
    from updraft.dagbag import duplicate_dag_id_message

    paths = sorted(dict.fromkeys(str(p) for p in paths))
    if not paths:
        return []
    pool = ParsingPool(min(processes, len(paths)), mode=REPORT, import_timeout=import_timeout,
                       memory_limit_mb=memory_limit_mb, folders=folders)
    by_path: dict[str, ParseOutcome] = {}
    started = time.monotonic()
    try:
        for path in paths:
            pool.submit(path)
        while len(by_path) < len(paths):
            for outcome in pool.poll(1.0):
                if outcome.retry:
                    outcome = ParseOutcome(outcome.path, None, error=outcome.retry)
                by_path[outcome.path] = outcome
            if pool.cannot_start():
                raise RuntimeError("the DAG parsing processes do not start (see the log above)")
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise TimeoutError(f"parsing took longer than {give_up_after:g}s")
    finally:
        pool.close()
    holders: dict[str, str] = {}
    merged = []
    for path in paths:
        outcome = by_path[path]
        taken = sorted(d for d in outcome.dag_ids or () if holders.get(d, path) != path)
        for dag_id in outcome.dag_ids or ():
            holders.setdefault(dag_id, path)
        if taken:
            error = "\n".join(duplicate_dag_id_message(d, holders[d]) for d in taken)
            outcome = ParseOutcome(
                path, tuple(d for d in outcome.dag_ids if d not in taken), error=error,
                conflicts={d: holders[d] for d in taken},
                dags=tuple(d for d in outcome.dags if d["dag_id"] not in taken),
                duration=outcome.duration)
        merged.append(outcome)
    return merged


__all__ = ["REPORT", "STORE", "ParseOutcome", "ParsingPool", "describe_death", "parse_here"]
