"""What a node does when it stops or loses the store: no helper process outlives it, and an
outage is logged once, not once per retry."""

from __future__ import annotations

import logging
import multiprocessing
import os

from sqlalchemy.exc import OperationalError

from bus.assets import AssetEvents
from updraft.utils.process_exit import stop_resource_tracker


def _nothing() -> None:
    pass


def test_resource_tracker_is_reaped_once_spawned_children_are_gone():
    from multiprocessing import resource_tracker

    process = multiprocessing.get_context("spawn").Process(target=_nothing)
    process.start()
    process.join(60)
    pid = resource_tracker._resource_tracker._pid
    assert pid is not None, "a spawn start runs the resource tracker"

    assert stop_resource_tracker(timeout=10) is True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"resource tracker {pid} still runs")
    assert stop_resource_tracker() is True, "a second call finds nothing to stop"


def test_asset_watchers_log_a_store_outage_once_and_its_end_once(caplog):
    class Node:
        node_id = "test"

    watchers = AssetEvents(Node())
    unreachable = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    with caplog.at_level(logging.WARNING, logger="updraft.bus.assets"):
        for _ in range(5):
            watchers._watch_failed(unreachable)
        watchers._watch_outage.succeeded()
        for _ in range(3):
            watchers._watch_failed(ValueError("bad subject"))
        watchers._watch_failed(ValueError("another"))
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert "unreachable" in lines[0] and "back after" in lines[1]
    assert "bad subject" in lines[2] and "another" in lines[3]
