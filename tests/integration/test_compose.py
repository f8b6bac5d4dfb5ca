"""The compose stack: the file validates, and each service's command runs here, without
containers (there is no Docker engine on CI machines).

The validation needs the ``docker-compose`` binary (Debian: ``apt-get install docker-compose``);
it is skipped, saying so, only when that binary is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import services
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "docker-compose.yml"
SERVICES = {"nats", "postgres", "dask-scheduler", "dask-worker", "updraft-migrate",
            "updraft-scheduler", "updraft-triggerer", "updraft-web"}
BIN = Path(sys.executable).parent


def _config() -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        message = ("docker-compose is not installed (`bash .ci/install-browser` or apt-get "
                   "install docker-compose): the compose file cannot be validated here")
        if services.in_ci():
            pytest.fail(message + " (CI=true: this check must run)", pytrace=False)
        pytest.skip(message)
    result = subprocess.run(check=False, args=[binary, "-f", str(COMPOSE), "config"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_file_is_valid_and_complete():
    config = _config()
    assert set(config["services"]) == SERVICES
    web = config["services"]["updraft-web"]
    assert web["environment"]["UPDRAFT__NATS__SERVERS"] == "nats://nats:4222"
    assert web["environment"]["UPDRAFT__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql://")
    worker = config["services"]["dask-worker"]
    scheduler = config["services"]["updraft-scheduler"]
    assert "ports" not in worker, "dask-worker must not publish ports, or --scale fails"
    assert "container_name" not in worker
    assert "/opt/updraft/dags" in _targets(scheduler["volumes"])
    # Workers fetch each run's DAG bundle version from the store (ADR 12): no DAGs volume.
    assert "/opt/updraft/dags" not in _targets(worker["volumes"])
    assert worker["environment"]["UPDRAFT__CORE__BUNDLE_CACHE_FOLDER"] == "/tmp/updraft-bundles"
    nats = config["services"]["nats"]
    assert "-js" in nats["command"]
    assert "/data" in _targets(nats["volumes"])


def _targets(volumes: list) -> set[str]:
    """Mount targets, whatever syntax ``config`` prints (long form or ``src:target:mode``)."""
    return {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in volumes}


def _commands() -> dict[str, list[str]]:
    data = yaml.safe_load(COMPOSE.read_text())
    return {name: svc["command"] for name, svc in data["services"].items()
            if isinstance(svc.get("command"), list) and svc["command"][0] in ("updraft", "dask")}


@pytest.mark.parametrize("service", sorted(
    ["dask-scheduler", "dask-worker", "updraft-migrate", "updraft-scheduler",
     "updraft-triggerer", "updraft-web"]))
def test_service_command_exists_with_its_options(service):
    """Each service's command line parses (``--help`` after its arguments: unknown commands
    or options fail), with the executables this environment installs from the same package."""
    command = _commands()[service]
    executable = BIN / command[0]
    assert executable.exists(), f"{command[0]} is not installed with the project"
    args = [a for a in command[1:] if not a.startswith("tcp://")]
    result = subprocess.run(check=False, args=[str(executable), *args, "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


def test_migrate_command_runs_against_a_store(tmp_path):
    """``updraft db migrate`` as the migrate service runs it (SQLite stands in for PostgreSQL)."""
    env = {"UPDRAFT_HOME": str(tmp_path), "PATH": str(BIN),
           "UPDRAFT__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'store.db'}"}
    command = _commands()["updraft-migrate"]
    result = subprocess.run(check=False, args=[str(BIN / command[0]), *command[1:]], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "store.db").exists()
