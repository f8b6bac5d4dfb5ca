"""The NATS bus against a real nats-server: subjects, schemas, commands, events, durable
outside triggers, and a NATS restart in the middle of a run.

Each test uses its own subject prefix (hence its own stream names), so tests sharing the
server never see each other's messages. Checks read the store (the truth) and what arrived
on the bus; waits poll with generous deadlines.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from contextlib import contextmanager

import pytest
import scheduler_helpers as h

from bus import schemas, subjects
from bus.connection import BusThread, BusUnavailable, connect

pytestmark = pytest.mark.timeout(180)

HOSTILE_IDS = ["a.b", "with space", "*", ">", "a.*.>", "déjà vu", "日本", "", "%", "%41",
               "rejected", "tab\there", "$SYS", "-_", "a/b\\c", "x" * 200]

PARAMS_DAG = '''
from datetime import datetime
from updraft import DAG, Param
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1),
         params={{"size": Param(3, type="integer", minimum=1)}}) as dag:
    EmptyOperator(task_id="a") >> EmptyOperator(task_id="b") >> EmptyOperator(task_id="c")
'''

WIDE_DAG = '''
from datetime import datetime
from updraft import DAG
from updraft.operators.empty import EmptyOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    start = EmptyOperator(task_id="start")
    end = EmptyOperator(task_id="end")
    for i in range(18):
        start >> EmptyOperator(task_id=f"t{{i:02d}}") >> end
'''

SLOW_DAG = '''
from datetime import datetime
import time
from updraft import DAG, task

with DAG("{dag_id}", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
    @task
    def step(n):
        time.sleep(0.4)
        return n

    prev = None
    for i in range(8):
        cur = step.override(task_id=f"s{{i}}")(i)
        if prev is not None:
            prev >> cur
        prev = cur
'''


# -- fixtures and helpers -------------------------------------------------------------------

@pytest.fixture
def bus_env(updraft_home, tmp_path, monkeypatch, _sqlite_template, nats_url):
    """Fast scheduler settings, a DAGs folder, a SQLite store, NATS with a fresh prefix."""
    dags = h.prepare_bus_env(monkeypatch, tmp_path, updraft_home, _sqlite_template, nats_url,
                             "t")
    yield dags
    from bus.connection import close_shared_bus

    close_shared_bus()
    _delete_stream(nats_url, subjects.triggers_stream())


def _delete_stream(url: str, name: str) -> None:
    async def main():
        nc = await connect(url)
        try:
            await nc.jetstream().delete_stream(name)
        except Exception:  # noqa: BLE001, S110  (not created by this test)
            pass
        await nc.close()
    try:
        asyncio.run(main())
    except BusUnavailable:
        pass


class Collector:
    """Messages of one subject (wildcards allowed), decoded as ``schema``, as they arrive."""

    def __init__(self, subject: str, schema, servers: str | None = None) -> None:
        self.subject, self.schema = subject, schema
        self.items: list = []
        self.bus = BusThread(servers, name="test-collector")
        self._ready = threading.Event()

        async def subscribe(nc):
            async def on_msg(msg):
                self.items.append(schemas.decode(schema, msg.data))
            await nc.subscribe(subject, cb=on_msg)
            await nc.flush()
            self._ready.set()
        self.bus.on_connect(subscribe)
        self.bus.start(wait=5)
        assert self._ready.wait(10), f"could not subscribe to {subject}"

    def wait(self, predicate, what: str, timeout: float = h.WAIT):
        return h.wait_for(lambda: predicate(self.items), timeout, what=what,
                          describe=lambda: self.items[-5:])

    def close(self) -> None:
        self.bus.stop()


@contextmanager
def running(dags, servers: str | None = None, processor: bool = True):
    """A Scheduler (sequential executor) with its SchedulerBus, in a thread."""
    from bus.node import SchedulerBus
    from executors import get_executor
    from scheduler.core import Scheduler

    scheduler = Scheduler(get_executor("sequential"), dags_folder=str(dags),
                          run_processor=processor)
    node = SchedulerBus(scheduler, servers=servers)
    node.start(wait=5)
    failure: list[BaseException] = []

    def body():
        try:
            scheduler.run()
        except BaseException as exc:  # noqa: BLE001
            failure.append(exc)

    thread = threading.Thread(target=body, name="test-scheduler", daemon=True)
    thread.start()
    try:
        yield scheduler, node
    finally:
        scheduler.stop()
        thread.join(timeout=60)
        node.stop()
        assert not thread.is_alive(), "the scheduler did not stop within 60s"
    if failure:
        raise failure[0]


def js_publish(url: str, subject: str, body: bytes, msg_id: str | None = None) -> int:
    """Publish into JetStream as an outside system would; returns the stream sequence."""
    async def main():
        nc = await connect(url)
        try:
            headers = {"Nats-Msg-Id": msg_id} if msg_id else None
            ack = await nc.jetstream().publish(subject, body, headers=headers)
            return ack.seq
        finally:
            await nc.close()
    return asyncio.run(main())


def _try_publish(url: str, subject: str, body: bytes, msg_id: str) -> bool:
    import nats.errors

    try:
        js_publish(url, subject, body, msg_id)
        return True
    except (nats.errors.Error, BusUnavailable):
        return False


def ensure_stream(url: str) -> None:
    from bus.node import ensure_trigger_stream

    async def main():
        nc = await connect(url)
        try:
            await ensure_trigger_stream(nc.jetstream())
        finally:
            await nc.close()
    asyncio.run(main())


def consumer_backlog(url: str) -> tuple[int, int]:
    """(pending, ack pending) of the schedulers' trigger consumer."""
    async def main():
        nc = await connect(url)
        try:
            info = await nc.jetstream().consumer_info(subjects.triggers_stream(),
                                                      subjects.triggers_consumer())
            return info.num_pending, info.num_ack_pending
        finally:
            await nc.close()
    return asyncio.run(main())


