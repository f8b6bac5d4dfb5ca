"""The DAG processor and its parsing processes against real files, real child processes and
a real store: DAG files that kill their parsing process, hang, eat memory or reuse another
file's DAG id; the store-level rule that keeps a DAG id with its first file; and
``updraft dags list`` / ``list-import-errors`` reading the store (``--local`` parsing here).

Each check reads the store. The processor runs synchronously (``process_once``) except
where the point is that one file does not hold up another.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

GOOD = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    EmptyOperator(task_id="{task_id}")
'''

# Every killer mentions "dag" and "updraft" so that safe mode lists it.
KILLERS = {
    "exit_zero": "import os\nos._exit(0)  # dag updraft\n",
    "segfault": "import ctypes\nctypes.string_at(0)  # dag updraft\n",
    "oom_killed": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)  # dag updraft\n",
    "memory_hog": "hog = []  # dag updraft\nwhile True:\n    hog.append(bytearray(10**7))\n",
}


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    tmp = folder / f".{name}.tmp"
    tmp.write_text(textwrap.dedent(source))
    os.replace(tmp, path)
    return path


def touch(path: Path) -> None:
    """A new mtime, so the processor parses the file again."""
    stamp = time.time() + 1
    os.utime(path, (stamp, max(stamp, path.stat().st_mtime + 1)))


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    """A DAGs folder, a migrated SQLite store and fast parsing settings; the folder."""
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    for name, value in {
        "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{path}",
        "UPDRAFT__CORE__DAGS_FOLDER": str(dags),
        "UPDRAFT__CORE__LOAD_EXAMPLES": "false",
        "UPDRAFT__CORE__DAGS_ARE_PAUSED_AT_CREATION": "false",
        "UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT": "20",
        "UPDRAFT__SCHEDULER__PARSING_PROCESSES": "2",
        "UPDRAFT__SCHEDULER__DAG_DIR_LIST_INTERVAL": "0.2",
        "UPDRAFT__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "600",
        "UPDRAFT__SCHEDULER__PARSING_MEMORY_LIMIT_MB": "400",
    }.items():
        monkeypatch.setenv(name, value)
    conf.reload()
    return dags


@pytest.fixture
def processor(env):
    from scheduler.processor import DagFileProcessor

    made = []

    def make(**kwargs):
        made.append(DagFileProcessor(str(env), include_examples=False, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.stop()


def stored() -> dict:
    """``dag_id -> (fileloc, is_active)`` of every stored DAG."""
    from sqlalchemy import select

    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    with session_scope() as session:
        return {r.dag_id: (r.fileloc, r.is_active)
                for r in session.execute(select(DagModel.dag_id, DagModel.fileloc,
                                                DagModel.is_active))}


def import_errors() -> dict[str, str]:
    """``file name -> stored import error``."""
    from updraft.store.dags import list_import_errors
    from updraft.store.engine import session_scope

    with session_scope() as session:
        return {Path(e.filename).name: e.stacktrace for e in list_import_errors(session)}


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


# -- item 4: a file that kills its parsing process fails only itself -----------------------------

def test_each_killer_file_gets_its_own_error_and_the_good_files_none(env, processor):
    for name, source in KILLERS.items():
        write(env, name, source)
    for name in ("good_one", "good_two", "good_three"):
        write(env, name, GOOD.format(dag_id=name, task_id="t"))
    job = processor()
    job.process_once(timeout=120)

    assert {d: active for d, (_f, active) in stored().items()} == {
        "good_one": True, "good_two": True, "good_three": True}
    errors = import_errors()
    assert set(errors) == {f"{name}.py" for name in KILLERS}
    folder = str(env)
    assert errors["exit_zero.py"].startswith(
        f"the parsing process exited with code 0 while importing {folder}/exit_zero.py")
    assert errors["segfault.py"].startswith(
        f"the parsing process died of signal 11 (SIGSEGV) while importing {folder}/segfault.py")
    assert errors["oom_killed.py"].startswith(
        f"the parsing process died of signal 9 (SIGKILL) while importing {folder}/oom_killed.py")
    assert "out-of-memory killer" in errors["oom_killed.py"]
    hog = errors["memory_hog.py"]
    assert "hog.append(bytearray(10**7))" in hog and "\nMemoryError\n" in hog
    assert "may use 400 MB of address space ([scheduler] parsing_memory_limit_mb)" in hog
    assert job.stats["deaths"] == 3
    assert len(job.pids()) == 2  # the pool was rebuilt after each death

    # The next pass parses nothing (nothing changed), and a fixed file loses its error.
    write(env, "segfault", GOOD.format(dag_id="segfault_fixed", task_id="t"))
    job.process_once(timeout=60)
    assert "segfault.py" not in import_errors()
    assert stored()["segfault_fixed"][1] is True
    pids = job.pids()
    job.close()
    assert all(gone(pid) for pid in pids)


SERIALIZED_BADLY = '''
import os
from datetime import datetime
from updraft import DAG
from updraft.operators.bash import BashOperator

class Value:  # what the DAG processor meets when it serializes the DAG, after the import
    def __str__(self):
        {action}
    __repr__ = __str__

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    BashOperator(task_id="t", bash_command="echo", env={{"A": Value()}})
'''


def test_a_file_whose_dags_break_or_kill_the_store_step_is_blamed(env, processor):
    write(env, "exits_late", SERIALIZED_BADLY.format(dag_id="late", action="os._exit(3)"))
    write(env, "raises_late", SERIALIZED_BADLY.format(dag_id="raising",
                                                      action='raise TypeError("no text")'))
    write(env, "good", GOOD.format(dag_id="good", task_id="t"))
    processor().process_once(timeout=60)
    errors = import_errors()
    assert set(errors) == {"exits_late.py", "raises_late.py"}
    assert errors["exits_late.py"].startswith(
        f"the parsing process exited with code 3 while storing the DAGs of {env}/exits_late.py")
    assert errors["raises_late.py"].startswith(
        f"storing the DAGs of {env}/raises_late.py failed: TypeError: no text")
    assert set(stored()) == {"good"}


def test_a_file_that_ignores_the_timeout_is_killed_and_blamed(env, processor, monkeypatch):
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__CORE__DAGBAG_IMPORT_TIMEOUT", "1")
    conf.reload()
    write(env, "stubborn", "import signal, time  # dag updraft\n"
                           "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})\n"
                           "time.sleep(3600)\n")
    write(env, "polite", "import time  # dag updraft\ntime.sleep(3600)\n")
    write(env, "good", GOOD.format(dag_id="good", task_id="t"))
    processor().process_once(timeout=60)
    errors = import_errors()
    assert set(errors) == {"stubborn.py", "polite.py"}
    assert re.fullmatch(
        rf"the parsing process was killed after \d+s while importing {env}/stubborn\.py: "
        r"the import took longer than \[core\] dagbag_import_timeout \(1s\) and did not "
        r"stop when interrupted", errors["stubborn.py"]), errors["stubborn.py"]
    # The DagBag's alarm stops a plain hang where it hangs, without losing the process.
    assert "time.sleep(3600)" in errors["polite.py"]
    assert last_line(errors["polite.py"]).startswith(
        "updraft.dagbag.DagImportTimeout: DagBag import timeout")
    assert stored()["good"][1] is True


def test_a_hanging_file_does_not_hold_up_new_files(env, processor):
    write(env, "hangs", "import time  # dag updraft\ntime.sleep(3600)\n")
    job = processor()
    job.start()
    wait_for(lambda: job.in_flight() == [str(env / "hangs.py")],
             what="the hanging file to be in a parsing process")
    dropped = time.monotonic()
    write(env, "late", GOOD.format(dag_id="late", task_id="t"))
    wait_for(lambda: "late" in stored(), timeout=30, what="the new file to be parsed")
    took = time.monotonic() - dropped
    assert "hangs.py" not in import_errors()  # still importing (its timeout is 20 s)
    assert took < 15, took  # not a speed check: it did not wait for the hanging file
    pids = job.pids()
    job.stop()
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=10,
             what="the parsing processes to end with the processor")


def test_helpers_next_to_the_dag_files_are_read_again(env, processor):
    (env / "helpers.py").write_text("TASK_ID = 'first'\n")
    dag_file = write(env, "uses_helper", """
        from datetime import datetime
        from helpers import TASK_ID
        from updraft import DAG
        from updraft.operators.empty import EmptyOperator

        with DAG("helped", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            EmptyOperator(task_id=TASK_ID)
        """)
    job = processor(processes=1)
    job.process_once(timeout=60)
    from updraft.store.dags import read_dag
    from updraft.store.engine import session_scope

    with session_scope() as session:
        assert list(read_dag(session, "helped").task_dict) == ["first"]
    (env / "helpers.py").write_text("TASK_ID = 'second'\n")
    touch(dag_file)
    job.process_once(timeout=60)  # the same warm process parses it again
    with session_scope() as session:
        assert list(read_dag(session, "helped").task_dict) == ["second"]


# -- item 5: one DAG id in two files -------------------------------------------------------------

def test_a_dag_id_stays_with_its_first_file(env, processor):
    first = write(env, "dup_first", GOOD.format(dag_id="shared", task_id="a"))
    job = processor()
    job.process_once(timeout=60)
    assert stored()["shared"] == (str(first), True)
    second = write(env, "dup_second", GOOD.format(dag_id="shared", task_id="b") +
                   GOOD.format(dag_id="own", task_id="c").replace("as dag", "as dag2"))
    for _ in range(3):  # several passes: nothing flips
        job.process_once(timeout=60)
        assert stored()["shared"] == (str(first), True)
        assert import_errors() == {
            "dup_second.py": f"DAG id 'shared' is already defined in {first}"}
        assert stored()["own"] == (str(second), True)  # its other DAG is stored
        touch(first)
        touch(second)
    # The stored DAG is the first file's.
    from updraft.store.dags import read_dag
    from updraft.store.engine import session_scope

    with session_scope() as session:
        assert list(read_dag(session, "shared").task_dict) == ["a"]
    # The first file drops the id: the second file gets it at once (it was waiting).
    write(env, "dup_first", GOOD.format(dag_id="renamed", task_id="a"))
    job.process_once(timeout=60)
    assert stored()["shared"] == (str(second), True)
    assert import_errors() == {}


def test_a_file_parsed_while_its_dag_id_is_freed_is_parsed_again(env, processor, monkeypatch):
    """The order a loaded machine produced: both files parse at once, the second's child
    finds the id still held, then the first file's outcome frees it (marked inactive)
    before the second's outcome is handled. The second file is parsed again and gets it."""
    from scheduler.parsing_pool import ParsingPool

    first = write(env, "free_first", GOOD.format(dag_id="freed", task_id="a"))
    job = processor()
    job.process_once(timeout=60)
    second = write(env, "free_second", GOOD.format(dag_id="freed", task_id="b"))
    job.process_once(timeout=60)
    assert stored()["freed"] == (str(first), True)
    write(env, "free_first", GOOD.format(dag_id="other", task_id="a"))
    touch(second)
    real_poll, real_busy = ParsingPool.poll, ParsingPool.busy
    held: list = []

    def poll(self, timeout, wake=()):
        """Hold outcomes until neither file parses, then hand them over one at a time,
        the first file's first."""
        held.extend(real_poll(self, timeout, wake))
        if real_busy(self):
            return []
        held.sort(key=lambda outcome: outcome.path != str(first))
        return [held.pop(0)] if held else []

    monkeypatch.setattr(ParsingPool, "poll", poll)
    monkeypatch.setattr(ParsingPool, "busy", lambda self: bool(held) or real_busy(self))
    job._synced_at = 0.0  # the first outcome's store sync is due (as after a slow pass)
    job.process_once(timeout=60)
    assert stored()["freed"] == (str(second), True)
    assert import_errors() == {}


def test_two_new_files_with_one_dag_id_at_once(env, processor):
    a = write(env, "twin_a", GOOD.format(dag_id="twin", task_id="a"))
    b = write(env, "twin_b", GOOD.format(dag_id="twin", task_id="b"))
    job = processor()
    job.process_once(timeout=60)
    holder = stored()["twin"][0]
    other = str(b) if holder == str(a) else str(a)
    assert import_errors() == {
        Path(other).name: f"DAG id 'twin' is already defined in {holder}"}
    for _ in range(2):
        touch(a)
        touch(b)
        job.process_once(timeout=60)
        assert stored()["twin"][0] == holder


def test_write_dag_refuses_an_id_held_by_another_file(store_url):
    from updraft import DAG
    from updraft.store.dags import DagIdConflict, mark_inactive, write_dag
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    now = datetime(2024, 6, 1, tzinfo=UTC)

    def dag(fileloc: str) -> DAG:
        with DAG("held", schedule=None, start_date=datetime(2024, 1, 1)) as made:
            pass
        made.fileloc = fileloc
        return made

    with session_scope(store_url) as session:
        assert write_dag(session, dag("/dags/a.py"), file_hash="1", now=now)
    with session_scope(store_url) as session, pytest.raises(DagIdConflict) as refused:
        write_dag(session, dag("/dags/b.py"), file_hash="2", now=now)
    assert str(refused.value) == "DAG id 'held' is already defined in /dags/a.py"
    with session_scope(store_url) as session:  # a file that still exists keeps it
        with pytest.raises(DagIdConflict):
            write_dag(session, dag("/dags/b.py"), file_hash="2", now=now,
                      holder_exists=lambda path: True)
        assert session.get(DagModel, "held").fileloc == "/dags/a.py"
    with session_scope(store_url) as session:  # a gone file gives it up
        assert write_dag(session, dag("/dags/b.py"), file_hash="2", now=now,
                         holder_exists=lambda path: False) is True
    with session_scope(store_url) as session:
        assert session.get(DagModel, "held").fileloc == "/dags/b.py"
        assert mark_inactive(session, {}, now) == ["held"]
    with session_scope(store_url) as session:  # an inactive DAG's id is free
        write_dag(session, dag("/dags/c.py"), file_hash="3", now=now)
    with session_scope(store_url) as session:
        row = session.get(DagModel, "held")
        assert (row.fileloc, row.is_active) == ("/dags/c.py", True)


def test_dagbag_keeps_the_first_file_and_the_later_files_other_dags(env):
    from updraft.dagbag import DagBag

    write(env, "b_first", GOOD.format(dag_id="same", task_id="a"))
    write(env, "c_second", GOOD.format(dag_id="same", task_id="b") +
          GOOD.format(dag_id="other", task_id="c").replace("as dag", "as dag2"))
    bag = DagBag(str(env), include_examples=False)
    assert bag.dags["same"].fileloc == str(env / "b_first.py")
    assert "other" in bag.dags
    assert bag.import_errors == {
        str(env / "c_second.py"): f"DAG id 'same' is already defined in {env}/b_first.py"}


# -- item 6: the CLI reads the store -------------------------------------------------------------

def cli(*args: str):
    from click.testing import CliRunner

    from updraft.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_dags_list_and_import_errors_read_the_store(env, processor):
    write(env, "good", GOOD.format(dag_id="good", task_id="t"))
    write(env, "exit_zero", KILLERS["exit_zero"])
    empty = cli("dags", "list", "-o", "json")
    assert (empty.exit_code, json.loads(empty.stdout)) == (0, [])
    assert "Nothing stored yet" in empty.stderr and "--local" in empty.stderr
    assert cli("dags", "list-import-errors", "-o", "json").exit_code == 0
    processor().process_once(timeout=60)
    # This process imports no DAG file: the os._exit file would end it.
    listed = cli("dags", "list", "-o", "json")
    assert listed.exit_code == 0
    assert [(r["dag_id"], r["fileloc"], r["is_paused"]) for r in json.loads(listed.stdout)] == [
        ("good", str(env / "good.py"), False)]
    errors = cli("dags", "list-import-errors", "-o", "json")
    assert errors.exit_code == 1
    expected = f"the parsing process exited with code 0 while importing {env}/exit_zero.py"
    assert [(r["filepath"], r["error"].split(":")[0]) for r in json.loads(errors.stdout)] == [
        (str(env / "exit_zero.py"), expected)]
    table = cli("dags", "list-import-errors")
    assert table.exit_code == 1 and "exit_zero.py" in table.output


def test_dags_list_exits_3_when_the_store_cannot_be_read(env, monkeypatch):
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN",
                       "postgresql://nobody@127.0.0.1:1/nothing")
    conf.reload()
    for command in ("list", "list-import-errors"):
        result = cli("dags", command)
        assert result.exit_code == 3, result.output
        assert result.output.startswith("Error: cannot reach the store at postgresql")
        assert "nobody@127.0.0.1:1/nothing" in result.output and "refused" in result.output


def test_local_listing_survives_killer_files(env):
    write(env, "good", GOOD.format(dag_id="good", task_id="t"))
    write(env, "dup", GOOD.format(dag_id="good", task_id="t"))
    for name in ("exit_zero", "segfault"):
        write(env, name, KILLERS[name])
    listed = cli("dags", "list", "--local", "-o", "json")
    assert listed.exit_code == 0
    assert [(r["dag_id"], r["fileloc"]) for r in json.loads(listed.stdout)] == [
        ("good", str(env / "dup.py"))]  # "dup.py" sorts first, as in a DagBag
    errors = cli("dags", "list-import-errors", "--local", "-o", "json")
    assert errors.exit_code == 1
    found = {Path(r["filepath"]).name: r["error"] for r in json.loads(errors.stdout)}
    assert set(found) == {"good.py", "exit_zero.py", "segfault.py"}
    assert found["good.py"] == f"DAG id 'good' is already defined in {env}/dup.py"
    assert found["exit_zero.py"].startswith("the parsing process exited with code 0")
    assert found["segfault.py"].startswith("the parsing process died of signal 11 (SIGSEGV)")
    assert stored() == {}  # --local writes nothing
