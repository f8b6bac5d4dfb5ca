"""An external Dask cluster for tests and benchmarks: ``dask scheduler`` and ``dask worker``
processes started the way dask-kubernetes, dask-jobqueue or Coiled start them.

Each worker runs in a working directory of its own, with its own ``UPDRAFT_HOME`` (so its
own bundle cache) and no DAGs folder; with ``hide_dags`` it runs under ``unshare --mount``
with an empty tmpfs over that folder, so it provably cannot read it. Workers are stopped by
their pid (SIGKILL for a crash, SIGTERM for a graceful leave), never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import services

from executors.dask_identity import worker_addresses

BIN = Path(sys.executable).parent


def can_hide_folders() -> bool:
    """True if ``unshare --mount`` works here (root on Linux)."""
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


@dataclass
class DaskProcesses:
    workdir: Path
    env: dict[str, str]
    threads: int = 4
    hide_dags: Path | None = None
    address: str = ""
    scheduler: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    _count: int = 0

    def start_scheduler(self, timeout: float = 60.0) -> str:
        port = services.free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        log = open(self.workdir / "dask-scheduler.log", "ab")  # noqa: SIM115
        self.scheduler = subprocess.Popen(
            [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            cwd=self.workdir, start_new_session=True)
        deadline = time.monotonic() + timeout
        while services.tcp_reason("127.0.0.1", port) is not None:
            if self.scheduler.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dask scheduler did not start: " + (
                    self.workdir / "dask-scheduler.log").read_text()[-2000:])
            time.sleep(0.1)
        return self.address

    def add_worker(self) -> str:
        """Start one ``dask worker`` (its name is returned); it joins in a few seconds."""
        self._count += 1
        name = f"w{self._count}"
        home = self.workdir / name
        home.mkdir(parents=True, exist_ok=True)
        env = dict(self.env, UPDRAFT_HOME=str(home))
        command = [str(BIN / "dask"), "worker", self.address, "--nthreads", str(self.threads),
                   "--nworkers", "1", "--no-dashboard", "--name", name,
                   "--local-directory", str(home / "dask")]
        if self.hide_dags is not None:
            quoted = " ".join(f"'{part}'" for part in command)
            command = ["unshare", "--mount", "sh", "-c",
                       f"mount -t tmpfs none '{self.hide_dags}' && exec {quoted}"]
        log = open(home / "worker.log", "ab")  # noqa: SIM115
        self.workers[name] = subprocess.Popen(command, env=env, stdout=log,
                                              stderr=subprocess.STDOUT, cwd=home,
                                              start_new_session=True)
        return name

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.workers.pop(name)
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def wait_workers(self, count: int, timeout: float = 120.0) -> None:
        """Wait until the Dask scheduler has ``count`` workers."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            deadline = time.monotonic() + timeout
            while len(worker_addresses(client)) != count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster did not reach {count} workers")
                time.sleep(0.2)

    def stop(self) -> None:
        for name in list(self.workers):
            self.kill_worker(name, signal.SIGTERM)
        if self.scheduler is not None and self.scheduler.poll() is None:
            os.killpg(self.scheduler.pid, signal.SIGTERM)
            try:
                self.scheduler.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.scheduler.pid, signal.SIGKILL)


__all__ = ["DaskProcesses", "can_hide_folders"]