def command(verb: str, **payload):
    from bus.client import request_command

    return request_command(verb, payload, timeout=20)


def command_error(verb: str, **payload):
    from bus.client import CommandError

    with pytest.raises(CommandError) as info:
        command(verb, **payload)
    return info.value


# -- subjects and schemas ---------------------------------------------------------------------

def test_subject_tokens_round_trip_and_hostile_ids(bus_env):
    for value in HOSTILE_IDS:
        token = subjects.encode_token(value)
        assert subjects.decode_token(token) == value
        assert token and not set(token) & set(". \t*>") and token.isascii(), token
    tokens = {subjects.encode_token(v) for v in HOSTILE_IDS}
    assert len(tokens) == len(HOSTILE_IDS), "two ids share a token"
    p = subjects.prefix()
    assert subjects.log("a.b", "manual__2024-01-01T00:00:00+00:00", "t 1", 2, 3).split(".") \
        == [p, "log", "a%2Eb", "manual__2024-01-01T00%3A00%3A00%2B00%3A00", "t%201", "3", "2"]
    assert subjects.evt_ti("x.y") == f"{p}.evt.ti.x%2Ey"
    assert subjects.evt_run() == f"{p}.evt.run.*"
    assert subjects.cmd("trigger") == f"{p}.cmd.trigger"
    assert subjects.hb("scheduler-h-1") == f"{p}.hb.scheduler-h-1"
    assert subjects.tasks("default") == f"{p}.tasks.default"
    # "rejected" is reserved under trigger: the DAG of that name gets another token.
    assert subjects.trigger("rejected") != subjects.trigger_rejected()
    assert subjects.dag_id_from_trigger(subjects.trigger("rejected")) == "rejected"
    assert subjects.dag_id_from_trigger(subjects.trigger_rejected()) is None
    for value in HOSTILE_IDS:
        assert subjects.dag_id_from_trigger(subjects.trigger(value)) == value
    for bad in ("a.b", "a b", "%zz", "%4", "*"):
        with pytest.raises(ValueError):
            subjects.decode_token(bad)
    assert subjects.triggers_stream() != subjects.tasks_stream("default")
    assert "." not in subjects.tasks_stream("a.b")


def test_hostile_ids_are_delivered_to_their_own_subject(bus_env):
    """A subscriber to one DAG's events sees only that DAG, whatever its id contains."""
    seen: dict[str, list[bytes]] = {v: [] for v in HOSTILE_IDS}

    async def main():
        nc = await connect()
        for value in HOSTILE_IDS:
            async def cb(msg, value=value):
                seen[value].append(msg.data)
            await nc.subscribe(subjects.evt_run(value), cb=cb)
        for value in HOSTILE_IDS:
            await nc.publish(subjects.evt_run(value), value.encode())
        await nc.flush()
        await asyncio.sleep(0.2)
        await nc.close()
    asyncio.run(main())
    assert seen == {v: [v.encode()] for v in HOSTILE_IDS}


