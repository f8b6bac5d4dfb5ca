"""Triggers and the triggerer's event loop without a store (issue 14, ADR 11): serialization
round trips, the NATS filter, the runner collecting first events and failures, and the
watchdog naming a trigger that blocks the loop."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from triggerer.runner import TriggerRunner
from updraft.exceptions import TaskDeferred
from updraft.triggers.base import BaseTrigger, TriggerEvent, build_trigger
from updraft.triggers.nats import matches
from updraft.triggers.temporal import DateTimeTrigger, TimeDeltaTrigger


def test_time_triggers_serialize_to_what_rebuilds_them():
    moment = datetime(2030, 1, 1, tzinfo=UTC)
    classpath, kwargs = DateTimeTrigger(moment).serialize()
    rebuilt = build_trigger(classpath, kwargs)
    assert isinstance(rebuilt, DateTimeTrigger) and rebuilt.moment == moment
    # A TimeDeltaTrigger is stored as the moment it fires (as in Airflow).
    classpath, kwargs = TimeDeltaTrigger(timedelta(minutes=5)).serialize()
    assert classpath == "updraft.triggers.temporal.DateTimeTrigger"
    # Airflow's class paths of the same triggers rebuild Updraft's.
    assert isinstance(build_trigger("airflow.triggers.temporal.DateTimeTrigger",
                                    {"moment": moment}), DateTimeTrigger)
    with pytest.raises(ValueError, match="naive"):
        DateTimeTrigger(datetime(2030, 1, 1))


def test_defer_raises_task_deferred_beyond_except_exception():
    from updraft.operators.base import BaseOperator

    op = BaseOperator(task_id="t")
    try:
        try:
            op.defer(trigger=TimeDeltaTrigger(timedelta(seconds=1)), method_name="resume",
                     kwargs={"a": 1}, timeout=timedelta(seconds=5))
        except Exception:  # noqa: BLE001  (what a task's own handler would do)
            pytest.fail("TaskDeferred must not be an Exception")
    except TaskDeferred as deferred:
        assert deferred.method_name == "resume" and deferred.kwargs == {"a": 1}


@pytest.mark.parametrize("pattern, value, expected", [
    (None, {"a": 1}, False),
    ({"a": 1}, {"a": 1, "b": 2}, True),
    ({"a": 1}, {"a": 2}, False),
    ({"a": {"b": [1, 2]}}, {"a": {"b": [1, 2], "c": 3}}, True),
    ({"a": {"b": 1}}, {"a": 1}, False),
    ({"missing": None}, {"a": 1}, False),
    ("text", "text", True),
])
def test_nats_filter_matches_key_by_key(pattern, value, expected):
    assert matches(pattern, value) is expected


class _Immediate(BaseTrigger):
    def __init__(self, value, fail=False):
        super().__init__()
        self.value, self.fail = value, fail

    def serialize(self):
        return ("tests.unit.test_triggers._Immediate", {"value": self.value})

    async def run(self):
        await asyncio.sleep(0.01)
        if self.fail:
            raise RuntimeError(f"broken {self.value}")
        yield TriggerEvent(self.value)
        yield TriggerEvent("never taken")


class _Blocking(BaseTrigger):
    def serialize(self):
        return ("tests.unit.test_triggers._Blocking", {})

    async def run(self):
        time.sleep(0.6)  # wrong on purpose
        yield TriggerEvent("done")


def _wait_results(runner: TriggerRunner, count: int, timeout: float = 10.0) -> list:
    results: list = []
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        results += runner.take_results()
        time.sleep(0.02)
    return results


def test_the_runner_takes_each_trigger_s_first_event_or_its_failure():
    runner = TriggerRunner(block_threshold=5.0).start()
    try:
        runner.add((i, f"t{i}", _Immediate(i, fail=(i == 3))) for i in range(1000))
        results = _wait_results(runner, 1000)
    finally:
        runner.stop()
    events = {r[1]: r[2].payload for r in results if r[0] == "event"}
    failures = {r[1]: r[2] for r in results if r[0] == "failure"}
    assert len(events) == 999 and events[7] == 7
    assert failures == {3: "Trigger failure: RuntimeError: broken 3"}
    assert runner.running_ids() == set()


def test_the_watchdog_names_the_trigger_that_blocks_the_loop(caplog):
    caplog.set_level("WARNING", logger="updraft.triggerer")
    runner = TriggerRunner(block_threshold=0.2).start()
    try:
        runner.add([(42, "trigger 42 (Blocking) of d.t run", _Blocking())])
        _wait_results(runner, 1)
        deadline = time.monotonic() + 5
        while not runner.blocks and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert runner.blocks and runner.blocks[0][1] == "trigger 42 (Blocking) of d.t run"
    assert runner.blocks[0][0] >= 0.4
    assert "test_triggers.py" in caplog.text and "in run" in caplog.text


def test_a_state_event_that_comes_before_its_commit_is_looked_at_again_soon(monkeypatch):
    """The scheduler may publish a run's new state before the store shows it: a trigger
    woken by the event looks again after 0.5 s (then 1, 2... s), not only at the
    once-a-minute safety check."""
    import contextlib
    import json
    from types import SimpleNamespace

    from updraft.triggers import external

    queue: asyncio.Queue = asyncio.Queue()

    @contextlib.asynccontextmanager
    async def listen(_subject):
        yield queue

    monkeypatch.setattr(external, "listen", listen)
    looks: list[float] = []

    class Waiting(external._StateWokenTrigger):
        dag_id, poll_interval = "target", 60.0

        def serialize(self):
            return ("tests.Waiting", {})

        def check(self):
            looks.append(time.monotonic())
            # The first look, and the one the event causes, still see the old state.
            return {"done": True} if len(looks) >= 3 else None

    async def scenario():
        events = Waiting().run()
        first = asyncio.ensure_future(events.__anext__())
        await asyncio.sleep(0.1)
        queue.put_nowait(SimpleNamespace(data=json.dumps({"dag_id": "target"}).encode()))
        return await asyncio.wait_for(first, 10)

    started = time.monotonic()
    event = asyncio.run(scenario())
    # Looked at again within seconds of the event, not at the minute's safety check.
    assert event.payload == {"done": True} and len(looks) == 3
    assert looks[2] - looks[1] < 8 and time.monotonic() - started < 10


def _deferred_trigger(sensor, listening: bool = False) -> DateTimeTrigger:
    """The trigger ``sensor`` defers on, an hour ahead, in a runtime with or without a
    success listener."""
    from updraft.task_services import NoTaskServices

    class Services(NoTaskServices):
        def has_listener(self, hook: str) -> bool:
            return listening and hook == "on_task_instance_success"

    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"data_interval_end": datetime.now(UTC), "task_services": Services()})
    return deferred.value.trigger


def test_a_time_sensor_with_nothing_to_resume_ends_in_the_triggerer_by_default():
    from updraft.assets import Asset
    from updraft.sensors.time import DateTimeSensorAsync, TimeDeltaSensor, TimeDeltaSensorAsync

    hour = timedelta(hours=1)
    plain = TimeDeltaSensor(task_id="plain", delta=hour, deferrable=True)
    assert _deferred_trigger(plain).end_from_trigger is True
    later = datetime.now(UTC) + hour
    assert _deferred_trigger(DateTimeSensorAsync(task_id="dt", target_time=later)) \
        .end_from_trigger is True
    asked = TimeDeltaSensorAsync(task_id="asked", delta=hour, end_from_trigger=False)
    assert _deferred_trigger(asked).end_from_trigger is False

    # Something of the user's would run on resuming: the try resumes on a worker.
    called = TimeDeltaSensorAsync(task_id="cb", delta=hour, on_success_callback=print)
    assert _deferred_trigger(called).end_from_trigger is False
    outlets = TimeDeltaSensorAsync(task_id="out", delta=hour, outlets=[Asset("s3://b/k")])
    assert _deferred_trigger(outlets).end_from_trigger is False
    assert _deferred_trigger(plain, listening=True).end_from_trigger is False

    class Overridden(TimeDeltaSensorAsync):
        def execute_complete(self, context, event=None):
            return "mine"

    class PostExecute(TimeDeltaSensorAsync):
        def post_execute(self, context, result=None):
            pass

    for cls in (Overridden, PostExecute):
        assert _deferred_trigger(cls(task_id="sub", delta=hour)).end_from_trigger is False
