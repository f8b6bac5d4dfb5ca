"""Fixtures every test shares: an isolated UPDRAFT_HOME, real databases and a NATS server.

- Every test gets its own ``UPDRAFT_HOME`` (so its own SQLite store and Fernet key) and a
  freshly reloaded ``conf``; pooled connections are closed afterwards.
- ``postgres_url`` / ``mysql_url``: an empty database created for this test session.
- ``store_url``: a migrated, emptied store on sqlite, postgres and mysql in turn, also set as
  the default store (``UPDRAFT__DATABASE__SQL_ALCHEMY_CONN``).
- ``nats_url``: a reachable NATS server (an embedded one on a laptop if none runs).

With ``CI=true`` a missing service fails the test, and the run fails if any test was skipped
because a service was "not reachable".
"""

from __future__ import annotations

import os
import shutil

import pytest
import services

_session_ref: list[pytest.Session] = []

_ISOLATED_ENV_PREFIXES = ("UPDRAFT__", "UPDRAFT_VAR_", "UPDRAFT_CONN_", "AIRFLOW_VAR_",
                          "AIRFLOW_CONN_")


@pytest.fixture(autouse=True)
def updraft_home(tmp_path, monkeypatch):
    """Give the test its own UPDRAFT_HOME and a clean configuration."""
    from updraft.config import conf
    from updraft.store.engine import dispose_engines

    home = tmp_path / "updraft_home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(_ISOLATED_ENV_PREFIXES) or name == "UPDRAFT_CONFIG":
            monkeypatch.delenv(name)
    monkeypatch.setenv("UPDRAFT_HOME", str(home))
    # A state change the transition table forbids raises (updraft/state.py), here and in
    # the nodes the test starts.
    monkeypatch.setenv("UPDRAFT__CORE__VALIDATE_STATE_TRANSITIONS", "true")
    conf.reload()
    yield home
    dispose_engines()
    try:
        from updraft.secrets import clear_masks
    except ImportError:
        pass
    else:
        clear_masks()


@pytest.fixture(scope="session")
def postgres_url():
    """URL of an empty PostgreSQL database for this test session (dropped at the end)."""
    database = services.create_test_database("postgresql")
    yield database.url
    database.drop()


@pytest.fixture(scope="session")
def mysql_url():
    """URL of an empty MariaDB/MySQL database for this test session (dropped at the end)."""
    database = services.create_test_database("mysql")
    yield database.url
    database.drop()


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory):
    """URL of a NATS server with JetStream for this test session."""
    server = services.get_nats_server(tmp_path_factory.mktemp("nats"))
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory):
    """A migrated SQLite file, copied for each test instead of migrating every time."""
    from updraft.store.engine import dispose_engines
    from updraft.store.migrate import migrate

    path = tmp_path_factory.mktemp("sqlite_template") / "template.db"
    migrate(f"sqlite:///{path}")
    dispose_engines()  # the last close checkpoints the WAL into the file
    return path


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", id="mysql", marks=pytest.mark.mysql),
])
def store_url(request, updraft_home, monkeypatch):
    """A migrated, empty store on each backend, also made the default store of the test."""
    from updraft.config import conf
    from updraft.store.migrate import migrate

    if request.param == "sqlite":
        path = updraft_home / "updraft.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
        migrate(url)
        services.empty_store(url)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", url)
    conf.reload()
    yield url


def pytest_sessionstart(session):
    _session_ref[:] = [session]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """In CI, fail the run if a test was skipped because a service was not reachable."""
    if not services.in_ci():
        return
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if "not reachable" in reason:
            reasons.append(f"{report.nodeid}: {reason}")
    if not reasons:
        return
    terminalreporter.section("services missing in CI", sep="=", red=True, bold=True)
    terminalreporter.write_line("CI=true: these tests were skipped because a service was not "
                                "reachable; CI must run them:", red=True)
    for line in reasons:
        terminalreporter.write_line(f"  {line}")
    if _session_ref:
        _session_ref[0].exitstatus = 1
