"""Bundles of tries in a worker: in order, and a long try does not hold up the rest."""

from __future__ import annotations

import threading

from executors import bundles
from executors.bundles import Bundle, run_bundle


def test_short_items_run_in_order_in_the_calling_thread():
    seen = []
    results, errors = run_bundle([1, 2, 3], lambda i: seen.append(
        (i, threading.get_ident())) or i * 10)
    assert results == [10, 20, 30] and errors == []
    assert [i for i, _ in seen] == [1, 2, 3]
    assert {thread for _, thread in seen} == {threading.get_ident()}


def test_an_error_does_not_stop_the_others():
    def run(i):
        if i == 2:
            raise OSError("store away")
        return i

    results, errors = run_bundle([1, 2, 3], run)
    assert results == [1, None, 3]
    assert [str(e) for e in errors] == ["store away"]


def test_a_long_item_lets_the_rest_go_on_in_another_thread(monkeypatch):
    monkeypatch.setattr(bundles, "RELEASE_AFTER", 0.2)
    released = threading.Event()
    finished: list[str] = []

    def run(name):
        if name == "long":  # can only end once "b", queued behind it, has run
            assert released.wait(20), "the rest of the bundle waited for the long item"
        if name == "b":
            released.set()
        finished.append(name)
        return name

    bundle = Bundle(["long", "a", "b"], run)
    assert bundle.run() == ["long", "a", "b"]
    assert bundle.errors == [] and bundle.helpers_started >= 1
    assert finished == ["a", "b", "long"]
