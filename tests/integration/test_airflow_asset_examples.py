"""Airflow 3.3.2's own asset example DAGs (tests/airflow_examples/dags, unchanged) on
Updraft's real scheduler: producers are triggered one at a time, and the consumer runs, the
asset events, their extras and the events each run consumed are those Airflow 3.3.2 gives on
the same files (one run per satisfied condition; `&` waits for both assets; an alias resolves
to the asset its producer named and its consumers run on that asset's later events too).

What Airflow gives, checked by hand on 3.3.2 with the producers triggered one by one and each
wave allowed to finish (so that no two events land in one scheduler pass), is written next to
each assertion."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import scheduler_helpers as h

from updraft import compat

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parents[1] / "airflow_examples" / "dags"


@pytest.fixture(autouse=True)
def compat_hook():
    yield
    compat.uninstall()


@pytest.fixture
def folder(tmp_path, monkeypatch, updraft_home, _sqlite_template):
    from updraft.config import conf

    dags = tmp_path / "dags"
    dags.mkdir()
    for name, value in h.FAST_SETTINGS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("UPDRAFT__CORE__PARALLELISM", "8")
    path = updraft_home / "updraft.db"
    shutil.copyfile(_sqlite_template, path)
    monkeypatch.setenv("UPDRAFT__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{path}")
    monkeypatch.setenv("UPDRAFT__CORE__DAGS_FOLDER", str(dags))
    conf.reload()
    return dags


def copy(folder: Path, *names: str) -> None:
    for name in names:
        shutil.copyfile(EXAMPLES / f"{name}.py", folder / f"{name}.py")


def runs(dag_id: str, run_type: str | None = None) -> list:
    return [r for r in h.runs(dag_id) if run_type is None or r.run_type == run_type]


def consumed(dag_id: str) -> list[list[tuple[str, dict]]]:
    """The (asset, extra) of the events each asset-triggered run of ``dag_id`` consumed."""
    from updraft.store.assets import run_triggering_events

    with h.session() as s:
        return [[(e["asset_name"], e["extra"]) for e in
                 run_triggering_events(s, dag_id, r.run_id)]
                for r in runs(dag_id, "asset_triggered")]


def events(name: str) -> list[tuple[dict, str | None, str | None]]:
    from updraft.store.assets import list_events

    with h.session() as s:
        return [(e["extra"], e["source_dag_id"], e["source_task_id"])
                for e in list_events(s, name=name)]


def settle(dag_ids, count: int = 1) -> None:
    """Wait until each DAG has ``count`` runs (or more) and every run has finished."""
    for dag_id in dag_ids:
        h.wait_for(lambda d=dag_id: len(runs(d)) >= count, what=f"{count} run(s) of {dag_id}")
    for dag_id in dag_ids:
        for run in runs(dag_id):
            assert h.wait_run(dag_id, run.run_id) == "success", h.states(dag_id, run.run_id)


D1, D2 = "s3://dag1/output_1.txt", "s3://dag2/output_1.txt"


def test_example_assets(folder):
    """example_assets.py: asset_produces_1 (@daily, one run on unpause), then a manual run of
    asset_produces_2."""
    copy(folder, "example_assets")
    with h.running_scheduler(folder, "local", parallelism=8):
        h.wait_parsed("conditional_asset_and_time_based_timetable")
        # Airflow: the scheduled run of asset_produces_1 makes one event of dag1's asset
        # (extra {}: the asset's own extra is not the event's); asset_consumes_1,
        # consume_1_or_2 and consume_1_or_both_2_and_3 run once each on it.
        settle(["asset_produces_1", "asset_consumes_1",
                "consume_1_or_2_with_asset_expressions",
                "consume_1_or_both_2_and_3_with_asset_expressions"])
        assert events(D1) == [({}, "asset_produces_1", "producing_task_1")]
        h.trigger("asset_produces_2")
        # Airflow: asset_produces_2's event completes dag1 & dag2: asset_consumes_1_and_2,
        # consume_1_and_2 and the AssetOrTimeSchedule DAG run once each with both events;
        # consume_1_or_2 runs a second time.
        settle(["asset_produces_2", "asset_consumes_1_and_2",
                "consume_1_and_2_with_asset_expressions",
                "conditional_asset_and_time_based_timetable"])
        settle(["consume_1_or_2_with_asset_expressions"], count=2)
        h.wait_for(lambda: events("s3://consuming_2_task/asset_other_unknown.txt"),
                   what="the consumers' own outlet events")
    assert consumed("asset_consumes_1") == [[(D1, {})]]
    assert consumed("consume_1_or_2_with_asset_expressions") == [[(D1, {})], [(D2, {})]]
    assert consumed("consume_1_or_both_2_and_3_with_asset_expressions") == [[(D1, {})]]
    for dag_id in ("asset_consumes_1_and_2", "consume_1_and_2_with_asset_expressions",
                   "conditional_asset_and_time_based_timetable"):
        assert consumed(dag_id) == [[(D1, {}), (D2, {})]], dag_id
    # Airflow: CronTriggerTimetable without catchup also runs the latest past tick (last
    # Wednesday 01:00) once; that clock run consumes no event.
    [tick] = runs("conditional_asset_and_time_based_timetable", "scheduled")
    assert (tick.logical_date.weekday(), tick.logical_date.hour) == (2, 1)
    # Airflow: never scheduled (an asset no task produces).
    assert runs("asset_consumes_1_never_scheduled") == []
    assert runs("asset_consumes_unknown_never_scheduled") == []
    assert [e[1:] for e in events("s3://consuming_1_task/asset_other.txt")] == [
        ("asset_consumes_1", "consuming_1")]


def test_example_outlet_and_inlet_event_extras(folder):
    """example_outlet_event_extra.py's three producers (each @daily: one run), then
    example_inlet_event_extra.py's readers."""
    from updraft.models.xcom import get_xcom

    copy(folder, "example_outlet_event_extra")
    producers = ["asset_with_extra_by_yield", "asset_with_extra_by_context",
                 "asset_with_extra_from_classic_operator"]
    with h.running_scheduler(folder, "local", parallelism=8):
        settle(producers)
        # Airflow: three events of test-asset, each with extra {"hi": "bye"}.
        assert sorted(events("test-asset")) == sorted(
            ({"hi": "bye"}, dag_id, dag_id) for dag_id in producers)
        copy(folder, "example_inlet_event_extra")
        settle(["read_asset_event", "read_asset_event_from_classic"])
    # Airflow: inlet_events.for_asset(uri=...) reads test-asset's events (same URI);
    # the newest one's extra, as JSON, is the Bash task's output.
    [run] = runs("read_asset_event_from_classic")
    with h.session() as s:
        assert get_xcom(s, dag_id="read_asset_event_from_classic", run_id=run.run_id,
                        task_id="read_asset_event_from_classic") == '{"hi": "bye"}'