@pytest.mark.parametrize("data, message", [
    (b'{"dag_id": "a",', "TriggerCommand: invalid JSON at line 1 column 16"),
    (b'["a"]', "TriggerCommand: body must be a JSON object, got an array"),
    (b'{"conf": {}}', "TriggerCommand: missing field 'dag_id'"),
    (b'{"dag_id": "a", "confx": {}}', "TriggerCommand: unknown field 'confx'"),
    (b'{"dag_id": 7}', ("TriggerCommand: wrong type for 'dag_id': expected a string, got a "
                        "number (7)")),
    (b'{"dag_id": "a", "conf": []}', ("TriggerCommand: wrong type for 'conf': expected an "
                                      "object, got an array")),
    (b'{"dag_id": "a", "v": 2}', "TriggerCommand: unsupported version v=2 (this node reads 1)"),
    (b'{"dag_id": "a", "v": "1"}', "TriggerCommand: wrong type for 'v'"),
    (b'\xff', "TriggerCommand: body is not UTF-8"),
])
def test_schema_errors_are_precise(data, message):
    with pytest.raises(schemas.SchemaError) as info:
        schemas.decode(schemas.TriggerCommand, data)
    assert str(info.value).startswith(message), str(info.value)


def test_schema_round_trips_and_frozen():
    import dataclasses

    messages = [
        schemas.TriggerCommand(dag_id="d", conf={"x": [1, {"y": None}]}, run_id="r"),
        schemas.ClearCommand(dag_id="d", map_indexes=[0, 2], only_failed=True),
        schemas.SetStateCommand(dag_id="d", run_id="r", task_id="t", state="success"),
        schemas.CommandReply(ok=False, error="nope", code="not_found"),
        schemas.TriggerMessage(conf={"a": 1}),
        schemas.TiStateEvent(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1,
                             old_state=None, new_state="queued", timestamp="2024-01-01"),
        schemas.Heartbeat(node_id="n", kind="scheduler", timestamp="t", info={"loops": 1}),
        schemas.LogLine(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1,
                        seq=0, line="hello é", timestamp="t"),
        schemas.TaskMessage(request={"dag_id": "d"}),
    ]
    for msg in messages:
        assert schemas.decode(type(msg), schemas.encode(msg)) == msg
        with pytest.raises(dataclasses.FrozenInstanceError):
            msg.v = 2  # type: ignore[misc]
    # An outside trigger may be just {"conf": ...}; v defaults to 1.
    assert schemas.decode(schemas.TriggerMessage, b'{"conf": {"a": 1}}').conf == {"a": 1}
    with pytest.raises(schemas.SchemaError, match=r"'map_indexes'.*item 1 is a string"):
        schemas.decode(schemas.ClearCommand, b'{"dag_id": "d", "map_indexes": [1, "2"]}')


def test_connect_fails_fast_and_clearly():
    started = time.monotonic()
    with pytest.raises(BusUnavailable, match=r"^cannot reach NATS at nats://127\.0\.0\.1:1: "):
        asyncio.run(connect("nats://127.0.0.1:1"))
    assert time.monotonic() - started < 10


# -- commands -----------------------------------------------------------------------------------

