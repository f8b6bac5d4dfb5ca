"""Outside asset events over NATS, on a real NATS server with JetStream and the real
scheduler: a message on ``P.asset.<name>`` records one event (a duplicate publish, same
``Nats-Msg-Id``, records nothing more), bad messages are terminated with a published
rejection that names the reason, the ``asset_event`` command, and an AssetWatcher on a core
NATS subject that another system already publishes on."""

from __future__ import annotations

import asyncio
import json

import pytest
import scheduler_helpers as h
from test_bus import Collector, _delete_stream, js_publish, running

from bus import schemas, subjects
from bus.connection import connect

pytestmark = pytest.mark.timeout(120)

CONSUMER = '''
from datetime import datetime
from updraft import DAG, Asset, AssetWatcher, NatsSubjectTrigger
from updraft.operators.empty import EmptyOperator

orders = Asset(name="orders", uri="s3://lake/orders")
sensors = Asset(name="sensors", watchers=[
    AssetWatcher("plant", NatsSubjectTrigger("{watched}"))])

with DAG("on_orders", schedule=[orders], start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="consume")

with DAG("on_sensors", schedule=[sensors], start_date=datetime(2024, 1, 1)):
    EmptyOperator(task_id="consume")
'''


@pytest.fixture
def bus_env(updraft_home, tmp_path, monkeypatch, _sqlite_template, nats_url):
    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template, nats_url,
                             "a")
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()
    _delete_stream(nats_url, subjects.assets_stream())
    _delete_stream(nats_url, subjects.triggers_stream())


def events(name: str) -> list[dict]:
    from updraft.store.assets import list_events

    with h.session() as s:
        return list_events(s, name=name)


def asset_runs(dag_id: str) -> list:
    return [r for r in h.runs(dag_id) if r.run_type == "asset_triggered"]


def core_publish(url: str, subject: str, body: bytes) -> None:
    async def main():
        nc = await connect(url)
        try:
            await nc.publish(subject, body)
            await nc.flush()
        finally:
            await nc.close()
    asyncio.run(main())


def test_published_twice_records_one_event_and_one_run(bus_env, nats_url):
    h.write_dag(bus_env, "consumers", CONSUMER.replace("{watched}", "plant.unused"))
    with running(bus_env) as (_scheduler, node):
        h.wait_parsed("on_orders")
        body = json.dumps({"extra": {"file": "o-1.csv"}}).encode()
        js_publish(nats_url, subjects.asset("orders"), body, msg_id="batch-1")
        js_publish(nats_url, subjects.asset("orders"), body, msg_id="batch-1")
        # Past JetStream's duplicate window the stored id still deduplicates: the same id
        # in the body (no header) is the same event.
        h.wait_for(lambda: events("orders"), what="the event")
        js_publish(nats_url, subjects.asset("orders"),
                   json.dumps({"extra": {"file": "o-1.csv"}, "id": "batch-1"}).encode())
        h.wait_for(lambda: node.assets.stats["asset_duplicates"] >= 1, what="the duplicate")
        run = h.wait_for(lambda: asset_runs("on_orders"), what="the consumer run")[0]
        assert h.wait_run("on_orders", run.run_id) == "success"
    found = events("orders")
    assert [(e["extra"], e["source"]) for e in found] == [({"file": "o-1.csv"}, "nats")]
    assert len(asset_runs("on_orders")) == 1


def test_bad_asset_events_are_terminated_and_rejected(bus_env, nats_url):
    h.write_dag(bus_env, "consumers", CONSUMER.replace("{watched}", "plant.unused"))
    rejections = Collector(subjects.asset_rejected(), schemas.AssetEventRejected)
    try:
        with running(bus_env) as (_scheduler, node):
            h.wait_parsed("on_orders")
            cases = [
                ("orders", b'{"extra": ', "m-json", "invalid JSON at line 1"),
                ("no such asset", b'{}', "m-name", "no asset named 'no such asset'"),
                ("orders", b'{"extra": [1]}', "m-type", "wrong type for 'extra'"),
                ("orders", b'{"extras": {}}', "m-field", "unknown field 'extras'"),
            ]
            for name, body, msg_id, _reason in cases:
                js_publish(nats_url, subjects.asset(name), body, msg_id=msg_id)
            rejections.wait(lambda items: len(items) >= len(cases), "every rejection")
            by_id = {r.msg_id: r for r in rejections.items}
            for name, _body, msg_id, reason in cases:
                assert reason in by_id[msg_id].reason, by_id[msg_id]
                assert by_id[msg_id].asset == name
            assert node.assets.stats["asset_rejected"] == len(cases)
        assert events("orders") == []
    finally:
        rejections.close()


def test_watcher_on_a_core_subject_and_the_asset_event_command(bus_env, nats_url):
    from test_bus import command, command_error

    watched = f"{subjects.prefix()}-plant.line1.temperature"
    h.write_dag(bus_env, "consumers", CONSUMER.replace("{watched}", watched))
    with running(bus_env) as (_scheduler, node):
        h.wait_parsed("on_sensors")
        h.wait_for(lambda: node.assets.stats["watched"] == 1, what="the watcher subscription")
        core_publish(nats_url, watched, b'{"celsius": 71.5}')
        core_publish(nats_url, watched, b"not json")
        h.wait_for(lambda: len(asset_runs("on_sensors")) == 2, what="two watcher runs")
        reply = command("asset_event", name="orders", extra={"via": "command"}, id="c-1")
        assert reply["duplicate"] is False
        again = command("asset_event", name="orders", extra={"via": "command"}, id="c-1")
        assert again == {**reply, "duplicate": True}
        error = command_error("asset_event", name="nope")
        assert error.code == "not_found" and "no asset named 'nope'" in error.message
        run = h.wait_for(lambda: asset_runs("on_orders"), what="the command's run")[0]
        h.wait_run("on_orders", run.run_id)
    assert [(e["extra"], e["source"]) for e in events("sensors")] == [
        ({"celsius": 71.5}, "watcher"), ({"data": "not json"}, "watcher")]
    assert [e["extra"] for e in events("orders")] == [{"via": "command"}]