def test_example_asset_aliases_and_the_asset_decorator(folder):
    """example_asset_alias.py, its no-TaskFlow twin and example_asset_decorator.py."""
    copy(folder, "example_asset_alias", "example_asset_alias_with_no_taskflow",
         "example_asset_decorator")
    bucket = "s3://bucket/my-task"
    with h.running_scheduler(folder, "local", parallelism=8):
        h.wait_parsed("consumes_asset_decorator")
        h.wait_parsed("asset_alias_example_alias_consumer_with_no_taskflow")
        # Airflow: the alias producer adds an event of s3://bucket/my-task through
        # example-alias: the asset's consumer and the alias's consumer run once each.
        h.trigger("asset_alias_example_alias_producer")
        settle(["asset_alias_example_alias_producer", "asset_s3_bucket_consumer",
                "asset_alias_example_alias_consumer"])
        # Airflow: the plain producer's event of the same asset reaches both again (the
        # alias resolved to it).
        h.trigger("asset_s3_bucket_producer")
        settle(["asset_s3_bucket_consumer", "asset_alias_example_alias_consumer"], count=2)
        # The no-TaskFlow twins: the alias producer's event is of s3://bucket/my-task too.
        h.trigger("asset_alias_example_alias_producer_with_no_taskflow")
        settle(["asset_alias_example_alias_consumer_with_no_taskflow"])
        settle(["asset_s3_bucket_consumer"], count=3)
        h.trigger("asset_s3_bucket_producer_with_no_taskflow")
        settle(["asset_s3_bucket_consumer_with_no_taskflow"])
        # @asset: each producer DAG's success is an event of its asset; the consumer,
        # scheduled on either (|), runs once per event.
        h.trigger("asset1_producer")
        settle(["asset1_producer", "consumes_asset_decorator"])
        h.trigger("asset2_producer")
        settle(["asset2_producer"])
        settle(["consumes_asset_decorator"], count=2)
    assert [e[1:] for e in events(bucket)] == [
        ("asset_alias_example_alias_producer", "produce_asset_events_through_asset_alias"),
        ("asset_s3_bucket_producer", "produce_asset_events"),
        ("asset_alias_example_alias_producer_with_no_taskflow",
         "produce_asset_events_through_asset_alias_with_no_taskflow")]
    assert consumed("asset_s3_bucket_consumer") == [[(bucket, {})]] * 3
    assert consumed("asset_alias_example_alias_consumer") == [[(bucket, {})]] * 3
    assert consumed("asset_alias_example_alias_consumer_with_no_taskflow") == [
        [(bucket, {})]]
    assert consumed("asset_s3_bucket_consumer_with_no_taskflow") == [
        [("s3://bucket/my-task-with-no-taskflow", {})]]
    assert consumed("consumes_asset_decorator") == [[("asset1_producer", {})],
                                                     [("asset2_producer", {})]]
