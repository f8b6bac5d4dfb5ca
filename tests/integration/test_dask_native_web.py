"""The web UI shows Dask-native results as what they are: XComs kept on the cluster or in
object storage (type, shape, partitions, size, where) on the task page and the XComs page,
the try's Dask performance report linked from the task page (found from the store, served
sandboxed), and the Dask cluster (workers, memory, tasks in flight) on the health page."""

from __future__ import annotations

import re

import scheduler_helpers as h
from web_helpers import PASSWORD, app, store_dag_without_scheduler, tokens, web_env  # noqa: F401

DAG = '''
from datetime import datetime

from updraft import DAG, task

with DAG("dask_web", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def build():
        return 1

    build()
'''


def _login(client, username: str):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post("/login", data={"username": username, "password": PASSWORD,
                                       "csrf_token": token, "next": "/"})


def test_cluster_xcoms_report_and_cluster_in_the_ui(app, tokens, web_env):  # noqa: F811
    from sqlalchemy import update

    from updraft.dask_support import report_path_for
    from updraft.models.xcom import set_xcom
    from updraft.store.engine import session_scope
    from updraft.store.models import TaskInstanceModel
    from updraft.store.nodes import record_node
    from updraft.xcom_backends import XComReference

    h.write_dag(web_env, "dask_web", DAG)
    store_dag_without_scheduler(web_env)
    run_id = h.trigger("dask_web")
    ref = XComReference("cluster", "dask.dataframe.DataFrame",
                        "updraft-xcom|dask_web|r|build|-1|return_value|1|",
                        scheduler="tcp://127.0.0.1:8786",
                        meta={"shape": [10_000_000, 2], "npartitions": 16,
                              "nbytes": 160_000_000, "columns": {"key": "int64",
                                                                 "value": "float64"}})
    cluster = {"scheduler_address": "tcp://127.0.0.1:8786", "adapt": None, "datasets": None,
               "totals": {"memory": 2 ** 30, "memory_limit": 2 ** 33, "executing": 3,
                          "waiting": 5, "in_memory": 16, "threads": 8},
               "workers": [{"name": "0", "address": "tcp://127.0.0.1:4001", "nthreads": 4,
                            "status": "running", "resources": {"GPU": 1.0},
                            "memory": 2 ** 29, "memory_limit": 2 ** 32, "managed_bytes": 0,
                            "executing": 2, "waiting": 1, "in_memory": 8}]}
    with session_scope() as session:
        session.execute(update(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == "dask_web", TaskInstanceModel.run_id == run_id)
            .values(try_number=1, state="success"))
        set_xcom(session, dag_id="dask_web", run_id=run_id, task_id="build",
                 value={"frame": ref, "rows": 10_000_000})
        record_node(session, "scheduler-test", "scheduler", "running",
                    {"executor": "dask", "cluster": cluster})
    report = report_path_for("dask_web", run_id, "build", -1, 1)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("<html><body>Dask Performance Report</body></html>")

    client = app.test_client()
    assert _login(client, "viewer").status_code == 302
    page = client.get(f"/dags/dask_web/runs/{run_id}/tasks/build").get_data(as_text=True)
    assert "dask.dataframe.DataFrame" in page and "10000000 × 2" in page
    assert "152.6 MiB" in page and ">16<" in page and "Dask cluster" in page
    assert "key int64" in page
    link = re.search(r'class="dask-report" href="([^"]+)"', page).group(1)
    assert str(report.parent) not in link  # ids only, no server path
    served = client.get(link.replace("&amp;", "&"))
    assert served.status_code == 200 and "Dask Performance Report" in served.get_data(
        as_text=True)
    assert served.headers["Content-Security-Policy"] == "sandbox allow-scripts"
    missing = client.get(f"/dags/dask_web/runs/{run_id}/tasks/build/dask-report?try=2")
    assert missing.status_code == 404

    listing = client.get("/xcoms?dag_id=dask_web").get_data(as_text=True)
    assert "dask.dataframe.DataFrame" in listing and "10000000 × 2" in listing

    health = client.get("/health").get_data(as_text=True)
    assert 'id="dask-cluster"' in health and "1 worker(s), 8 threads" in health
    assert "3 executing, 5 waiting" in health and "GPU=1.0" in health