def test_every_command_through_a_running_scheduler(bus_env):
    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    with running(bus_env):
        h.wait_parsed("params_dag")
        result = command("trigger", dag_id="params_dag", conf={"size": 5}, run_id="r1")
        assert result["run_id"] == "r1" and result["dag_id"] == "params_dag"
        h.wait_run("params_dag", "r1")
        assert h.run_state("params_dag", "r1") == "success"
        assert h.runs("params_dag")[0].conf == {"size": 5}

        # Precise errors, each with its code.
        err = command_error("trigger", dag_id="nope")
        assert err.code == "not_found" and "'nope' not found" in err.message
        err = command_error("trigger", dag_id="params_dag", conf={"size": 0})
        assert err.code == "bad_request" and "refused the run" in err.message \
            and "size" in err.message, err.message
        err = command_error("trigger", dag_id="params_dag", conf={"size": "big"})
        assert err.code == "bad_request", err.message
        err = command_error("trigger", dag_id="params_dag", run_id="r1")
        assert err.code == "conflict" and "'r1'" in err.message and "already exists" \
            in err.message
        err = command_error("delete_run", dag_id="params_dag", run_id="nope")
        assert err.code == "not_found" and "'nope'" in err.message
        err = command_error("set_state", dag_id="params_dag", run_id="r1", task_id="zz",
                            state="failed")
        assert err.code == "not_found" and "'zz'" in err.message
        err = command_error("set_state", dag_id="params_dag", run_id="r1", task_id="a",
                            state="running")
        assert err.code == "bad_request" and "'running'" in err.message

        # Schema errors are answered by the scheduler too (here sent raw, past the client).
        from bus.connection import shared_bus

        raw = shared_bus().request(subjects.cmd("pause"), b'{"dag_id": "x", "color": 1}', 10)
        reply = json.loads(raw.data)
        assert reply == {"v": 1, "ok": False, "code": "bad_request", "result": None,
                         "error": reply["error"]}
        assert "unknown field 'color'" in reply["error"]
        raw = shared_bus().request(subjects.cmd("explode"), b"{}", 10)
        assert "unknown command 'explode'" in json.loads(raw.data)["error"]

        # pause / unpause
        assert command("pause", dag_id="params_dag")["is_paused"] is True
        assert h.dag_row("params_dag").is_paused is True
        assert command("unpause", dag_id="params_dag")["was_paused"] is True
        assert h.dag_row("params_dag").is_paused is False

        # set_state, then clear: the run goes back and runs again.
        result = command("set_state", dag_id="params_dag", run_id="r1", task_id="b",
                         state="failed", downstream=True)
        assert result["count"] == 2
        assert h.states("params_dag", "r1")["c"][0] == "failed"
        result = command("clear", dag_id="params_dag", run_id="r1", only_failed=True)
        assert result["count"] == 2
        h.wait_for(lambda: h.run_state("params_dag", "r1") == "success", what="rerun")
        assert h.states("params_dag", "r1")["c"][0] == "success"

        # set_run_state, delete_run
        assert command("set_run_state", dag_id="params_dag", run_id="r1",
                       state="failed")["state"] == "failed"
        assert h.run_state("params_dag", "r1") == "failed"
        assert command("delete_run", dag_id="params_dag", run_id="r1")["deleted"] is True
        assert h.runs("params_dag") == []


def test_command_without_a_scheduler_says_so(bus_env):
    err = command_error("pause", dag_id="x")
    assert err.code == "unavailable" and "no scheduler serves" in err.message


# -- events -------------------------------------------------------------------------------------

def test_every_state_change_of_a_20_task_run_arrives_in_order(bus_env):
    from sqlalchemy import select

    from updraft.store.models import TiEvent

    h.write_dag(bus_env, "wide", WIDE_DAG.format(dag_id="wide"))
    ti_events = Collector(subjects.evt_ti("wide"), schemas.TiStateEvent)
    run_events = Collector(subjects.evt_run("wide"), schemas.RunStateEvent)
    beats = Collector(subjects.hb(), schemas.Heartbeat)
    try:
        with running(bus_env) as (scheduler, _node):
            h.wait_parsed("wide")
            run_id = command("trigger", dag_id="wide")["run_id"]
            h.wait_run("wide", run_id)
            assert h.run_state("wide", run_id) == "success"
            with h.session() as s:
                stored = [(e.task_id, e.map_index, e.try_number, e.old_state, e.new_state)
                          for e in s.scalars(select(TiEvent).where(TiEvent.run_id == run_id)
                                             .order_by(TiEvent.id))]
            assert len({t for t, *_ in stored}) == 20
            ti_events.wait(lambda items: len(items) >= len(stored), "every ti event")
            run_events.wait(lambda items: any(e.new_state == "success" for e in items),
                            "the run's success event")
            beats.wait(lambda items: any(b.node_id == scheduler.node_id for b in items),
                       "a scheduler heartbeat")
        got = [(e.task_id, e.map_index, e.try_number, e.old_state, e.new_state)
               for e in ti_events.items]
        assert len(got) == len(stored)
        for task_id in {t for t, *_ in stored}:
            assert [g for g in got if g[0] == task_id] == [s for s in stored if s[0] == task_id]
        for task_id in {t for t, *_ in stored}:
            assert [g[4] for g in got if g[0] == task_id][-1] == "success"
        assert all(e.run_id == run_id and e.timestamp for e in ti_events.items)
        assert [(e.old_state, e.new_state) for e in run_events.items] == \
            [("queued", "running"), ("running", "success")]
    finally:
        for collector in (ti_events, run_events, beats):
            collector.close()


# -- durable outside triggers -----------------------------------------------------------------

