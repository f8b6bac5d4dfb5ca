"""Assets end to end on the real scheduler: a producer's success records its outlet events
(with extras) in the transaction of its outcome, the consumer's run is created at once and
records the events that triggered it, a failed producer records nothing, and a scheduler
restart loses no event."""

from __future__ import annotations

import shutil

import pytest
import scheduler_helpers as h

pytestmark = pytest.mark.timeout(180)

PRODUCER = '''
from datetime import datetime
from updraft import DAG, Asset, Metadata, task

orders = Asset(name="orders", uri="s3://lake/orders")

with DAG("producer", schedule=None, start_date=datetime(2024, 1, 1)) as dag:

    @task(outlets=[orders])
    def write(**context):
        if context["params"].get("fail"):
            raise RuntimeError("no orders today")
        context["outlet_events"][orders].extra = {"rows": 3}

    @task(outlets=[orders])
    def write_more():
        yield Metadata(orders, {"rows": 4})

    write() >> write_more()
'''

CONSUMER = '''
from datetime import datetime
from updraft import DAG, Asset, task

orders = Asset(name="orders", uri="s3://lake/orders")

with DAG("consumer", schedule=[orders], start_date=datetime(2024, 1, 1)) as dag:

    @task
    def read(**context):
        events = context["triggering_asset_events"][orders]
        return [[e.extra, e.source_dag_id, e.source_task_id] for e in events]

    read()
'''


@pytest.fixture
def env(updraft_home, tmp_path, monkeypatch, _sqlite_template):
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    conf.reload()
    h.write_dag(dags, "producer", PRODUCER)
    h.write_dag(dags, "consumer", CONSUMER)
    return dags


def consumer_runs():
    return [r for r in h.runs("consumer") if r.run_type == "asset_triggered"]


def xcom(dag_id, run_id, task_id):
    from updraft.models.xcom import get_xcom

    with h.session() as s:
        return get_xcom(s, dag_id=dag_id, run_id=run_id, task_id=task_id)


def test_producer_success_starts_the_consumer_with_its_events_and_extras(env):
    from updraft.store.assets import list_events, run_triggering_events

    with h.running_scheduler(env, "local"):
        h.wait_parsed("producer")
        h.wait_parsed("consumer")
        run_id = h.trigger("producer")
        assert h.wait_run("producer", run_id) == "success"
        runs = h.wait_for(lambda: len(consumer_runs()) == 2 and consumer_runs(),
                          what="two consumer runs")
        for run in runs:
            assert h.wait_run("consumer", run.run_id) == "success"
        failed = h.trigger("producer", conf={"fail": True})
        assert h.wait_run("producer", failed) == "failed"
    with h.session() as s:
        events = list_events(s, name="orders")
        assert [(e["extra"], e["source_task_id"], e["source_run_id"]) for e in events] == [
            ({"rows": 3}, "write", run_id), ({"rows": 4}, "write_more", run_id)]
        triggered = [run_triggering_events(s, "consumer", r.run_id) for r in runs]
    assert [[e["id"] for e in t] for t in triggered] == [[events[0]["id"]],
                                                         [events[1]["id"]]]
    assert [xcom("consumer", r.run_id, "read") for r in runs] == [
        [[{"rows": 3}, "producer", "write"]], [[{"rows": 4}, "producer", "write_more"]]]
    assert len(consumer_runs()) == 2  # the failed producer recorded no event


def test_events_recorded_while_the_scheduler_is_down_are_consumed_after_a_restart(env):
    from updraft.store.assets import record_outside_event
    from updraft.store.models import utcnow

    with h.running_scheduler(env, "sequential"):
        h.wait_parsed("consumer")
    with h.session() as s:
        for n in range(3):
            record_outside_event(s, name="orders", extra={"n": n}, source="api", now=utcnow())
    with h.running_scheduler(env, "sequential", run_processor=False):
        runs = h.wait_for(lambda: len(consumer_runs()) == 3 and consumer_runs(),
                          what="three consumer runs")
        for run in runs:
            assert h.wait_run("consumer", run.run_id) == "success"
    assert [xcom("consumer", r.run_id, "read")[0][0] for r in runs] == [
        {"n": 0}, {"n": 1}, {"n": 2}]


def test_airflow_2_datasets_trigger_the_consumer_with_its_events(env):
    """tests/compat_dags/a2_datasets.py, unchanged: Airflow 2 names (Dataset,
    triggering_dataset_events) through the compat hook."""
    from pathlib import Path

    from updraft.models.xcom import get_xcom

    corpus = Path(__file__).resolve().parents[1] / "compat_dags" / "a2_datasets.py"
    shutil.copyfile(corpus, env / "a2_datasets.py")
    with h.running_scheduler(env, "local"):
        h.wait_parsed("a2_datasets_consumer")
        producer = h.trigger("a2_datasets_producer")
        assert h.wait_run("a2_datasets_producer", producer) == "success"
        run = h.wait_for(lambda: h.runs("a2_datasets_consumer"), what="the consumer run")[0]
        assert h.wait_run("a2_datasets_consumer", run.run_id) == "success"
    with h.session() as s:
        assert get_xcom(s, dag_id="a2_datasets_consumer", run_id=run.run_id,
                        task_id="read_orders") == ["s3://bucket/orders.csv"]
