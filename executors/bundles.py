"""Running a bundle of tries in a worker: one after the other, unless one holds up the rest.

A bundle (see ``executors.dask``) is several tries sent as one Dask task. They run in order
in the worker thread of that task. A try that runs long must not keep the tries behind it
waiting, where Dask would have given them a free thread: when every thread of a bundle has
been on its current try for ``RELEASE_AFTER`` seconds and tries are still waiting, one
process-wide watcher starts another thread for the bundle. So the tries of a bundle wait
for each other at most that long; short tries (the reason for bundles) never see a second
thread. The bundle's Dask task ends when all its tries have.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

#: How long a try may hold up the tries behind it in its bundle (seconds).
RELEASE_AFTER = 0.5
WATCH_INTERVAL = 0.1


class Bundle:
    """The tries of one bundle and the threads draining them."""

    def __init__(self, items: list[Any], run_one: Callable[[Any], Any],
                 release_after: float = RELEASE_AFTER) -> None:
        self.release_after = release_after
        self._pending: deque[tuple[int, Any]] = deque(enumerate(items))
        self._run_one = run_one
        self.results: list[Any] = [None] * len(items)
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._busy_since: dict[int, float] = {}
        self._helpers = 0
        #: Threads started besides the one the bundle was given (for tests).
        self.helpers_started = 0

    def run(self) -> list[Any]:
        """Run every try (in this thread, and in helpers if one holds up the rest)."""
        _watcher.add(self)
        try:
            self._drain()
            with self._idle:
                while self._helpers:
                    self._idle.wait()
        finally:
            _watcher.remove(self)
        return self.results

    def _drain(self) -> None:
        me = threading.get_ident()
        while True:
            with self._lock:
                if not self._pending:
                    self._busy_since.pop(me, None)
                    return
                index, item = self._pending.popleft()
                self._busy_since[me] = time.monotonic()
            try:
                result = self._run_one(item)
            except Exception as exc:  # noqa: BLE001  (the bundle raises it when all ran)
                with self._lock:
                    self.errors.append(exc)
                continue
            self.results[index] = result

    def _stalled(self, now: float) -> bool:
        with self._lock:
            return bool(self._pending) and bool(self._busy_since) and all(
                now - since >= self.release_after for since in self._busy_since.values())

    def _add_helper(self) -> None:
        with self._lock:
            self._helpers += 1
            self.helpers_started += 1

        def helper():
            try:
                self._drain()
            finally:
                with self._idle:
                    self._helpers -= 1
                    self._idle.notify_all()

        threading.Thread(target=helper, name="updraft-bundle-helper", daemon=True).start()


class _Watcher:
    """One thread per process that gives held-up bundles another thread."""

    def __init__(self) -> None:
        self._bundles: set[Bundle] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, bundle: Bundle) -> None:
        with self._lock:
            self._bundles.add(bundle)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="updraft-bundles",
                                                daemon=True)
                self._thread.start()

    def remove(self, bundle: Bundle) -> None:
        with self._lock:
            self._bundles.discard(bundle)

    def _loop(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self._lock:
                bundles = list(self._bundles)
            for bundle in bundles:
                if bundle._stalled(now):
                    bundle._add_helper()


_watcher = _Watcher()


def run_bundle(items: list[Any], run_one: Callable[[Any], Any],
               release_after: float = RELEASE_AFTER) -> tuple[list[Any], list[BaseException]]:
    """Run ``run_one`` on every item; returns (results in order, errors raised).

    ``release_after``: how long a try may hold up the rest (``RELEASE_AFTER`` by default).
    """
    bundle = Bundle(items, run_one, release_after)
    results = bundle.run()
    return results, bundle.errors


__all__ = ["RELEASE_AFTER", "Bundle", "run_bundle"]