def test_outside_trigger_published_twice_starts_one_run(bus_env, nats_url):
    from updraft.store.commands import trigger_dag_run  # noqa: F401  (store importable)
    from updraft.store.models import TriggerDedup

    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    with running(bus_env) as (_scheduler, node):
        h.wait_parsed("params_dag")
        body = json.dumps({"conf": {"size": 7}}).encode()
        js_publish(nats_url, subjects.trigger("params_dag"), body, msg_id="order-42")
        js_publish(nats_url, subjects.trigger("params_dag"), body, msg_id="order-42")
        run = h.wait_for(lambda: h.runs("params_dag"), what="the triggered run")[0]
        h.wait_run("params_dag", run.run_id)
        assert run.conf == {"size": 7}
        # Past JetStream's duplicate window (simulated: the id is only in trigger_dedup),
        # a redelivered or re-published message id still starts no second run.
        with h.session() as s:
            s.add(TriggerDedup(msg_id="order-43", dag_id="params_dag", run_id=run.run_id))
        js_publish(nats_url, subjects.trigger("params_dag"), body, msg_id="order-43")
        h.wait_for(lambda: node.stats["duplicates"] >= 1, what="the duplicate to be seen")
        h.wait_for(lambda: consumer_backlog(nats_url) == (0, 0), what="all acked")
        assert len(h.runs("params_dag")) == 1
        with h.session() as s:
            assert s.get(TriggerDedup, "order-42").run_id == run.run_id


def test_trigger_published_while_no_scheduler_runs_starts_when_it_starts(bus_env, nats_url):
    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    ensure_stream(nats_url)  # created by any scheduler that ran once (or standalone)
    js_publish(nats_url, subjects.trigger("params_dag"),
               b'{"conf": {"size": 9}, "run_id": "from_outside"}', msg_id="m-1")
    time.sleep(0.3)
    assert h.runs("params_dag") == []
    # The DAG file is new to this scheduler: the trigger waits for the first parse.
    with running(bus_env):
        h.wait_for(lambda: h.runs("params_dag"), what="the waiting trigger's run")
        h.wait_run("params_dag", "from_outside")
        assert h.run_state("params_dag", "from_outside") == "success"
        assert h.runs("params_dag")[0].conf == {"size": 9}


def test_bad_triggers_are_terminated_and_rejected(bus_env, nats_url):
    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    rejections = Collector(subjects.trigger_rejected(), schemas.TriggerRejected)
    try:
        with running(bus_env) as (_scheduler, node):
            h.wait_parsed("params_dag")
            cases = [
                ("params_dag", b'{"conf": ', "m-json", "invalid JSON at line 1"),
                ("no.such dag", b'{"conf": {}}', "m-dag", "DAG 'no.such dag' not found"),
                ("params_dag", b'{"conf": {"size": -1}}', "m-param", "refused the run"),
                ("params_dag", b'{"conf": {}, "colour": 1}', "m-field", "unknown field"),
                ("params_dag", b'{"conf": 3}', "m-type", "wrong type for 'conf'"),
            ]
            for dag_id, body, msg_id, _reason in cases:
                js_publish(nats_url, subjects.trigger(dag_id), body, msg_id=msg_id)
            rejections.wait(lambda items: len(items) >= len(cases), "every rejection")
            by_id = {r.msg_id: r for r in rejections.items}
            for dag_id, _body, msg_id, reason in cases:
                assert reason in by_id[msg_id].reason, by_id[msg_id]
                assert by_id[msg_id].dag_id == dag_id
                assert by_id[msg_id].subject == subjects.trigger(dag_id)
            assert node.stats["rejected"] == len(cases)
            h.wait_for(lambda: consumer_backlog(nats_url) == (0, 0), what="nothing pending")
            assert h.runs("params_dag") == []
    finally:
        rejections.close()


# -- NATS down -----------------------------------------------------------------------------------

def test_nats_restart_mid_run_loses_nothing(bus_env, tmp_path, monkeypatch):
    from bus.embedded import EmbeddedNatsServer
    from updraft.config import conf

    server = EmbeddedNatsServer(tmp_path / "js").start()
    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", server.url)
    conf.reload()
    h.write_dag(bus_env, "slow", SLOW_DAG.format(dag_id="slow"))
    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    events = Collector(subjects.evt_ti("slow"), schemas.TiStateEvent, servers=server.url)
    try:
        with running(bus_env, servers=server.url):
            h.wait_parsed("slow")
            h.wait_parsed("params_dag")
            run_id = command("trigger", dag_id="slow")["run_id"]
            h.wait_for(lambda: h.states("slow", run_id).get("s1", (None,))[0] == "success",
                       what="the run under way")
            server.stop()
            time.sleep(1.5)
            server.start()
            # A trigger published after the restart is consumed by the resumed consumer
            # (JetStream needs a moment to recover its streams: retry as a publisher would).
            h.wait_for(lambda: _try_publish(server.url, subjects.trigger("params_dag"),
                                            b'{"conf": {}}', "after"),
                       timeout=30, interval=0.2, what="JetStream back after the restart")
            h.wait_run("slow", run_id)
            assert h.run_state("slow", run_id) == "success"
            h.wait_for(lambda: h.runs("params_dag"), what="the trigger after the restart")
            # Events buffered while NATS was away, and later ones, arrive; s7 finished last.
            events.wait(lambda items: any(e.task_id == "s7" and e.new_state == "success"
                                          for e in items), "events after the restart")
    finally:
        events.close()
        server.stop()


