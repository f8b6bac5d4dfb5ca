"""Fixtures of the chaos suite (``harness.py`` does the work).

- ``nats_server``: a private nats-server for the test (stop/kill/restart it freely).
- ``pg_server``: a private PostgreSQL cluster for the session (``initdb`` on a free port);
  a test may stall, crash or stop it: the next ``pg_url`` brings it back.
- ``pg_url``: a new, empty database on ``pg_server``.
- ``chaos``: a factory of ``ChaosEnv`` (``chaos(store_url=..., nats=...)``); every process
  the environments started is killed by PID at teardown, and their logs are listed when a
  test fails.

The session ends with the "What survives what" table: the recovery time each case measured.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid

import harness
import pytest
import services


def _require(binary: str, what: str) -> None:
    if shutil.which(binary) is None and not os.path.exists(f"/usr/lib/postgresql/15/bin/{binary}"):
        services.service_unavailable(what, binary, "not reachable: the binary is not installed")


@pytest.fixture
def nats_server(tmp_path):
    """A private nats-server with JetStream on a free port of 127.0.0.1."""
    try:
        server = harness.NatsServer(tmp_path / "nats").start()
    except RuntimeError as exc:
        services.service_unavailable("NATS", "private nats-server", f"not reachable: {exc}")
    yield server
    server.kill()


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL (initdb + pg_ctl as the postgres user) for the session."""
    _require("initdb", "PostgreSQL (initdb)")
    server = harness.PostgresServer()
    try:
        server.init().start()
    except Exception as exc:  # noqa: BLE001  (reported as a missing service)
        log = server.log_path.read_text(errors="replace")[-1500:] if \
            server.log_path.exists() else ""
        server.destroy()
        services.service_unavailable("PostgreSQL", "private initdb cluster",
                                     f"not reachable: {exc} {getattr(exc, 'stderr', '')} {log}")
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def _pg_template(pg_server, tmp_path_factory):
    """A migrated database that each test's database copies."""
    url = pg_server.create_database("chaos_template")
    harness.migrated_store(url, tmp_path_factory.mktemp("pg_template_home"))
    return "chaos_template"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A migrated SQLite store that each test copies."""
    home = tmp_path_factory.mktemp("chaos_sqlite_template")
    path = home / "template.db"
    harness.migrated_store(f"sqlite:///{path}", home)
    return path


@pytest.fixture
def pg_url(pg_server, _pg_template):
    """A new, migrated database on the private PostgreSQL (brought back first if a test
    left it stalled or down)."""
    pg_server.resume()
    if not pg_server.running:
        pg_server.start()
    url = pg_server.create_database(f"chaos_{uuid.uuid4().hex[:10]}", template=_pg_template)
    yield url
    pg_server.resume()
    if not pg_server.running:
        pg_server.start()


@pytest.fixture
def chaos(tmp_path, request, _sqlite_template):
    """``chaos(name="env", **ChaosEnv options)`` -> a ChaosEnv under this test's tmp_path,
    its store migrated (a copy of a template: SQLite by default, or ``pg_url``'s)."""
    made: list[harness.ChaosEnv] = []

    def make(name: str = "env", **options) -> harness.ChaosEnv:
        if options.get("store_url") is None:
            home = tmp_path / name / "home"
            home.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_sqlite_template, home / "updraft.db")
        options.setdefault("migrated", True)
        env = harness.ChaosEnv(tmp_path / name, **options)
        made.append(env)
        return env

    yield make
    failed = getattr(request.node, "rep_call", None)
    for env in made:
        killed = env.close()
        if killed:
            print(f"[chaos] teardown killed (per PID): {killed}")
        if failed is not None and failed.failed:
            print(f"[chaos] logs of {request.node.name}: {env.logs}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def pytest_sessionstart(session):
    if not hasattr(session.config, "workerinput"):  # the controller (or a run without xdist)
        (harness.OUTPUT / "recovery.jsonl").unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # Under xdist the cases ran in worker processes: they wrote their records to the file.
    path = harness.OUTPUT / "recovery.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else harness.recovery_records()
    if not records:
        return
    terminalreporter.section("What survives what (chaos suite, measured recovery)")
    width = max(len(r["case"]) for r in records)
    for record in records:
        seconds = "n/a" if record["seconds"] is None else f"{record['seconds']:.1f} s"
        terminalreporter.write_line(f"  {record['case']:<{width}}  {seconds:>8}  "
                                    f"{record['note']}")
