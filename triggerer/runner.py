"""The event loop that runs triggers, in a thread of its own, and the watchdog that names a
trigger blocking it.

``TriggerRunner.add`` / ``cancel`` are called from the node's thread; what the triggers
produce (the first event of each, or why it failed) is collected for ``take_results``. The
watchdog reads the loop thread's stack from outside when the loop misses its beat: the
``_run_trigger`` frame on that stack names the trigger that holds the loop.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("updraft.triggerer")

#: How often the loop proves it is free.
BEAT = 0.05


class TriggerRunner:
    """Runs triggers on one asyncio loop; results are taken by the node's thread."""

    def __init__(self, *, block_threshold: float = 0.2,
                 on_result: Callable[[], None] | None = None) -> None:
        self.block_threshold = block_threshold
        self._on_result = on_result
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[int, asyncio.Task] = {}
        self._results: list[tuple] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._beat = time.monotonic()
        self._beating: asyncio.Task | None = None
        #: Blocks seen: (seconds, trigger label), for tests and the node's heartbeat.
        self.blocks: list[tuple[float, str]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> TriggerRunner:
        self._thread = threading.Thread(target=self._run_loop, name="updraft-triggers",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(10)
        threading.Thread(target=self._watch, name="updraft-trigger-watchdog",
                         daemon=True).start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel every trigger (their ``cleanup`` runs) and end the loop."""
        self._stopping.set()
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def _halt():
            tasks = list(self._tasks.values())
            if self._beating is not None:
                tasks.append(self._beating)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        try:
            asyncio.run_coroutine_threadsafe(_halt(), loop)
        except RuntimeError:
            return
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_loop(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self._beating = loop.create_task(self._heartbeat())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _heartbeat(self) -> None:
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(BEAT)

    # -- the node's side -------------------------------------------------------------------

    def add(self, triggers: Iterable[tuple[int, str, Any]]) -> None:
        """Start ``(trigger id, label, trigger object)``s on the loop (thread-safe)."""
        batch = list(triggers)
        if batch and self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_batch, batch)

    def cancel(self, ids: Iterable[int]) -> None:
        """Stop these triggers (thread-safe): they were lost, or their task moved on."""
        ids = list(ids)
        if ids and self._loop is not None:
            self._loop.call_soon_threadsafe(self._cancel_batch, ids)

    def running_ids(self) -> set[int]:
        return set(self._tasks)

    def take_results(self) -> list[tuple]:
        """``("event", id, event)`` and ``("failure", id, error, traceback lines)`` since the
        last call."""
        with self._lock:
            results, self._results = self._results, []
        return results

    # -- on the loop ---------------------------------------------------------------------------

    def _start_batch(self, batch: list[tuple[int, str, Any]]) -> None:
        loop = asyncio.get_running_loop()
        for trigger_id, label, trigger in batch:
            if trigger_id in self._tasks:
                continue
            self._tasks[trigger_id] = loop.create_task(
                self._run_trigger(trigger_id, label, trigger), name=f"trigger-{trigger_id}")

    def _cancel_batch(self, ids: list[int]) -> None:
        for trigger_id in ids:
            task = self._tasks.get(trigger_id)
            if task is not None:
                task.cancel()

    def _report(self, result: tuple) -> None:
        with self._lock:
            self._results.append(result)
        if self._on_result is not None:
            self._on_result()

    async def _run_trigger(self, trigger_id: int, label: str, trigger: Any) -> None:
        # ``label`` is read from this frame by the watchdog: keep the name.
        events = trigger.run()
        try:
            try:
                event = await events.__anext__()
            except StopAsyncIteration:
                self._report(("failure", trigger_id, "Trigger exited without sending an event",
                              None))
            else:
                self._report(("event", trigger_id, event))
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # noqa: BLE001  (the task resumes in __fail__ with this)
            self._report(("failure", trigger_id, f"Trigger failure: {type(exc).__name__}: {exc}",
                          traceback.format_exception(exc)))
        finally:
            self._tasks.pop(trigger_id, None)
            try:
                await events.aclose()
            except BaseException:  # noqa: BLE001
                pass
            try:
                await trigger.cleanup()
            except Exception:  # noqa: BLE001
                log.exception("cleanup of %s failed", label)

    # -- the watchdog ------------------------------------------------------------------------

    def _watch(self) -> None:
        """Name the trigger holding the loop when it misses its beat by ``block_threshold``."""
        blocked_by: str | None = None
        blocked_since = 0.0
        while not self._stopping.is_set():
            time.sleep(min(self.block_threshold / 2, 0.1))
            late = time.monotonic() - self._beat - BEAT
            if late > self.block_threshold:
                if blocked_by is None:
                    culprit, where = self._culprit()
                    if culprit is None:  # waiting in select: the process was starved
                        continue
                    blocked_since = self._beat + BEAT
                    blocked_by = culprit
                    log.warning("The triggers' event loop is blocked (%.2f s so far) by %s, "
                                "at %s: a trigger must await, never block (use "
                                "asyncio.to_thread for a blocking call)", late, blocked_by, where)
            elif blocked_by is not None:
                seconds = self._beat - blocked_since
                log.warning("The triggers' event loop was blocked for %.2f s by %s", seconds,
                            blocked_by)
                self.blocks.append((seconds, blocked_by))
                blocked_by = None

    def _culprit(self) -> tuple[str | None, str]:
        """Who holds the loop: the label of the trigger on the loop thread's stack, and
        where it is; None if the loop is only waiting for I/O (a loaded machine, not a
        trigger, made it late)."""
        thread = self._thread
        frame = sys._current_frames().get(thread.ident) if thread is not None else None
        top = frame
        where = "?"
        if top is not None:
            where = f"{top.f_code.co_filename}:{top.f_lineno} in {top.f_code.co_name}"
            if top.f_code.co_name in ("select", "poll", "_run_once") and \
                    "selectors" in top.f_code.co_filename:
                return None, where
        while frame is not None:
            if frame.f_code is TriggerRunner._run_trigger.__code__:
                return str(frame.f_locals.get("label")), where
            frame = frame.f_back
        return "code outside any trigger", where


__all__ = ["TriggerRunner"]