def test_scheduler_runs_without_nats(bus_env, monkeypatch, caplog):
    from bus.node import start_scheduler_bus
    from updraft.config import conf

    monkeypatch.setenv("UPDRAFT__NATS__SERVERS", "nats://127.0.0.1:1")
    conf.reload()
    h.write_dag(bus_env, "params_dag", PARAMS_DAG.format(dag_id="params_dag"))
    from executors import get_executor
    from scheduler.core import Scheduler

    scheduler = Scheduler(get_executor("sequential"), dags_folder=str(bus_env))
    started = time.monotonic()
    node = start_scheduler_bus(scheduler, wait=1.0)
    assert node is not None and not node.bus.connected
    assert time.monotonic() - started < 5
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    try:
        h.wait_parsed("params_dag")
        run_id = h.trigger("params_dag")
        h.wait_run("params_dag", run_id)
        assert h.run_state("params_dag", run_id) == "success"
        assert "cannot reach NATS" in caplog.text
    finally:
        scheduler.stop()
        thread.join(30)
        node.stop()


def test_events_tail_prints_state_changes(bus_env):
    from click.testing import CliRunner

    from bus.cli import events as events_group

    result: list = []
    thread = threading.Thread(target=lambda: result.append(CliRunner().invoke(
        events_group, ["tail", "--dag", "a.b", "--count", "2"])), daemon=True)
    thread.start()
    run_evt = schemas.RunStateEvent(dag_id="a.b", run_id="r", old_state="queued",
                                    new_state="running", timestamp="2024-01-01T00:00:00+00:00")
    ti_evt = schemas.TiStateEvent(dag_id="a.b", run_id="r", task_id="t", map_index=2,
                                  try_number=1, old_state="queued", new_state="running",
                                  timestamp="2024-01-01T00:00:01+00:00", cause="started")
    other = schemas.RunStateEvent(dag_id="a", run_id="r", old_state=None, new_state="queued",
                                  timestamp="t")
    with BusThread(name="test-publisher") as bus:
        assert bus.wait_connected(10)
        deadline = time.monotonic() + 30
        while thread.is_alive() and time.monotonic() < deadline:  # until tail subscribed
            bus.publish(subjects.evt_run("a"), schemas.encode(other))
            bus.publish(subjects.evt_run("a.b"), schemas.encode(run_evt))
            bus.publish(subjects.evt_ti("a.b"), schemas.encode(ti_evt))
            thread.join(0.2)
    thread.join(5)
    assert result and result[0].exit_code == 0, result and result[0].output
    lines = result[0].output.splitlines()
    # Tail may have subscribed between the two publishes of a round: order-insensitive.
    assert sorted(lines) == [
        "2024-01-01T00:00:00+00:00 run a.b r: queued -> running",
        "2024-01-01T00:00:01+00:00 ti  a.b r t[2] try 1: queued -> running (started)"]


def test_bus_thread_subscribe_and_buffered_publish(bus_env):
    """BusThread.subscribe (what the web's live views use) and publish before connecting."""
    import queue

    got: queue.Queue = queue.Queue()
    with BusThread(name="test-sub") as bus:
        sub = bus.subscribe(subjects.evt_run("d"), lambda msg: got.put(msg.data))
        assert bus.wait_connected(10)
        with BusThread(name="test-pub") as publisher:  # publishes queued before connecting
            for i in range(50):
                publisher.publish(subjects.evt_run("d"), str(i).encode())
            publisher.flush()
        assert [got.get(timeout=10) for _ in range(50)] == [str(i).encode() for i in range(50)]
        sub.unsubscribe()
        bus.publish(subjects.evt_run("d"), b"late")
        bus.flush()
        time.sleep(0.2)
        assert got.empty()
