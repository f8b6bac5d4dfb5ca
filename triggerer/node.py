"""The triggerer node's loop: lease triggers from the store, run them on the runner's event
loop, write what they produced, and nudge the schedulers (ADR 11).

A pass runs as soon as a trigger produced something, and at least every ``[triggerer]
poll_interval`` seconds: it writes the events and failures the runner collected (``deferred
-> scheduled``, compare-and-set, in batches) and publishes ``P.wake.scheduler``; once per
``poll_interval`` it also renews this node's leases and cancels the triggers it no longer
holds, resumes deferrals past their timeout in ``__fail__``, and claims free triggers up to
``capacity``. A trigger whose lease passed (its triggerer died) is free:
the next triggerer to look takes it, so a dead node's triggers resume elsewhere within about
one lease. A triggerer that stops releases its triggers at once.

While the store is away a pass fails and the loop retries with backoff; triggers keep
running, and their results wait for the store.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from datetime import timedelta

from updraft.config import conf
from updraft.store.engine import session_scope
from updraft.store.outage import OutageReporter, is_store_unavailable, retry_while_unavailable
from updraft.utils.timezone import utcnow

from triggerer.runner import TriggerRunner

log = logging.getLogger("updraft.triggerer")

#: Seconds between two sweeps of triggers no task waits for any more.
CLEAN_INTERVAL = 5.0
#: Seconds a pass waits after the first event of a burst, to write the burst at once.
BATCH_WINDOW = 0.02
#: Seconds between two heartbeats in the node table.
HEARTBEAT_INTERVAL = 5.0


class Triggerer:
    """Runs deferred tasks' triggers; several share the work through leases in the store."""

    def __init__(self, store_url: str | None = None, *, capacity: int | None = None,
                 node_id: str | None = None, lease_seconds: float | None = None,
                 poll_interval: float | None = None, bus=None) -> None:
        self.store_url = store_url
        self.capacity = capacity or conf.getint("triggerer", "capacity")
        self.lease = timedelta(seconds=lease_seconds or
                               conf.getfloat("triggerer", "lease_seconds"))
        self.poll_interval = poll_interval or conf.getfloat("triggerer", "poll_interval")
        self.node_id = node_id or f"triggerer-{socket.gethostname()}-{os.getpid()}-" \
                                  f"{uuid.uuid4().hex[:6]}"
        self.bus = bus
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.runner = TriggerRunner(block_threshold=conf.getfloat("triggerer", "block_threshold"),
                                    on_result=self._wake.set)
        self._outage = OutageReporter("triggerer", log)
        self._pending: list[tuple] = []
        self._last_clean = 0.0
        self._last_beat = 0.0
        self._next_housekeeping = 0.0
        #: counters, for logs, tests and the benchmark
        self.stats = {"claimed": 0, "fired": 0, "failed": 0, "timed_out": 0, "lost": 0}

    # -- control ---------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def start(self) -> None:
        from updraft.store.migrate import ensure_migrated

        deadline = time.monotonic() + conf.getfloat("database", "connect_wait")
        retry_while_unavailable(lambda: ensure_migrated(self.store_url),
                                what="triggerer start", reporter=self._outage,
                                deadline=deadline)
        # Triggers defined next to the DAGs or in the plugins folder import as DAG files do.
        from updraft.plugins.folder import plugins_folder

        for folder in (str(conf.dags_folder()), str(plugins_folder())):
            if folder not in sys.path:
                sys.path.append(folder)
        # NATS triggers connect with the credentials and TLS of [nats], as the bus does.
        from bus.connection import security_options
        from updraft.triggers.nats import set_connect_options

        set_connect_options(security_options())
        self.runner.start()
        log.info("Triggerer %s started (capacity %d, lease %.0f s)", self.node_id,
                 self.capacity, self.lease.total_seconds())

    def run(self) -> None:
        """Loop until stopped."""
        self.start()
        backoff = 0.2
        try:
            while not self._stop.is_set():
                try:
                    wait = self.loop_once()
                except Exception as exc:  # noqa: BLE001  (the next pass starts over)
                    if is_store_unavailable(exc):
                        self._outage.failed(exc)
                    else:
                        log.exception("A triggerer pass failed; the next one starts over")
                    self._wake.wait(backoff)
                    self._wake.clear()
                    backoff = min(backoff * 2, 5.0)
                    continue
                if self._outage.in_outage:
                    self._outage.succeeded()
                backoff = 0.2
                if self._wake.wait(wait) and not self._stop.is_set():
                    # Events come in bursts: gather a few milliseconds' worth per write.
                    time.sleep(BATCH_WINDOW)
                self._wake.clear()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Stop the triggers and give their leases back, so others take them at once."""
        self.runner.stop()
        try:
            from updraft.store.nodes import record_node
            from updraft.store.triggers import release

            with session_scope(self.store_url, write=True) as session:
                released = release(session, self.node_id)
                record_node(session, self.node_id, "triggerer", "stopped", {}, utcnow())
            if released:
                log.info("Released %d trigger(s) for other triggerers", released)
        except Exception as exc:  # noqa: BLE001  (stopping must not fail on the store)
            log.warning("could not release this triggerer's triggers: %s", exc)

    # -- one pass --------------------------------------------------------------------------

    def loop_once(self) -> float:
        """One pass (see the module docstring); returns how long to wait for the next.

        What the triggers produced is written at once; the rest (leases, timeouts, claims)
        waits for its turn every ``poll_interval``, so a burst of events is written in
        batches instead of paying for the housekeeping each time."""
        from updraft.store import triggers as store

        now = utcnow()
        self._pending.extend(self.runner.take_results())
        woken: list = []
        if self._pending:
            events = [(r[1], r[2]) for r in self._pending if r[0] == "event"]
            failures = [(r[1], r[2], r[3]) for r in self._pending if r[0] == "failure"]
            with session_scope(self.store_url, write=True) as session:
                woken += store.fire(session, events, triggerer_id=self.node_id, now=now,
                                    node=self.node_id)
                woken += store.fail(session, failures, triggerer_id=self.node_id, now=now,
                                    node=self.node_id)
            self._pending = []
            self.stats["fired"] += len(events)
            self.stats["failed"] += len(failures)
        due = time.monotonic() >= self._next_housekeeping
        if due:
            self._next_housekeeping = time.monotonic() + self.poll_interval
            woken += self._housekeeping(now)
        if woken:
            self._nudge_schedulers()
        return max(0.0, self._next_housekeeping - time.monotonic())

    def _housekeeping(self, now) -> list:
        from updraft.store import triggers as store

        with session_scope(self.store_url, write=True) as session:
            held = store.renew_leases(session, self.node_id, now=now, lease=self.lease)
        lost = self.runner.running_ids() - held
        if lost:
            self.stats["lost"] += len(lost)
            self.runner.cancel(lost)
        with session_scope(self.store_url, write=True) as session:
            timed_out = store.time_out_deferred(session, now, self.node_id)
        self.stats["timed_out"] += len(timed_out)
        with session_scope(self.store_url, write=True) as session:
            claimed = store.claim_triggers(session, self.node_id, capacity=self.capacity,
                                           now=now, lease=self.lease)
        if claimed:
            self._start(claimed, now)
        if time.monotonic() - self._last_clean >= CLEAN_INTERVAL:
            self._last_clean = time.monotonic()
            with session_scope(self.store_url, write=True) as session:
                store.clean_unused(session)
        if time.monotonic() - self._last_beat >= HEARTBEAT_INTERVAL:
            self._last_beat = time.monotonic()
            self._heartbeat(now)
        return timed_out

    def _start(self, claimed, now) -> None:
        from types import SimpleNamespace

        from updraft.store.task_services import StoreTaskServices
        from updraft.triggers.base import build_trigger

        services = StoreTaskServices(self.store_url)
        self.stats["claimed"] += len(claimed)
        batch = []
        broken = []
        for row in claimed:
            try:
                trigger = build_trigger(row.classpath, row.kwargs)
            except Exception as exc:  # noqa: BLE001  (its task resumes in __fail__)
                log.error("Cannot build %s: %s", row.label, exc)
                broken.append((row.id, f"Trigger failure: cannot build {row.classpath}: {exc}",
                               None))
                continue
            trigger.trigger_id = row.id
            # What triggers waiting for other runs read the store through (ADR 8).
            trigger.task_services = services
            trigger.task_instance = SimpleNamespace(
                dag_id=row.dag_id, run_id=row.run_id, task_id=row.task_id,
                map_index=row.map_index, try_number=row.try_number)
            batch.append((row.id, row.label, trigger))
        if broken:
            self._pending.extend(("failure", *b) for b in broken)
            self._wake.set()
        self.runner.add(batch)
        log.info("Running %d new trigger(s); %d in all", len(batch),
                 len(self.runner.running_ids()) + len(batch))

    def _nudge_schedulers(self) -> None:
        if self.bus is None:
            return
        try:
            from bus import subjects

            self.bus.publish(subjects.wake_scheduler(), b"")
        except Exception:  # noqa: BLE001  (a nudge; the scheduler's timer catches up)
            log.debug("nudging the schedulers failed", exc_info=True)

    def _heartbeat(self, now) -> None:
        from updraft.store.nodes import record_node

        info = {"triggers": len(self.runner.running_ids()), "capacity": self.capacity,
                **self.stats}
        if self.runner.blocks:
            seconds, label = self.runner.blocks[-1]
            info["last_block"] = f"{seconds:.2f} s by {label}"
        with session_scope(self.store_url, write=True) as session:
            record_node(session, self.node_id, "triggerer", "running", info, now)


def run_triggerer(capacity: int | None = None) -> None:
    """Entry point of ``updraft triggerer``: the loop, a bus connection for the nudges, and
    signals (SIGTERM/SIGINT stop it, a second one ends it at once)."""
    import signal

    from bus.connection import BusThread

    bus = BusThread(name="triggerer")
    bus.start(wait=1.0)  # never waits for NATS longer: the schedulers' timer is the fallback
    triggerer = Triggerer(capacity=capacity, bus=bus)

    def _stop(signum, _frame):
        if triggerer._stop.is_set():
            os._exit(128 + signum)
        log.info("Stopping the triggerer (its triggers go to other triggerers)")
        triggerer.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        triggerer.run()
    finally:
        bus.stop()


__all__ = ["Triggerer", "run_triggerer"]
