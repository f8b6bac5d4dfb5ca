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


@pytest.fixture
def pg_url(pg_server):
    """A new database on the private PostgreSQL (brought back first if a test left it
    stalled or down)."""
    pg_server.resume()
    if not pg_server.running:
        pg_server.start()
    url = pg_server.create_database(f"chaos_{uuid.uuid4().hex[:10]}")
    yield url
    pg_server.resume()
    if not pg_server.running:
        pg_server.start()


@pytest.fixture
def chaos(tmp_path, request):
    """``chaos(name="env", **ChaosEnv options)`` -> a ChaosEnv under this test's tmp_path."""
    made: list[harness.ChaosEnv] = []

    def make(name: str = "env", **options) -> harness.ChaosEnv:
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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    records = harness.recovery_records()
    if not records:
        return
    terminalreporter.section("What survives what (chaos suite, measured recovery)")
    width = max(len(r["case"]) for r in records)
    for record in records:
        seconds = "n/a" if record["seconds"] is None else f"{record['seconds']:.1f} s"
        terminalreporter.write_line(f"  {record['case']:<{width}}  {seconds:>8}  "
                                    f"{record['note']}")
