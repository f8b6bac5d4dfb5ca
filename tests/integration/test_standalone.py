"""``updraft standalone`` as a user runs it: progress lines, the admin password printed once
and kept 0600, the web answering, and a clean stop on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start(home: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT__")}
    env.update(UPDRAFT_HOME=str(home), PYTHONUNBUFFERED="1",
               UPDRAFT__SCHEDULER__METRICS_PORT="0")
    return subprocess.Popen([sys.executable, "-m", "updraft.cli", "standalone", "--port",
                             str(port), "--executor", "sequential"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_until(process: subprocess.Popen, marker: str, timeout: float) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"no {marker!r} within {timeout} s; output:\n{''.join(seen)}")


def test_standalone_starts_serves_and_stops(tmp_path):
    home = tmp_path / "home"
    port = _free_port()
    process = _start(home, port)
    try:
        output = _read_until(process, "Press Ctrl-C to stop.", timeout=120)
        for step in range(1, 7):
            assert f"[{step}/6]" in output
        password_line = next(line for line in output.splitlines()
                             if "Log in as admin with password:" in line)
        password = password_line.rsplit(":", 1)[1].strip()
        secret = home / "standalone_admin_password.txt"
        assert secret.read_text().strip() == password
        assert secret.stat().st_mode & 0o777 == 0o600
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10) as answer:
            assert answer.status == 200
            assert "Log in" in answer.read().decode()
        _newcomer_commands(home)
    finally:
        process.send_signal(signal.SIGTERM)
        rest = process.communicate(timeout=60)[0]
    assert process.returncode == 0, rest
    assert "Stopped." in rest
    for step in ("web server", "scheduler and executor", "NATS"):
        assert f"stopped {step} (" in rest  # how long each step took

    # A restart keeps the user and says where the first password is; it prints none.
    process = _start(home, port)
    try:
        output = _read_until(process, "Press Ctrl-C to stop.", timeout=120)
        assert "user admin exists" in output and "standalone_admin_password.txt" in output
        assert "with password:" not in output
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    assert process.returncode == 0


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPDRAFT__")}
    env["UPDRAFT_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "updraft.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _newcomer_commands(home: Path) -> None:
    """The README's two commands, as a newcomer types them beside a running standalone: the
    CLI on the same UPDRAFT_HOME lists the twelve example DAGs it serves, and triggering a
    paused one says the run waits (issue 15)."""
    deadline = time.monotonic() + 90
    while True:
        listed = _cli(home, "dags", "list", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        dag_ids = sorted(row["dag_id"] for row in json.loads(listed.stdout))
        if len(dag_ids) >= 12 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(dag_ids) == 12 and all(d.startswith("example_") for d in dag_ids), dag_ids
    assert "Nothing stored yet" not in listed.stderr
    triggered = _cli(home, "dags", "trigger", "example_bash", "-r", "newcomer")
    assert triggered.returncode == 0, triggered.stderr
    assert triggered.stdout.strip() == "Created run newcomer of example_bash"
    assert ("example_bash is paused: the run stays queued until the DAG is unpaused "
            "(`updraft dags unpause example_bash`).") in triggered.stderr
