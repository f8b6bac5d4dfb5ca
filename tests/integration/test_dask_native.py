"""Dask-native tasks (issue 17), on the real scheduler with the cluster the Dask executor
starts (a ``dask scheduler`` and two ``dask worker`` processes of four threads) and process
isolation on (each try in a process of its own):

- a DAG whose task A builds a 10-million-row Dask DataFrame and returns it, B aggregates it
  on the cluster's workers, C reports: the store holds only small XCom rows, the data is
  spread over both workers, each try that used the cluster has its performance report;
  clearing A and running again gives the same result and leaves no stale data on the
  cluster;
- eight concurrent tries, each fanning out 100 sub-tasks through ``dask_client`` while
  every worker thread is held by a try, finish (the supervisors secede);
- a try that asks for a resource no worker has fails with the reason;
- a pandas value kept in object storage (a local folder) reaches its downstream task, and
  its folder goes once the task is cleared and runs again;
- the example DAGs (dask.dataframe ETL, scikit-learn on the cluster) run to success.

Apart: the cluster the executor starts adapts its workers to the tries in flight.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import scheduler_helpers as h

from executors.dask_identity import worker_addresses

pytest.importorskip("pandas")
pytest.importorskip("dask.dataframe")
pytest.importorskip("sklearn")

ROWS = 10_000_000
EXAMPLES = ("example_dask_dataframe_etl", "example_dask_ml")

ETL_DAG = '''
from datetime import datetime

from updraft import DAG, task

ROWS = __ROWS__
PARTS = 16

with DAG("dask_etl", schedule=None, start_date=datetime(2024, 1, 1),
         default_args={"retries": 0}) as dag:
    @task.dask
    def build():
        import dask.dataframe as dd
        import numpy as np
        import pandas as pd

        def part(i):
            rng = np.random.default_rng(i)
            n = ROWS // PARTS
            return pd.DataFrame({"key": rng.integers(0, 100, n), "value": rng.random(n)})

        return dd.from_map(part, range(PARTS))

    @task.dask
    def aggregate(frame, client=None):
        workers = {w for held in client.who_has(frame).values() for w in held}
        out = frame.groupby("key").value.agg(["sum", "count"]).compute()
        return {"rows": int(out["count"].sum()), "groups": int(len(out)),
                "total": round(float(out["sum"].sum()), 3), "workers": len(workers),
                "type": type(frame).__module__ + "." + type(frame).__name__}

    @task
    def report(summary):
        print("report:", summary)
        return summary

    report(aggregate(build()))
'''

FANOUT_DAG = '''
from datetime import datetime

from updraft import DAG, task

with DAG("dask_fanout", schedule=None, start_date=datetime(2024, 1, 1), max_active_tasks=16,
         default_args={"retries": 0}) as dag:
    @task
    def fan(i, dask_client=None):
        import time

        def work(x, offset=i):
            time.sleep(0.01)
            return x + offset

        futures = dask_client.map(work, range(100), pure=False)
        return sum(dask_client.gather(futures))

    fan.expand(i=list(range(8)))
'''

MISC_DAG = '''
from datetime import datetime

from updraft import DAG, task

with DAG("dask_misc", schedule=None, start_date=datetime(2024, 1, 1),
         default_args={"retries": 0}) as dag:
    @task(executor_config={"resources": {"GPU": 1, "MEMORY": 8e9}})
    def needs_gpu():
        return "never"

    @task(executor_config={"xcom_backend": "object_storage"})
    def table():
        import pandas as pd

        return pd.DataFrame({"a": range(1000), "b": [i % 7 for i in range(1000)]})

    @task
    def use_table(frame):
        return {"type": type(frame).__name__, "sum": int(frame["b"].sum())}

    needs_gpu()
    use_table(table())
'''


@pytest.fixture
def cluster_env(tmp_path, monkeypatch, updraft_home, _sqlite_template):
    from updraft.config import conf

    dags = tmp_path / "dags"
    h.write_dag(dags, "dask_etl", ETL_DAG.replace("__ROWS__", str(ROWS)))
    h.write_dag(dags, "dask_fanout", FANOUT_DAG)
    h.write_dag(dags, "dask_misc", MISC_DAG)
    for name in EXAMPLES:
        shutil.copy(Path(__file__).resolve().parents[2] / "dags" / f"{name}.py", dags)
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    storage = tmp_path / "objects"
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    monkeypatch.setenv("UPDRAFT__CORE__TASK_ISOLATION", "process")
    monkeypatch.setenv("UPDRAFT__CORE__PARALLELISM", "16")
    monkeypatch.setenv("UPDRAFT__DASK__RESOURCE_WAIT", "2")
    monkeypatch.setenv("UPDRAFT__XCOM__REAP_INTERVAL", "0.5")
    monkeypatch.setenv("UPDRAFT__XCOM__OBJECT_STORAGE_PATH", storage.as_uri())
    conf.reload()
    return dags, storage


def _executor():
    from executors import get_executor

    return get_executor("dask", parallelism=16, n_workers=2, threads_per_worker=4,
                        processes=True, dashboard_address=None, scheduler_address="")


def _xcom_rows(dag_id: str, run_id: str) -> dict:
    from sqlalchemy import select

    from updraft.store.models import XComModel

    with h.session() as s:
        return {(r.task_id, r.map_index, r.key): r.value for r in s.scalars(
            select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run_id))}


def _value(dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    from updraft.models.xcom import deserialize_value

    return deserialize_value(_xcom_rows(dag_id, run_id)[(task_id, map_index, "return_value")])


def _datasets(executor) -> list[str]:
    return sorted(executor.client.list_datasets())


def _keys_in_memory(executor) -> set[str]:
    return set(executor.client.run_on_scheduler(
        lambda dask_scheduler: [str(k) for k, ts in dask_scheduler.tasks.items()
                                if ts.state == "memory"]))


@pytest.mark.slow
def test_dask_native_tasks_on_the_cluster_with_process_isolation(cluster_env):
    from distributed import futures_of

    from updraft.dask_support import report_path_for
    from updraft.xcom_backends import XComReference

    dags, storage = cluster_env
    executor = _executor()
    with h.running_scheduler(dags, executor):
        for dag_id in ("dask_etl", "dask_fanout", "dask_misc", *EXAMPLES):
            h.wait_parsed(dag_id, timeout=60)
        fanout = h.trigger("dask_fanout")
        etl = h.trigger("dask_etl")
        misc = h.trigger("dask_misc")
        examples = {dag_id: h.trigger(dag_id) for dag_id in EXAMPLES}

        # All threads busy: 8 tries hold the 8 worker threads while their sub-tasks run.
        assert h.wait_run("dask_fanout", fanout, timeout=120) == "success", \
            h.states("dask_fanout", fanout)
        for i in range(8):
            assert _value("dask_fanout", fanout, "fan", i) == sum(range(100)) + 100 * i

        # A resource no worker has: failed with the reason, not left waiting.
        assert h.wait_run("dask_misc", misc, timeout=120) == "failed"
        tis = h.tis("dask_misc", misc)
        assert tis["needs_gpu"].state == "failed"
        [row] = [r for r in h.try_rows("dask_misc", misc) if r.task_id == "needs_gpu"]
        assert "no worker of the Dask cluster has the resources this try needs " \
               "(GPU=1, MEMORY=8e+09)" in row.error, row.error
        # The object-storage value reached its downstream task as a DataFrame.
        assert tis["use_table"].state == "success"
        assert _value("dask_misc", misc, "use_table") == {"type": "DataFrame",
                                                          "sum": sum(i % 7 for i in
                                                                     range(1000))}
        table_ref = _value("dask_misc", misc, "table")
        assert isinstance(table_ref, XComReference)
        assert table_ref.backend == "object_storage" and table_ref.meta["shape"] == [1000, 2]

        assert h.wait_run("dask_etl", etl, timeout=180) == "success", \
            h.states("dask_etl", etl)
        summary = _value("dask_etl", etl, "report")
        assert summary["rows"] == ROWS and summary["groups"] == 100
        assert summary["type"].startswith("dask.dataframe")
        # The partitions stay on the cluster's workers (Dask places them: on a loaded
        # machine it may keep them all on one of the two).
        assert summary["workers"] in (1, 2), summary
        rows = _xcom_rows("dask_etl", etl)
        assert max(len(text) for text in rows.values()) < 1500, rows  # references only
        ref = _value("dask_etl", etl, "build")
        assert isinstance(ref, XComReference) and ref.backend == "cluster"
        assert ref.meta["shape"] == [ROWS, 2] and ref.meta["npartitions"] == 16
        assert ref.meta["nbytes"] >= ROWS * 16
        # Each try that used the cluster saved Dask's performance report beside its log.
        for task_id in ("build", "aggregate"):
            report = report_path_for("dask_etl", etl, task_id, -1, 1)
            assert report.is_file() and "<html" in report.read_text()[:2000].lower()
        assert not report_path_for("dask_etl", etl, "report", -1, 1).exists()

        # Clearing A runs A, B and C again: the same result, and the first A's data goes.
        first = ref.location
        assert first in _datasets(executor)
        from updraft.store.commands import clear_task_instances

        with h.session() as s:
            clear_task_instances(s, "dask_etl", task_ids=["build"], run_id=etl,
                                 downstream=True)
        h.wait_for(lambda: h.tis("dask_etl", etl)["build"].try_number == 2 and
                   h.run_state("dask_etl", etl) == "success", timeout=180,
                   what="the cleared run to succeed again")
        assert _value("dask_etl", etl, "report") == summary
        second = _value("dask_etl", etl, "build").location
        assert second != first

        def only_the_new_data():
            names = [n for n in _datasets(executor) if n.startswith("updraft-xcom|dask_etl")]
            return names == [second]

        h.wait_for(only_the_new_data, timeout=30, what="the first A's dataset to be released",
                   describe=lambda: _datasets(executor))
        kept = executor.client.get_dataset(second)
        wanted = {str(f.key) for f in futures_of(kept)}
        del kept
        in_memory = _keys_in_memory(executor)
        assert wanted <= in_memory
        stale = {k for k in in_memory - wanted if "from_map" in k or "frommap" in k}
        assert not stale, sorted(stale)[:5]

        # Object storage: clearing the producer replaces its folder.
        folders = sorted(p.name for p in storage.rglob("try-*"))
        assert folders == ["try-1"]
        with h.session() as s:
            clear_task_instances(s, "dask_misc", task_ids=["table"], run_id=misc,
                                 downstream=True)
        h.wait_for(lambda: h.tis("dask_misc", misc)["use_table"].try_number == 2 and
                   h.tis("dask_misc", misc)["use_table"].state == "success", timeout=90,
                   what="the cleared table task to run again")
        h.wait_for(lambda: sorted(p.name for p in storage.rglob("try-*")) == ["try-2"],
                   timeout=30, what="the first try's folder to go",
                   describe=lambda: sorted(str(p) for p in storage.rglob("try-*")))
        # The example DAGs ran on the cluster too, every task of them.
        for dag_id, run_id in examples.items():
            assert h.wait_run(dag_id, run_id, timeout=120) == "success", \
                (h.states(dag_id, run_id), [(r.task_id, r.state, r.error) for r in
                                            h.try_rows(dag_id, run_id) if r.error])
            assert {state for state, _try in h.states(dag_id, run_id).values()} == \
                {"success"}
        etl_example = examples["example_dask_dataframe_etl"]
        assert _value("example_dask_dataframe_etl", etl_example, "report") > 500_000
        assert _value("example_dask_dataframe_etl", etl_example,
                      "transform").meta["npartitions"] == 8
        if "example_dask_ml" in examples:
            assert _value("example_dask_ml", examples["example_dask_ml"],
                          "evaluate")["accuracy"] > 0.7
        health = executor.health()["cluster"]
        assert len(health["workers"]) == 2
        assert health["totals"]["memory"] > 0 and health["totals"]["threads"] == 8


@pytest.mark.slow
def test_the_owned_cluster_adapts_its_workers_to_the_tries_queued(tmp_path, monkeypatch,
                                                                  updraft_home,
                                                                  _sqlite_template):
    from test_executors import DAG_FILE, queue_tries, wait_events

    from executors import get_executor
    from updraft.config import conf
    from updraft.dagbag import DagBag

    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", url)
    monkeypatch.setenv("UPDRAFT__DASK__ADAPT_MIN", "1")
    monkeypatch.setenv("UPDRAFT__DASK__ADAPT_MAX", "3")
    monkeypatch.setenv("UPDRAFT__DASK__ADAPT_IDLE", "1")
    conf.reload()
    dag_file = tmp_path / "dags" / "executor_suite.py"
    h.write_dag(dag_file.parent, "executor_suite", DAG_FILE)
    dag = DagBag(dag_folder=dag_file, include_examples=False, safe_mode=False) \
        .dags["executor_suite"]
    executor = get_executor("dask", parallelism=8, threads_per_worker=1, processes=True,
                            dashboard_address=None, scheduler_address="", max_bundle=1)
    with executor:
        assert executor._processes.worker_count() == 1
        executor.submit(queue_tries(url, dag, ["nap_1", "nap_2", "nap_3"]))
        # Three tries, one thread per worker: three workers, started by the watchdog.
        h.wait_for(lambda: executor._processes.worker_count() == 3, timeout=30,
                   what="the cluster to grow to three workers")
        events = wait_events(executor, 3, timeout=60)
        assert all(e.error is None for e in events), events
        # Idle again: back to adapt_min, by retiring idle workers (not killing busy ones).
        h.wait_for(lambda: executor._processes.worker_count() == 1 and
                   len(worker_addresses(executor.client)) == 1,
                   timeout=60, what="the cluster to shrink back to one worker")
        assert executor._processes.restarts["workers"] == 0  # retired, not restarted
        assert executor.adapt_events >= 3
        [hello] = queue_tries(url, dag, ["hello"])
        executor.submit([hello])
        [event] = wait_events(executor, 1, timeout=60)
        assert event.error is None

