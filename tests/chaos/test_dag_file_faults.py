"""Chaos: DAG files that kill their parsing process, hang, eat memory or reuse a DAG id,
under a real ``updraft scheduler`` subprocess (issue 10, items 4 to 6).

The DAGs folder holds good files and one file of each kind: ``os._exit(0)`` at import, a
segfault (``ctypes.string_at(0)``), a SIGKILL of its own process (what the out-of-memory
killer does), an allocation loop under ``[scheduler] parsing_memory_limit_mb``, a
``time.sleep(3600)``, and (dropped in later) a second file with the first one's DAG id.
Checked against the store, which is the truth:

- every good DAG is stored and runs to success when triggered; good files have no error;
- each bad file has exactly its own, precise import error;
- a good file dropped in while the hanging file is still importing is parsed promptly;
- the duplicate DAG id is reported on the second file, and the stored DAG stays with the
  first file over several parse passes;
- ``updraft dags list`` / ``list-import-errors`` (subprocesses) read the store and exit
  with their documented codes; ``--local`` parses here and survives the same files;
- no parsing process outlives the scheduler, stopped (SIGTERM) or killed (SIGKILL):
  checked by PID and process start time, never by name (other runs use the same binaries).

Recovery times are measured and printed (``-s``) in the form of the README's table.
Self-contained: this module starts and kills only the processes it started, by PID.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

UPDRAFT = str(Path(sys.executable).with_name("updraft"))
HANG_TIMEOUT = 20  # [core] dagbag_import_timeout of the scheduler: the hang outlives the rest
MEMORY_LIMIT_MB = 400

GOOD = '''
from datetime import datetime
from updraft import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def first():
        return 20

    @task
    def second(value):
        assert value == 20
        return value + 1

    second(first())
'''

# Each bad file notes the time it strikes (for the recovery figures) in MARKS/<name>.
MARK = "open({mark!r}, 'w').write(repr(__import__('time').time()))\n"
BAD = {
    "exit_zero": "import os  # dag updraft\n{mark}os._exit(0)\n",
    "segfault": "import ctypes  # dag updraft\n{mark}ctypes.string_at(0)\n",
    "oom_killed": "import os, signal  # dag updraft\n{mark}os.kill(os.getpid(), signal.SIGKILL)\n",
    "memory_hog": "hog = []  # dag updraft\n{mark}while True:\n    hog.append(bytearray(10**7))\n",
    "hangs": "import time  # dag updraft\n{mark}time.sleep(3600)\n",
}
KILLERS = ("exit_zero", "segfault", "oom_killed")

_FIGURES: list[tuple[str, str, float]] = []


def record(case: str, what: str, seconds: float) -> None:
    """Keep a measured recovery time; also hand it to the chaos harness's summary if the
    suite has one (this module does not need it)."""
    _FIGURES.append((case, what, seconds))
    print(f"\n[dag-file-faults] {case}: {what}: {seconds:.2f} s")
    try:
        import harness  # tests/chaos/harness.py, when present
    except ImportError:
        return
    recorder = getattr(harness, "record_recovery", None)
    if recorder is not None:
        try:
            recorder(case, seconds, what)
        except Exception as exc:  # noqa: BLE001  (only a summary: the figure is printed above)
            print(f"[dag-file-faults] could not add it to the chaos summary: {exc!r}")


# -- processes, known by PID -----------------------------------------------------------------------

def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (tells a process from a later one with its PID)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def alive(pid: int, started: int | None) -> bool:
    """``pid`` is still the process that started at ``started`` and has not exited (a
    zombie waiting for init to reap it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return fields[0] not in ("Z", "X") and (started is None or int(fields[19]) == started)


def children_of(pid: int) -> dict[int, int | None]:
    """The processes whose parent is ``pid`` now, with their start times."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found[int(entry)] = int(fields[19])
    return found


def kill_if_alive(pid: int, started: int | None) -> str | None:
    """SIGKILL ``pid`` if it is still that process; what it was (its command line)."""
    if not alive(pid, started):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            what = handle.read().replace(b"\0", b" ").decode(errors="replace")[:120]
        os.kill(pid, signal.SIGKILL)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return f"{pid} ({what.strip()})"


def wait_for(predicate, timeout: float = 90.0, what: str = "condition", describe=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}{extra}")
        time.sleep(0.05)


class SchedulerProcess:
    """``updraft scheduler`` in a subprocess, with the parsing processes it logs."""

    READY = re.compile(r"^\[([^\]]+)\] INFO updraft\.processor: DAG parsing process (\d+) ready",
                       re.MULTILINE)

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as handle:
            self.process = subprocess.Popen([UPDRAFT, "scheduler", "--executor", "local"],
                                            env=env, stdout=handle, stderr=subprocess.STDOUT)
        self.started = start_time(self.process.pid)
        self.parsers: dict[int, int | None] = {}  # pid -> start time
        self.others: dict[int, int | None] = {}  # other children, for the cleanup

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_times(self) -> list[tuple[float, int]]:
        """(wall time, pid) of each "parsing process ready" line, in order."""
        return [(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), int(pid))
                for stamp, pid in self.READY.findall(self.log())]

    def watch(self) -> None:
        """Note the parsing processes (by PID and start time) and other children now."""
        for _when, pid in self.ready_times():
            if pid not in self.parsers:
                self.parsers[pid] = start_time(pid)
        for pid, started in children_of(self.process.pid).items():
            if pid not in self.parsers:
                self.others.setdefault(pid, started)

    def alive_parsers(self) -> list[int]:
        return [pid for pid, started in self.parsers.items()
                if started is not None and alive(pid, started)]

    def cleanup(self) -> list[str]:
        """Kill (by PID) whatever of ours is left; what was killed."""
        killed = []
        if self.process.poll() is None:
            self.process.kill()
            killed.append(f"{self.process.pid} (the scheduler)")
        self.process.wait(30)
        # Other children (multiprocessing's resource tracker, executor workers) end a little
        # after the scheduler: give them a moment before killing them.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(
                alive(pid, started) for pid, started in self.others.items()):
            time.sleep(0.1)
        for pid, started in {**self.parsers, **self.others}.items():
            what = kill_if_alive(pid, started) if started is not None else None
            if what:
                killed.append(what)
        return killed


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def world(updraft_home, tmp_path, _sqlite_template):
    """A DAGs folder, a migrated SQLite store and the environment of the subprocesses."""
    dags, marks = tmp_path / "dags", tmp_path / "marks"
    dags.mkdir()
    marks.mkdir()
    store = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, store)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("UPDRAFT__")}
    env.update({
        "UPDRAFT_HOME": str(updraft_home),
        "PYTHONUNBUFFERED": "1",
        "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{store}",
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__PARALLELISM": "2",
        "UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT": str(HANG_TIMEOUT),
        "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "2",
        "UPDRAFT__SCHEDULER__PARSING_MEMORY_LIMIT_MB": str(MEMORY_LIMIT_MB),
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "0.5",
        # Files are parsed again when they change (the test touches them), not on a timer.
        "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
        "UPDRAFT__SCHEDULER__RECONCILE_INTERVAL": "0.5",
        "UPDRAFT__SCHEDULER__TASK_HEARTBEAT_INTERVAL": "1",
        # The bus is not what this test is about: nothing listens there, the scheduler
        # runs from the store and keeps trying in the background.
        "UPDRAFT__NATS__SERVERS": "nats://127.0.0.1:1",
    })

    class World:
        pass

    world = World()
    world.dags, world.marks, world.env, world.url = dags, marks, env, f"sqlite:///{store}"
    world.tmp = tmp_path
    return world


@pytest.fixture
def start_scheduler(world):
    started: list[SchedulerProcess] = []

    def start(**extra: str) -> SchedulerProcess:
        scheduler = SchedulerProcess({**world.env, **extra},
                                     world.tmp / f"scheduler-{len(started)}.log")
        started.append(scheduler)
        return scheduler

    yield start
    for scheduler in started:
        killed = scheduler.cleanup()
        if killed:
            print(f"[dag-file-faults] teardown killed (by PID): {killed}")


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(textwrap.dedent(source))
    os.replace(tmp, path)  # the processor never reads half a file
    return path


def write_bad(world, name: str) -> Path:
    return write(world.dags, name, BAD[name].format(mark=MARK.format(mark=str(world.marks /
                                                                               name))))


def mark_time(world, name: str) -> float | None:
    path = world.marks / name
    try:
        return float(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def touch(path: Path) -> None:
    stamp = max(time.time(), path.stat().st_mtime) + 1
    os.utime(path, (stamp, stamp))


# -- reading the store ---------------------------------------------------------------------------

def stored(url: str) -> dict[str, dict]:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    with session_scope(url) as session:
        return {r.dag_id: {"fileloc": r.fileloc, "active": r.is_active,
                           "parsed": r.last_parsed_time}
                for r in session.scalars(select(DagModel))}


def errors(url: str) -> dict[str, tuple[str, float]]:
    """``file name -> (import error, when recorded)``."""
    from updraft.store.dags import list_import_errors
    from updraft.store.engine import session_scope

    with session_scope(url) as session:
        return {Path(e.filename).name: (e.stacktrace, e.timestamp.timestamp())
                for e in list_import_errors(session)}


def run_state(url: str, dag_id: str, run_id: str) -> str | None:
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagRunModel

    with session_scope(url) as session:
        return session.scalar(select(DagRunModel.state).where(
            DagRunModel.dag_id == dag_id, DagRunModel.run_id == run_id))


def cli(world, *args: str, **extra: str) -> subprocess.Popen:
    return subprocess.Popen([UPDRAFT, *args], env={**world.env, **extra},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


# -- the tests -----------------------------------------------------------------------------------

def test_dag_files_that_kill_hang_or_collide(world, start_scheduler):
    goods = ["good_one", "good_two", "good_three"]
    for name in goods:
        write(world.dags, name, GOOD.format(dag_id=name))
    for name in BAD:
        write_bad(world, name)
    first = write(world.dags, "dup_first", GOOD.format(dag_id="shared_id"))
    folder, url = str(world.dags), world.url

    scheduler = start_scheduler()

    def describe() -> str:
        return f"errors={sorted(errors(url))} log=...{scheduler.log()[-2500:]}"

    wait_for(lambda: {*goods, "shared_id"} <= set(stored(url)), what="the good DAGs",
             describe=describe)
    wait_for(lambda: {f"{n}.py" for n in (*KILLERS, "memory_hog")} <= set(errors(url)),
             what="the killers' import errors", describe=describe)
    scheduler.watch()
    found = errors(url)
    for name in (*KILLERS, "memory_hog"):
        struck = mark_time(world, name)
        record(f"DAG file: {name}", "from the strike to its import error in the store",
               found[f"{name}.py"][1] - struck)
    # The pool was rebuilt after each death: two processes started, then one per death,
    # in the order of the deaths.
    readies = sorted(wait_for(lambda: len(scheduler.ready_times()) >= 2 + len(KILLERS)
                              and [when for when, _pid in scheduler.ready_times()],
                              timeout=30, what="the replacements", describe=describe))
    assert len(readies) == 2 + len(KILLERS), (readies, describe())
    for index, name in enumerate(sorted(KILLERS, key=lambda n: mark_time(world, n))):
        record(f"DAG file: {name}", "from the death to a new parsing process ready",
               readies[2 + index] - mark_time(world, name))

    # A new good file is picked up while the hanging file is still importing.
    wait_for(lambda: mark_time(world, "hangs"), what="the hanging file to be importing")
    assert "hangs.py" not in errors(url)
    dropped = time.time()
    write(world.dags, "late", GOOD.format(dag_id="late"))
    wait_for(lambda: "late" in stored(url), timeout=30, what="the late file", describe=describe)
    picked_up = time.time() - dropped
    assert "hangs.py" not in errors(url), "the hang ended first: the machine is too slow"
    assert time.time() - mark_time(world, "hangs") < HANG_TIMEOUT
    record("DAG file: hangs", "a new good file dropped in meanwhile, to its DAG stored",
           picked_up)

    # The same DAG id in a second file: reported there, the stored DAG stays put.
    dropped = time.time()
    second = write(world.dags, "dup_second", GOOD.format(dag_id="shared_id"))
    wait_for(lambda: "dup_second.py" in errors(url), timeout=30, what="the duplicate's error")
    record("DAG file: duplicate DAG id", "from the second file dropped in to its import error",
           errors(url)["dup_second.py"][1] - dropped)

    # Meanwhile: the CLI. It reads the store (no DAG file imported: these files would end
    # it); --local parses here, in child processes, and survives them.
    local_env = {"UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT": "3"}
    local_list = cli(world, "dags", "list", "--local", "-o", "json", **local_env)
    local_errors = cli(world, "dags", "list-import-errors", "--local", "-o", "json",
                       **local_env)

    # Every good DAG is schedulable: one runs to success through this scheduler.
    triggered = cli(world, "dags", "trigger", "good_two", "-r", "chaos_run")
    code, out, err = finish(triggered)
    assert code == 0, (out, err)
    wait_for(lambda: run_state(url, "good_two", "chaos_run") in ("success", "failed"),
             what="the run", describe=describe)
    assert run_state(url, "good_two", "chaos_run") == "success"

    def parsed_again_since(first_at, second_at):
        return lambda: (stored(url)["shared_id"]["parsed"] != first_at
                        and errors(url)["dup_second.py"][1] != second_at)

    for _ in range(3):  # several parse passes: the DAG never flips to the second file
        parsed_again = parsed_again_since(stored(url)["shared_id"]["parsed"],
                                          errors(url)["dup_second.py"][1])
        touch(first)
        touch(second)
        wait_for(parsed_again, timeout=30, what="both files parsed again")
        assert stored(url)["shared_id"]["fileloc"] == str(first)

    wait_for(lambda: "hangs.py" in errors(url), timeout=HANG_TIMEOUT + 30,
             what="the hanging file's timeout")
    scheduler.watch()

    # Each bad file has exactly its own, precise error; good files have none.
    found = {name: text for name, (text, _when) in errors(url).items()}
    assert set(found) == {f"{n}.py" for n in BAD} | {"dup_second.py"}, sorted(found)
    assert found["exit_zero.py"].startswith(
        f"the parsing process exited with code 0 while importing {folder}/exit_zero.py")
    assert found["segfault.py"].startswith(
        f"the parsing process died of signal 11 (SIGSEGV) while importing {folder}/segfault.py")
    assert found["oom_killed.py"].startswith(
        f"the parsing process died of signal 9 (SIGKILL) while importing {folder}/oom_killed.py")
    assert "\nMemoryError\n" in found["memory_hog.py"]
    assert f"may use {MEMORY_LIMIT_MB} MB of address space" in found["memory_hog.py"]
    assert "time.sleep(3600)" in found["hangs.py"]
    assert f"DagBag import timeout for {folder}/hangs.py after {HANG_TIMEOUT}s" in found["hangs.py"]
    assert found["dup_second.py"] == f"DAG id 'shared_id' is already defined in {first}"
    dags = stored(url)
    assert {d for d, row in dags.items() if row["active"]} == {*goods, "late", "shared_id"}
    assert dags["shared_id"]["fileloc"] == str(first)

    # The CLI reads what the scheduler stored; exit codes as documented in the README.
    listing = cli(world, "dags", "list", "-o", "json")
    listed_errors = cli(world, "dags", "list-import-errors", "-o", "json")
    unreadable = cli(world, "dags", "list",
                     UPDRAFT__DATABASE__SQL_ALCHEMY_CONN="postgresql://x@127.0.0.1:1/x")
    code, out, err = finish(listing)
    assert code == 0, err
    assert {(r["dag_id"], r["fileloc"]) for r in json.loads(out)} == {
        *((name, f"{folder}/{name}.py") for name in (*goods, "late")),
        ("shared_id", str(first))}
    code, out, err = finish(listed_errors)
    assert code == 1, err
    assert {Path(r["filepath"]).name: r["error"] for r in json.loads(out)} == found
    code, out, err = finish(unreadable)
    assert code == 3 and "cannot reach the store" in err, (code, err)
    code, out, err = finish(local_list)
    assert code == 0, err
    assert {r["dag_id"] for r in json.loads(out)} == {*goods, "late", "shared_id"}
    code, out, err = finish(local_errors)
    assert code == 1, err
    local = {Path(r["filepath"]).name: r["error"] for r in json.loads(out)}
    assert set(local) == set(found)
    for name in (*KILLERS, "dup_second"):
        assert local[f"{name}.py"] == found[f"{name}.py"]
    assert "DagBag import timeout" in local["hangs.py"] and "after 3s" in local["hangs.py"]

    # A stopped scheduler leaves no parsing process behind.
    scheduler.watch()
    parsers = dict(scheduler.parsers)
    assert len(parsers) >= 2 + len(KILLERS), parsers  # two, and one more per death
    stopping = time.monotonic()
    scheduler.process.send_signal(signal.SIGTERM)
    wait_for(lambda: not scheduler.alive_parsers(), timeout=30,
             what="the parsing processes to end", describe=lambda: scheduler.alive_parsers())
    record("scheduler stopped (SIGTERM)", "to its last parsing process gone",
           time.monotonic() - stopping)
    assert scheduler.process.wait(60) == 0
    assert not scheduler.alive_parsers()
    _print_figures()


def test_parsing_processes_die_with_a_killed_scheduler(world, start_scheduler):
    write(world.dags, "good", GOOD.format(dag_id="good"))
    write_bad(world, "hangs")
    scheduler = start_scheduler(UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT="120")
    wait_for(lambda: "good" in stored(world.url), what="the good DAG",
             describe=lambda: scheduler.log()[-2000:])
    wait_for(lambda: mark_time(world, "hangs"), what="the hanging file to be importing")
    wait_for(lambda: len(scheduler.ready_times()) == 2, what="both parsing processes")
    scheduler.watch()
    assert len(scheduler.alive_parsers()) == 2, (scheduler.parsers, scheduler.log()[-2000:])
    killed = time.monotonic()
    os.kill(scheduler.process.pid, signal.SIGKILL)  # the scheduler alone, by its PID
    scheduler.process.wait(30)
    wait_for(lambda: not scheduler.alive_parsers(), timeout=10,
             what="the parsing processes to die with the scheduler",
             describe=lambda: scheduler.alive_parsers())
    record("scheduler killed (SIGKILL)", "to its last parsing process gone (one was importing "
           "a hanging file)", time.monotonic() - killed)


def _print_figures() -> None:
    print("\n| case | measured | seconds |")
    print("|---|---|---|")
    for case, what, seconds in _FIGURES:
        print(f"| {case} | {what} | {seconds:.2f} |")
