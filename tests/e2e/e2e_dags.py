"""The DAG file the browser tests load (copied into a temporary DAGs folder), and a wait
for the scheduler to store a DAG."""

import time

SOURCE = '''
"""A small DAG for the browser tests: params, a task group, an edge label and a slow task."""
import time
from datetime import datetime

from updraft import DAG, Param, TaskGroup, task
from updraft.utils.edgemodifier import Label

with DAG("e2e_demo", schedule=None, start_date=datetime(2024, 1, 1), catchup=False,
         tags=["e2e"], is_paused_upon_creation=False,
         doc_md="# Demo\\n\\nA **small** DAG. <script>alert(1)</script>",
         params={"rows": Param(2, type="integer", minimum=1, maximum=10,
                               description="How many rows"),
                 "mode": Param("fast", type="string", enum=["fast", "full"])}) as dag:

    @task
    def start(params=None):
        time.sleep(1.5)
        print(f"rows={params['rows']} mode={params['mode']}")
        return params["rows"]

    started = start()

    with TaskGroup("work"):
        @task
        def slow(rows):
            for i in range(1, 9):
                print(f"working line {i} of 8 (rows={rows})", flush=True)
                time.sleep(0.6)
            return rows * 2

        @task
        def check(value):
            assert value > 0
            return value

        checked = check(slow(started))

    @task
    def end(value, dag_run=None):
        print(f"done with {value}; conf={dag_run.conf}")

    checked >> Label("then") >> end(checked)
'''


def wait_for_dag(dag_id: str, timeout: float) -> None:
    """Wait until the scheduler has stored ``dag_id`` (AssertionError after ``timeout``)."""
    from updraft.store.engine import session_scope
    from updraft.store.models import DagModel

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope() as session:
            if session.get(DagModel, dag_id) is not None:
                return
        time.sleep(0.2)
    raise AssertionError(f"the scheduler did not parse {dag_id} within {timeout} s")
