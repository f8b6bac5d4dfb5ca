"""``updraft standalone``: everything on one machine, in one process tree, for trying Updraft.

It starts, in order, with a progress line for each step: an embedded nats-server with
JetStream (store under ``$UPDRAFT_HOME/nats``), the SQLite store (migrated), an ``admin``
user (its random password printed once and kept in ``$UPDRAFT_HOME/standalone_admin_password.txt``,
mode 0600), the scheduler with the Dask executor (a LocalCluster whose dashboard listens on
127.0.0.1), its bus node and a triggerer for deferred tasks, and the web server (waitress) on
127.0.0.1:8080. The example DAGs are loaded (``[core] load_examples``) next to
``$UPDRAFT_HOME/dags``. Ctrl-C or SIGTERM stops everything in the reverse order, printing how
long each step took.

It wires every node package together, so it lives in the composition root: the web node
itself never imports the scheduler or the executors. ``--executor`` takes any executor
registered in the entry-point group ``updraft.executors``.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import click

from executors import EXECUTORS, get_executor

PASSWORD_FILE = "standalone_admin_password.txt"
DASK_NODE_ID = "dask-localcluster-standalone"


def _step(number: int, total: int, text: str) -> None:
    click.echo(click.style(f"[{number}/{total}] ", fg="cyan") + text)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _setdefault_env(name: str, value: str) -> None:
    """Set a configuration variable unless the user already chose a value."""
    if name not in os.environ:
        os.environ[name] = value


def ensure_admin(home: Path) -> tuple[str, str | None]:
    """Create the ``admin`` user once; returns (message, new password or None)."""
    from updraft.store.engine import session_scope
    from web.auth.users import create_user, generate_password, get_user

    path = home / PASSWORD_FILE
    with session_scope() as session:
        if get_user(session, "admin") is not None:
            where = f" (first password kept in {path})" if path.exists() else ""
            return f"user admin exists{where}", None
        password = generate_password()
        create_user(session, "admin", password, "Admin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)
    return f"user admin created (password saved in {path}, mode 0600)", password


def _record_dask_node(link: str | None, state: str = "running") -> None:
    """Show the LocalCluster (and its dashboard link) on the health page."""
    from updraft.store.engine import session_scope
    from updraft.store.nodes import record_node

    with session_scope() as session:
        record_node(session, DASK_NODE_ID, "dask", state,
                    {"dashboard_link": link} if link else {})


@click.command("standalone")
@click.option("--host", default=None, help="Address of the web server (default: [web] host).")
@click.option("--port", type=int, default=None, help="Port of the web server (default: [web] port).")
@click.option("--threads", type=int, default=32, show_default=True,
              help="Web server threads (each open live page holds one).")
@click.option("--executor", "executor_name", default="dask", show_default=True,
              type=click.Choice(sorted(EXECUTORS)),
              help="Where tasks run: a registered executor (nats_queue also needs "
                   "`updraft worker` processes on this NATS).")
@click.option("--no-examples", is_flag=True, help="Do not load the example DAGs.")
def standalone(host: str | None, port: int | None, threads: int, executor_name: str,
               no_examples: bool) -> None:
    """Run NATS, the store, the scheduler, Dask and the web UI on this machine."""
    logging.basicConfig(level=logging.WARNING,
                        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    # Dask logs every worker's start and stop at INFO; the progress lines say what matters.
    logging.getLogger("distributed").setLevel(logging.WARNING)
    from updraft.config import conf, updraft_home

    home = updraft_home()
    home.mkdir(parents=True, exist_ok=True)
    total = 6
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    cleanup: list[tuple[str, callable]] = []
    try:
        # 1. NATS
        from bus.embedded import EmbeddedNatsServer

        _step(1, total, f"NATS: starting the embedded nats-server (JetStream in {home / 'nats'})")
        nats = EmbeddedNatsServer(home / "nats", sync_always=True,
                                  log_file=home / "nats-server.log").start()
        cleanup.append(("NATS", nats.stop))
        os.environ["UPDRAFT__NATS__SERVERS"] = nats.url
        if not no_examples:
            _setdefault_env("UPDRAFT__CORE__LOAD_EXAMPLES", "true")
        conf.reload()
        (conf.dags_folder()).mkdir(parents=True, exist_ok=True)
        click.echo(f"      listening on {nats.url}")

        # 2. the store
        from updraft.store.migrate import migrate

        url = conf.sql_alchemy_conn()
        _step(2, total, f"Store: migrating {url}")
        migrate(url)

        # 3. the admin user
        _step(3, total, "Users: checking the admin user")
        message, password = ensure_admin(home)
        click.echo(f"      {message}")

        # 4. the scheduler and its executor (a Dask LocalCluster by default)
        _step(4, total, f"Scheduler: starting with the {executor_name} executor; DAGs from "
              f"{conf.dags_folder()}" + ("" if no_examples else " and the examples"))
        from bus.node import start_scheduler_bus
        from scheduler.core import Scheduler

        executor = get_executor(executor_name)
        scheduler = Scheduler(executor)
        node = start_scheduler_bus(scheduler, wait=5.0)
        failure: list[BaseException] = []

        def run_scheduler() -> None:
            try:
                scheduler.run()
            except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
                failure.append(exc)
                stop.set()

        scheduler_thread = threading.Thread(target=run_scheduler, name="updraft-scheduler",
                                            daemon=True)
        scheduler_thread.start()

        def stop_scheduler() -> None:
            scheduler.stop()
            scheduler_thread.join(60)
            if node is not None:
                node.stop()
            from scheduler.node import stop_helper_processes

            stop_helper_processes()

        cleanup.append(("scheduler and executor", stop_scheduler))
        # The triggerer (ADR 11): deferred tasks' triggers on one event loop, in a thread;
        # it nudges this scheduler directly when it wakes deferred tasks.
        from triggerer.node import Triggerer

        triggerer = Triggerer(bus=_DirectNudge(scheduler))
        triggerer_thread = threading.Thread(target=triggerer.run, name="updraft-triggerer",
                                            daemon=True)
        triggerer_thread.start()

        def stop_triggerer() -> None:
            triggerer.stop()
            triggerer_thread.join(30)

        cleanup.append(("triggerer", stop_triggerer))
        click.echo("      triggerer running: deferred tasks wait there, holding no slot")
        link = _wait_for_executor(executor, stop, failure)
        if executor_name == "dask":
            _step(5, total, "Dask: LocalCluster up" + (f", dashboard {link}" if link else ""))
            _record_dask_node(link)
            cleanup.append(("Dask node record", lambda: _record_dask_node(link, "stopped")))
        else:
            _step(5, total, f"Executor {executor_name} up")

        # 6. the web server
        from waitress.server import create_server

        from web.app import create_app

        host = host or conf.get("web", "host")
        port = port if port is not None else conf.getint("web", "port")
        if not _port_free(host, port):
            raise click.ClickException(f"port {port} on {host} is in use: stop what uses it or "
                                       "pass --port")
        _step(6, total, f"Web: serving on http://{host}:{port}/")
        server = create_server(create_app(), host=host, port=port, threads=threads,
                               ident="updraft")
        web_thread = threading.Thread(target=server.run, name="updraft-web", daemon=True)
        web_thread.start()
        cleanup.append(("web server", server.close))
        from web.heartbeat import WebHeartbeat

        heartbeat = WebHeartbeat(f"http://{host}:{port}/").start()
        cleanup.append(("web node record", heartbeat.stop))

        click.echo("")
        click.echo(click.style(f"Updraft is running: http://{host}:{port}/", fg="green",
                               bold=True))
        if password is not None:
            click.echo(f"Log in as admin with password: {click.style(password, bold=True)}")
            click.echo("(shown once; it is also in "
                       f"{home / PASSWORD_FILE}, readable by you only)")
        else:
            click.echo(f"Log in as admin ({message}).")
        click.echo("Press Ctrl-C to stop.")
        last_beat = time.monotonic()
        while not stop.wait(1.0):
            if executor_name == "dask" and time.monotonic() - last_beat > 15:
                last_beat = time.monotonic()
                try:
                    _record_dask_node(link)
                except Exception:  # the health page shows the node as silent
                    logging.getLogger(__name__).debug("dask heartbeat failed", exc_info=True)
        if failure:
            raise click.ClickException(f"the scheduler stopped: {failure[0]!r}")
    finally:
        if cleanup:
            click.echo("\nStopping Updraft...")
        for name, action in reversed(cleanup):
            began = time.monotonic()
            try:
                action()
            except Exception as exc:  # noqa: BLE001  (stop the rest anyway)
                click.echo(f"      {name} did not stop cleanly: {exc}", err=True)
            else:
                click.echo(f"      stopped {name} ({time.monotonic() - began:.1f} s)")
        try:
            from bus.connection import close_shared_bus

            close_shared_bus()
        except Exception:
            logging.getLogger(__name__).debug("closing the bus failed", exc_info=True)
        if cleanup:
            click.echo("Stopped.")
        sys.stdout.flush()


class _DirectNudge:
    """The triggerer's bus in one process: its nudge wakes the scheduler at once."""

    def __init__(self, scheduler) -> None:
        self.scheduler = scheduler

    def publish(self, _subject: str, _data: bytes) -> None:
        self.scheduler.wake()


def _wait_for_executor(executor, stop: threading.Event, failure: list,
                       timeout: float = 120.0) -> str | None:
    """Wait until the scheduler has started its executor; the Dask dashboard link if any."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if failure:
            raise click.ClickException(f"the scheduler failed to start: {failure[0]!r}")
        client = getattr(executor, "client", None)
        if client is not None:
            try:
                return client.dashboard_link
            except Exception:  # noqa: BLE001  (no dashboard configured)
                return None
        if getattr(executor, "name", "") != "dask" and getattr(executor, "_started", True):
            return None
        time.sleep(0.2)
    if not stop.is_set():
        raise click.ClickException(f"the executor did not start within {timeout:g} s")
    return None
