"""The Dask cluster an Updraft scheduler owns: a ``dask scheduler`` and ``dask worker``
processes on this machine, started, watched, restarted and stopped by the executor.

Each process runs Dask's own command line (``python -m dask scheduler|worker``) with
``executors.dask_preload``, which kills it when the Updraft scheduler that started it is
gone, even after a SIGKILL. Their output goes to log files in the cluster's folder
(``$UPDRAFT_HOME/dask/<id>``, also the workers' scratch space), not to the terminal, and
the folder is removed when the cluster stops; folders left by a killed scheduler are
removed by the next one. Workers run without a nanny: the executor itself starts a worker
again when one dies, and starts the scheduler again, on the same address, when it dies.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT = 60.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class LocalDaskProcesses:
    """A scheduler and ``n_workers`` worker processes (see the module docstring)."""

    def __init__(self, *, n_workers: int, threads_per_worker: int,
                 dashboard_address: str | None, home: Path | None = None,
                 worker_resources: str | None = None) -> None:
        from updraft.config import updraft_home

        self.n_workers = n_workers
        self.threads_per_worker = threads_per_worker
        self.dashboard_address = dashboard_address
        self.worker_resources = worker_resources
        base = (home or updraft_home()) / "dask"
        base.mkdir(parents=True, exist_ok=True)
        self._remove_stale(base)
        self.folder = base / f"cluster-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir()
        (self.folder / "owner.pid").write_text(str(os.getpid()))
        self.scheduler: subprocess.Popen | None = None
        self.workers: dict[int, subprocess.Popen] = {}
        self._retiring: dict[int, subprocess.Popen] = {}
        self.address: str | None = None
        self.restarts = {"scheduler": 0, "workers": 0}

    @staticmethod
    def _remove_stale(base: Path) -> None:
        for folder in base.glob("cluster-*"):
            try:
                owner = int((folder / "owner.pid").read_text().strip())
            except (OSError, ValueError):
                owner = None
            if owner is None or not _pid_alive(owner):
                shutil.rmtree(folder, ignore_errors=True)

    # -- processes -------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["UPDRAFT_DASK_PARENT"] = str(os.getpid())
        # Scratch space (the scheduler's too) in the cluster's folder, removed with it.
        env["DASK_TEMPORARY_DIRECTORY"] = str(self.folder)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        with open(self.folder / log_name, "ab") as handle:
            return subprocess.Popen([sys.executable, "-m", "dask", *args], env=self._env(),
                                    stdin=subprocess.DEVNULL, stdout=handle,
                                    stderr=subprocess.STDOUT, cwd=self.folder)

    def start(self) -> str:
        """Start the scheduler and the workers; return the scheduler's address."""
        self._start_scheduler(port=0)
        for index in range(self.n_workers):
            self._start_worker(index)
        return self.address

    def _start_scheduler(self, port: int) -> None:
        scheduler_file = self.folder / "scheduler.json"
        scheduler_file.unlink(missing_ok=True)
        args = ["scheduler", "--host", "127.0.0.1", "--port", str(port),
                "--scheduler-file", str(scheduler_file), "--preload",
                "executors.dask_preload"]
        if self.dashboard_address:
            args += ["--dashboard-address", str(self.dashboard_address)]
        else:  # it still serves /health over HTTP: on loopback, on a free port
            args += ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]
        self.scheduler = self._spawn(args, "scheduler.log")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"the Dask scheduler exited with code "
                                   f"{self.scheduler.returncode} while starting: "
                                   f"{self.log_tail('scheduler.log')}")
            try:
                self.address = json.loads(scheduler_file.read_text())["address"]
                return
            except (OSError, ValueError, KeyError):
                time.sleep(0.05)
        raise RuntimeError(f"the Dask scheduler did not start within {START_TIMEOUT:g} s: "
                           f"{self.log_tail('scheduler.log')}")

    def _start_worker(self, index: int) -> None:
        args = ["worker", self.address, "--nthreads", str(self.threads_per_worker),
                "--name", self.worker_name(index), "--no-nanny", "--local-directory",
                str(self.folder / f"worker-{index}"), "--dashboard-address", "127.0.0.1:0",
                "--preload", "executors.dask_preload", "--death-timeout", "60"]
        if self.worker_resources:
            args += ["--resources", self.worker_resources]
        self.workers[index] = self._spawn(args, f"worker-{index}.log")

    @staticmethod
    def worker_name(index: int) -> str:
        """``host:pid:dask-<index>``, the pid being the Updraft scheduler's that owns the
        cluster: its workers die with it, so a scheduler started later on this host can
        tell that a try still marked running on one of them is an orphan
        (``scheduler.zombies.fail_orphans``)."""
        import socket

        return f"{socket.gethostname()}:{os.getpid()}:dask-{index}"

    def log_tail(self, name: str, size: int = 2000) -> str:
        try:
            return (self.folder / name).read_text(errors="replace")[-size:]
        except OSError:
            return ""

    # -- watching --------------------------------------------------------------------------

    def scheduler_alive(self) -> bool:
        return self.scheduler is not None and self.scheduler.poll() is None

    def restart_scheduler(self) -> str:
        """Start the scheduler again on the address it had; return it."""
        port = int(str(self.address).rsplit(":", 1)[1]) if self.address else 0
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.kill()
            self.scheduler.wait(5)
        self.restarts["scheduler"] += 1
        try:
            self._start_scheduler(port)
        except RuntimeError:
            log.warning("the Dask scheduler could not take port %d again; using a new one",
                        port)
            self._start_scheduler(0)
        return self.address

    def restart_dead_workers(self) -> list[int]:
        """Start again the workers whose process ended; return their indexes."""
        restarted = []
        for index, process in list(self.workers.items()):
            if process.poll() is not None:
                self._start_worker(index)
                self.restarts["workers"] += 1
                restarted.append(index)
        return restarted

    # -- adapting (executors.dask_native) -------------------------------------------------

    def worker_count(self) -> int:
        """Workers started and not retired (alive or about to be restarted)."""
        return len(self.workers)

    def add_workers(self, count: int) -> list[int]:
        """Start ``count`` more workers (lowest free indexes); return their indexes."""
        started = []
        index = 0
        while len(started) < count:
            if index not in self.workers and index not in self._retiring:
                self._start_worker(index)
                started.append(index)
            index += 1
        return started

    def index_of(self, name: str | None) -> int | None:
        """The index of the running worker named ``name`` (see ``worker_name``)."""
        for index in self.workers:
            if self.worker_name(index) == str(name):
                return index
        return None

    def forget_worker(self, index: int) -> None:
        """The worker is being retired: its end is not a death to restart."""
        process = self.workers.pop(index, None)
        if process is not None:
            self._retiring[index] = process

    def stop_worker(self, index: int, timeout: float = 10.0) -> None:
        """Wait for a retired worker to end (SIGTERM, then SIGKILL, past ``timeout``)."""
        process = self._retiring.pop(index, None)
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            self._reap([process], 2.0)
        shutil.rmtree(self.folder / f"worker-{index}", ignore_errors=True)

    def pids(self) -> list[int]:
        found = [p.pid for p in self.workers.values() if p.poll() is None]
        if self.scheduler_alive():
            found.append(self.scheduler.pid)
        return found

    # -- stopping --------------------------------------------------------------------------

    def close(self, timeout: float = 1.0) -> None:
        """Stop the workers, then the scheduler (SIGTERM, SIGKILL after ``timeout``), and
        remove the cluster's folder."""
        processes = [p for p in [*self.workers.values(), *self._retiring.values()]
                     if p.poll() is None]
        for process in processes:
            process.send_signal(signal.SIGTERM)
        self._reap(processes, timeout)
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGTERM)
            self._reap([self.scheduler], timeout / 2)
        shutil.rmtree(self.folder, ignore_errors=True)

    @staticmethod
    def _reap(processes: list[subprocess.Popen], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


__all__ = ["LocalDaskProcesses"]
