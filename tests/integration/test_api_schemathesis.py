"""The OpenAPI document tells the truth: schemathesis, with every check on, finds no server
error and no conformance failure, fuzzing every operation as an Admin to the end.

How, and why so:

- The schemathesis CLI runs in a process of its own against a real waitress server on
  127.0.0.1, which serves the real Flask app on a real SQLite store, with a real Scheduler
  answering the bus commands over the session's NATS. That is how CI, an operator or a
  security reviewer runs it (``st run URL --checks all``): the HTTP layer, the headers and the
  server's own parsing are part of what is checked, which an in-process WSGI client would
  skip. Its own process also keeps its CPU work off the GIL of the server under test.
- It is bounded so that it fits in CI (the suite must stay under 15 minutes on 2 cores):
  ``UPDRAFT_FUZZ_EXAMPLES`` examples per operation (default 10: about a minute and 2,500
  requests through the examples, coverage, fuzzing and stateful phases) and a fixed
  ``UPDRAFT_FUZZ_SEED`` so a failure replays; set them to fuzz harder or elsewhere.
- The fuzzer holds an Admin token. It may delete, pause, clear and mark anything, create and
  change users, even try to demote or deactivate its own user: the server refuses that last
  part (409), so the fuzzer cannot lock itself out and reaches every operation, which the
  test checks from the summary and by using the token afterwards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import scheduler_helpers as h
import web_helpers
from web_helpers import bearer, live_server, running_scheduler, trigger_and_wait

pytestmark = [pytest.mark.nats, pytest.mark.slow, pytest.mark.timeout(900)]

web_env, app, tokens = web_helpers.web_env, web_helpers.app, web_helpers.tokens

DAG_ID = "fuzz_dag"
FUZZ_DAG = '''
from datetime import datetime
from updraft import DAG, Param, task
from updraft.operators.empty import EmptyOperator

with DAG("fuzz_dag", schedule=None, start_date=datetime(2024, 1, 1), tags=["fuzz"],
         params={"size": Param(3, type="integer", minimum=1)}) as dag:
    @task
    def produce():
        print("hello from produce")
        return [1, 2, 3]

    @task
    def each(value):
        return value * 2

    each.expand(value=produce()) >> EmptyOperator(task_id="end")
'''


def _schemathesis() -> list[str]:
    script = Path(sys.executable).with_name("schemathesis")
    if script.exists():
        return [str(script)]
    found = shutil.which("schemathesis")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; "
                                  "sys.argv[0] = 'schemathesis'; schemathesis()"]


def _seed_data(client, admin: str) -> None:
    """Something of every kind, so that the fuzzer's reads find rows as well as 404s."""
    for path, body in [("/api/v1/variables", {"key": "greeting", "value": "hi"}),
                       ("/api/v1/variables", {"key": "db_password", "value": "fuzz-s3cret"}),
                       ("/api/v1/connections", {"conn_id": "warehouse", "conn_type": "postgres",
                                                "host": "db", "password": "fuzz-pw",
                                                "extra": {"sslmode": "require"}}),
                       ("/api/v1/pools", {"name": "fuzz_pool", "slots": 2})]:
        response = client.post(path, json=body, headers=bearer(admin))
        assert response.status_code == 201, response.get_data(as_text=True)


def test_schemathesis_every_check_passes(app, tokens, web_env):
    from web.api.openapi import openapi_document

    examples = os.environ.get("UPDRAFT_FUZZ_EXAMPLES", "10")
    seed = os.environ.get("UPDRAFT_FUZZ_SEED", "20261203")
    operations = sum(len(item) for item in openapi_document()["paths"].values())
    admin = tokens["Admin"]
    h.write_dag(web_env, DAG_ID, FUZZ_DAG)
    client = app.test_client()
    with running_scheduler(web_env):
        h.wait_parsed(DAG_ID)
        trigger_and_wait(client, admin, DAG_ID, "base")
        _seed_data(client, admin)
        with live_server(app) as server:
            command = _schemathesis() + [
                "run", f"{server.url}/api/v1/openapi.json", "--checks", "all",
                "--header", f"Authorization: Bearer {admin}", "--max-examples", examples,
                "--seed", seed, "--workers", "1", "--no-color", "--request-timeout", "60"]
            done = subprocess.run(command, capture_output=True, text=True, timeout=800,
                                  env={**os.environ, "NO_COLOR": "1"})
            output = done.stdout + done.stderr
            print(output[-6000:])
            # The fuzzer did not lock itself (nor anyone) out: its token still works as Admin.
            me = client.get("/api/v1/users/admin", headers=bearer(admin))
            assert me.status_code == 200 and me.get_json()["role"] == "Admin" and \
                me.get_json()["active"] is True, me.get_data(as_text=True)
    assert done.returncode == 0, f"schemathesis found failures:\n{output[-12000:]}"
    # Every operation was fuzzed to the end (the CLI leaves out only the document's own).
    selected = re.search(r"Selected:\s+(\d+)/(\d+)", output)
    tested = re.search(r"Tested:\s+(\d+)", output)
    assert selected and tested and int(selected.group(2)) >= operations - 1 and \
        int(tested.group(1)) == int(selected.group(2)), \
        f"not every operation was fuzzed ({operations} in the document):\n{output[-3000:]}"
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated and int(generated.group(1)) >= 10 * operations, output[-3000:]
