"""The scheduler: an event-driven loop around the pure run logic.

Each pass: (1) take finished tries from the executor and mark their runs dirty (a try that
never reached a worker is queued again, counting nothing; a lost worker's running tries
fail at once); (2) on the slow timer, create runs that came due, start queued runs, time
out runs, fail zombies and mark every running run dirty (reconciliation: the store is the
truth, events only hints); (3) evaluate each dirty run with ``updraft.runlogic.decide`` and
apply the result (skips, upstream_failed, expansions, scheduled, the run's state); (4)
queue what the limits allow and submit it. Then it sleeps until the executor wakes it, the
next timer is due, or a run's wake-up time comes (a retry delay, a reschedule): there is no
fixed sleep between a task's end and its downstream task's start, and no timer thread.

While the store is away a pass fails; the loop retries with backoff (0.2 s doubling to
5 s), logging the outage once, and keeps the executor's events until a pass can handle
them. For ``zombie_threshold`` seconds after the store is back no try is failed as a zombie:
their heartbeats could not be written meanwhile.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import datetime

from sqlalchemy import select

from updraft.config import conf
from updraft.runlogic import decide, specs_from_dag
from updraft.state import DagRunState, TaskInstanceState as TI
from updraft.store.engine import get_engine, is_sqlite, session_scope
from updraft.store.models import DagModel, DagRunModel, utcnow
from updraft.store.nodes import record_node
from updraft.store.outage import OutageReporter, is_store_unavailable, retry_while_unavailable
from updraft.store.runs import (
    expand_task,
    past_view,
    set_run_state,
    set_ti_states,
    xcom_lengths,
)

from scheduler import dispatch, runs, zombies
from scheduler.assets import AssetRuns
from updraft.store.assets import any_asset_consumer, newest_event_id
from scheduler.integrity import verify_integrity
from scheduler.snapshots import SnapshotCache
from scheduler.waiting import WaitingReasons

log = logging.getLogger("updraft.scheduler")


class DagCache:
    """Serialized DAGs by id (newest) and by hash, and their TaskSpecs, read once."""

    def __init__(self, ttl: float = 2.0):
        self.ttl = ttl
        self._latest: dict[str, tuple[float, object]] = {}
        self._specs: dict[str, dict] = {}

    def read(self, session, dag_id: str):
        from updraft.store.dags import read_dag

        cached = self._latest.get(dag_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        dag = read_dag(session, dag_id)
        self._latest[dag_id] = (now, dag)
        return dag

    def specs(self, dag) -> dict:
        key = dag.dag_hash
        specs = self._specs.get(key)
        if specs is None:
            specs = specs_from_dag(dag)
            self._specs[key] = specs
        return specs

    def invalidate(self) -> None:
        self._latest.clear()


class Scheduler:
    """Runs DAGs: creates runs, decides what is ready, dispatches it to the executor."""

    def __init__(self, executor=None, *, store_url: str | None = None,
                 num_runs: int = -1, node_id: str | None = None, run_processor: bool = True,
                 dags_folder: str | None = None, bus=None) -> None:
        from executors import get_executor

        self.store_url = store_url
        self.dags_folder = str(dags_folder or conf.dags_folder())
        self.executor = executor or get_executor()
        self.num_runs = num_runs
        self.node_id = node_id or f"scheduler-{socket.gethostname()}-{os.getpid()}-" \
                                  f"{uuid.uuid4().hex[:6]}"
        self.reconcile_interval = conf.getfloat("scheduler", "reconcile_interval")
        self.zombie_threshold = conf.getfloat("scheduler", "zombie_threshold")
        self.scheduler_health_threshold = conf.getfloat("scheduler",
                                                        "scheduler_health_check_threshold")
        self.run_version_policy = str(conf.get("core", "run_version_policy")).strip().lower()
        self.dags = DagCache()
        self._bus = bus
        self._dirty: set[tuple[str, str]] = set()
        self._check_queued = True
        self._warm_due = True
        self._warmed: dict[str, str | None] = {}
        self.snapshots = SnapshotCache(self.node_id, event_feed=self._single_writer_store(),
                                       keep_events=bus is not None)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_reconcile = 0.0
        #: When each run must be looked at again (retry delays, reschedules).
        self._wake_at: dict[tuple[str, str], datetime] = {}
        self._pending_events: list = []
        #: Asset-triggered runs (ADR 10), looked for when something may have delivered
        #: events or freed a run: a try ended, an outside event came, a run ended, a timer.
        self.asset_runs = AssetRuns()
        self._check_assets = True
        #: A try ended: look only if an event was recorded since (the newest event id).
        self._assets_maybe = False
        self._newest_event = -1
        #: Whether a DAG is scheduled on an asset, read at most once a second.
        self._asset_consumers = True
        self._consumers_read_at = 0.0
        self._outage = OutageReporter("scheduler", log)
        self._zombies_paused_until = 0.0
        #: Lost workers whose running tries are failed once their heartbeats stop
        #: (a worker closing gracefully still records its tries itself).
        self._lost_workers: dict[str, tuple[str, float]] = {}
        self._task_heartbeat = conf.getfloat("scheduler", "task_heartbeat_interval")
        self._lost_worker_watch = 2 * self._task_heartbeat + 10.0
        self._loops = 0
        self.processor = None
        self._reaper = None
        if run_processor:
            from scheduler.processor import DagFileProcessor

            self.processor = DagFileProcessor(dags_folder=dags_folder, store_url=store_url,
                                              on_change=self._dags_changed,
                                              node_id=self.node_id)
        self.loop_durations: list[float] = []
        #: Why task instances are held back, written when it changes (scheduler.waiting);
        #: with no free executor slot, the candidates are explained once something new
        #: was scheduled.
        self.waiting = WaitingReasons()
        self._explain_slots = True

    @property
    def bus(self):
        """Where state changes and heartbeats are published (the NATS bus); None: nowhere."""
        return self._bus

    @bus.setter
    def bus(self, bus) -> None:
        self._bus = bus
        self.snapshots.keep_events = bus is not None

    # -- control ---------------------------------------------------------------------------

    def _single_writer_store(self) -> bool:
        """SQLite: one writer at a time, so event ids follow commit order."""
        return is_sqlite(get_engine(self.store_url))

    def wake(self) -> None:
        """Ask the loop to run a pass now (thread-safe): something outside the executor
        changed (a trigger, a command, a new DAG, an asset event), so queued runs and
        waiting asset events are looked at too."""
        self._check_queued = True
        self._check_assets = True
        self._wake.set()

    def _on_executor_event(self) -> None:
        """The executor's wakeup: a try ended; only its run needs a look."""
        self._wake.set()

    def _dags_changed(self) -> None:
        # The processor stored new DAG versions: read them now, not when the cache expires.
        self.dags.invalidate()
        self.asset_runs.forget()
        self._warm_due = True
        self.wake()

    def _warm_workers(self) -> None:
        """Have the executor's workers parse new versions of active, unpaused DAGs before
        their first tries need them."""
        self._warm_due = False
        with session_scope(self.store_url) as session:
            rows = session.execute(select(DagModel.dag_id, DagModel.fileloc, DagModel.dag_hash)
                                   .where(DagModel.is_active, ~DagModel.is_paused)).all()
        todo = [(r.fileloc, r.dag_id) for r in rows
                if r.fileloc and self._warmed.get(r.dag_id) != r.dag_hash]
        self._warmed = {r.dag_id: r.dag_hash for r in rows}
        if todo:
            # Runs execute a DAG bundle version (ADR 12): warm what new runs will name.
            from scheduler.run_code import newest_code

            with session_scope(self.store_url) as session:
                todo = newest_code(session, todo, self.dags_folder)
            self.executor.warm(todo)
            # A trigger of a big DAG would otherwise deserialize it first: do it now, aside.
            threading.Thread(target=self._read_ahead, args=([d for _f, d in todo],),
                             name="updraft-read-ahead", daemon=True).start()

    def _read_ahead(self, dag_ids: list[str]) -> None:
        from updraft.task_execution import settle_heap
        from updraft.store.dags import CACHE_SIZE, read_dag

        try:
            with session_scope(self.store_url) as session:
                for dag_id in dag_ids[:CACHE_SIZE]:
                    read_dag(session, dag_id)
            settle_heap(min_interval=0)
        except Exception:  # noqa: BLE001  (only an optimisation)
            log.debug("reading DAGs ahead failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def mark_dirty(self, dag_id: str, run_id: str) -> None:
        """Look at this run, read whole, in the next pass (and at queued runs: it may be a
        new one). For changes made outside the loop: commands, triggers, timers."""
        self.snapshots.reread((dag_id, run_id))
        self._dirty.add((dag_id, run_id))
        self._check_queued = True
        self._wake.set()

    def start(self) -> None:
        """Start the executor and the DAG processor, and adopt what a previous run left.

        A store that cannot be reached yet (a database still starting) is waited for, with
        backoff, for up to ``[database] connect_wait`` seconds."""
        from updraft.listeners import notify_starting
        from updraft.store.migrate import ensure_migrated

        notify_starting(self)
        deadline = time.monotonic() + conf.getfloat("database", "connect_wait")
        retry_while_unavailable(lambda: ensure_migrated(self.store_url),
                                what="scheduler start", reporter=self._outage,
                                deadline=deadline)
        self.executor.set_wakeup(self._on_executor_event)
        self.executor.start()
        retry_while_unavailable(self._adopt, what="scheduler start", reporter=self._outage,
                                deadline=deadline)
        if self.processor is not None:
            self.processor.start()
        if self.executor.name != "dask":  # the Dask executor reaps from its watchdog
            from scheduler.xcom_reaping import ObjectStorageReaper

            self._reaper = ObjectStorageReaper(
                self.store_url, conf.getfloat("xcom", "reap_interval")).start()

    def _adopt(self) -> None:
        with session_scope(self.store_url) as session:
            from sqlalchemy import func

            from updraft.store.models import TiEvent

            self.snapshots.start_at(session.scalar(select(func.max(TiEvent.id))) or 0)
            # Tries queued by a scheduler that is gone (this node's predecessor among
            # them) never reached a worker; those of a live peer are its own.
            now = utcnow()
            live = zombies.live_scheduler_ids(session, now, self.scheduler_health_threshold)
            reset = zombies.reset_stale_queued(session, now, node=self.node_id,
                                               live_schedulers=live - {self.node_id})
            self._dirty.update((key[0], key[1]) for key in reset)
            if reset:
                log.info("Reset %d queued task instance(s) left by a previous scheduler",
                         len(reset))
            self._heartbeat(session, utcnow(), state="running")

    def shutdown(self) -> None:
        """Stop the DAG processor and the executor (tries still running are interrupted:
        recorded ``up_for_retry`` without using a retry, see ``executors.base``), then say
        so in the node table. Never raises: a store that is away only loses that row."""
        from updraft.listeners import notify_before_stopping

        notify_before_stopping(self)
        if self.processor is not None:
            self.processor.stop()
        if self._reaper is not None:
            self._reaper.stop()
        self.executor.stop(wait=False)
        try:
            with session_scope(self.store_url) as session:
                self._heartbeat(session, utcnow(), state="stopped")
        except Exception as exc:  # noqa: BLE001  (stopping must not fail on the store)
            log.warning("could not record the scheduler as stopped: %s", exc)

    def run(self) -> None:
        """Loop until stopped (or ``num_runs`` passes); see the module docstring for how
        a store outage is ridden out."""
        self.start()
        backoff = 0.2
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    wait = self.loop_once(utcnow())
                except Exception as exc:  # noqa: BLE001  (the next pass starts over)
                    if is_store_unavailable(exc):
                        self._outage.failed(exc)
                    else:
                        log.exception("A scheduler pass failed; the next one starts over")
                    wait, backoff = backoff, min(backoff * 2, 5.0)
                    self._wake.wait(wait)
                    self._wake.clear()
                    continue
                if self._outage.in_outage:
                    self._outage.succeeded()
                    self._after_outage()
                backoff = 0.2
                self.loop_durations.append(time.monotonic() - started)
                if len(self.loop_durations) > 1000:
                    del self.loop_durations[:500]
                self._loops += 1
                if 0 < self.num_runs <= self._loops:
                    break
                if wait > 0 and not self._dirty:
                    self._wake.wait(wait)
                self._wake.clear()
        finally:
            self.shutdown()

    def _after_outage(self) -> None:
        """The store is back: look at everything again, and give running tries a zombie
        threshold to heartbeat before any is failed as a zombie."""
        self._zombies_paused_until = time.monotonic() + self.zombie_threshold
        self._last_reconcile = 0.0
        self._check_queued = True
        self.snapshots.new_generation()

    # -- one pass --------------------------------------------------------------------------

    def loop_once(self, now: datetime) -> float:
        """One pass of the loop; returns how long to wait before the next."""
        #: Whether this pass wrote task instance events (published at its end).
        self._pass_wrote = False
        self._pending_events.extend(self.executor.events())
        if self._pending_events:
            self._assets_maybe = True  # a finished try may have recorded asset events
        while self._pending_events:
            event = self._pending_events[0]
            self._dirty.add((event.key[0], event.key[1]))
            if event.error and not event.refused:
                self._pass_wrote = True
                self._handle_lost_try(event, now)
            self._pending_events.pop(0)
        for worker, detail in self.executor.lost_workers():
            log.warning("Worker %s was lost: %s", worker, detail)
            self._lost_workers[worker] = (detail, time.monotonic() + self._lost_worker_watch)
        for worker, (detail, until) in list(self._lost_workers.items()):
            self._handle_lost_worker(worker, detail, now)
            if time.monotonic() > until:
                del self._lost_workers[worker]
        for key, when in list(self._wake_at.items()):
            if when <= now:
                del self._wake_at[key]
                self.mark_dirty(*key)
        with session_scope(self.store_url) as session:
            self.snapshots.ingest(session)
            if self._assets_maybe and time.monotonic() - self._consumers_read_at >= 1.0:
                # Without a DAG scheduled on an asset, finished tries need no asset check.
                self._asset_consumers = any_asset_consumer(session)
                self._consumers_read_at = time.monotonic()
            if self._assets_maybe and not self._asset_consumers:
                self._assets_maybe = False
            if self._assets_maybe:
                self._assets_maybe = False
                newest = newest_event_id(session)
                if newest != self._newest_event:
                    self._newest_event = newest
                    self._check_assets = True
        self._dirty |= self.snapshots.take_touched()
        if self._warm_due:
            self._warm_workers()
        due = time.monotonic() - self._last_reconcile >= self.reconcile_interval
        if due or self._check_assets or self._check_queued or self._lost_workers:
            self._pass_wrote = True
        if due:
            self._slow_timer(now)
            self._last_reconcile = time.monotonic()
        if due or self._check_assets:
            self._check_assets = False
            self._create_asset_runs(now)
        if due or self._check_queued:
            self._check_queued = False
            self._start_queued_runs(now)
        dirty, self._dirty = self._dirty, set()
        for dag_id, run_id in sorted(dirty):
            try:
                self.schedule_run(dag_id, run_id, now)
            except Exception as exc:  # noqa: BLE001  (one broken run must not stop the others)
                if is_store_unavailable(exc):
                    self._dirty |= dirty
                    raise
                log.exception("Error while scheduling run %s of %s", run_id, dag_id)
        self._dispatch(now)
        self._publish_ti_events()
        return self._next_wait()

    # -- publishing ------------------------------------------------------------------------

    def _publish_run(self, dag_id: str, run_id: str, old: str | None, new: str,
                     when: datetime, session=None, reason: str = "") -> None:
        """Tell the bus and the registered listeners (``on_dag_run_*``) that a run changed
        state; ``session`` is the one that changed it (listeners read the run through it)."""
        from updraft.listeners import notify_dag_run_changed

        notify_dag_run_changed(dag_id, run_id, old, new, msg=reason, session=session,
                               store_url=self.store_url)
        if self.bus is not None:
            try:
                self.bus.publish_run_state(dag_id, run_id, old, new, when)
            except Exception:  # noqa: BLE001  (the bus is best effort; the store is the truth)
                log.debug("publishing a run event failed", exc_info=True)

    def _publish_ti_events(self) -> None:
        """Publish new lines of the task instances' stories, in order (``ti_event`` ids)."""
        if self.bus is None:
            return
        if getattr(self, "_pass_wrote", True):
            # What this pass wrote, published now; others' writes were read at its start.
            with session_scope(self.store_url) as session:
                self.snapshots.ingest(session)
        rows = self.snapshots.take_unpublished()
        if not rows:
            return
        try:
            self.bus.publish_ti_events(rows)
        except Exception:  # noqa: BLE001
            log.debug("publishing task events failed", exc_info=True)

    def _create_asset_runs(self, now: datetime) -> None:
        from updraft.store.assets import dags_with_waiting_events

        with session_scope(self.store_url) as session:
            if not dags_with_waiting_events(session, limit=1):
                return
        # On SQLite the write lock is taken at once: this pass reads, then claims.
        with session_scope(self.store_url, write=True) as session:
            created = self.asset_runs.create_runs(session, now, self.dags.read)
        if created:
            self._check_queued = True

    def _start_queued_runs(self, now: datetime) -> None:
        with session_scope(self.store_url) as session:
            for dag_id, run_id in runs.start_queued_runs(session, now, self.dags.read):
                # A run that (re)starts may have been cleared: read it whole.
                self.snapshots.drop((dag_id, run_id))
                self._dirty.add((dag_id, run_id))
                self._publish_run(dag_id, run_id, str(DagRunState.QUEUED),
                                  str(DagRunState.RUNNING), now, session=session)

    def _next_wait(self) -> float:
        elapsed = time.monotonic() - self._last_reconcile
        wait = min(self.reconcile_interval - elapsed, self.reconcile_interval)
        if self._wake_at:
            wait = min(wait, (min(self._wake_at.values()) - utcnow()).total_seconds())
        if self._lost_workers:
            wait = min(wait, 0.5)
        return max(0.0, wait)

    def _slow_timer(self, now: datetime) -> None:
        self.snapshots.new_generation()
        with session_scope(self.store_url) as session:
            for key in runs.create_due_runs(session, now, self.dags.read):
                log.info("Created run %s of %s", key[1], key[0])
        with session_scope(self.store_url) as session:
            for dag_id, run_id in runs.time_out_runs(session, now, self.dags.read):
                self._publish_run(dag_id, run_id, str(DagRunState.RUNNING),
                                  str(DagRunState.FAILED), now, session=session,
                                  reason="dagrun_timeout exceeded")
            orphans = zombies.fail_orphans(session, read_dag=self.dags.read, now=now,
                                           node=self.node_id)
            if orphans:
                log.warning("Failed %d running tr%s whose worker process is gone from this "
                            "host", len(orphans), "y" if len(orphans) == 1 else "ies")
            # Deferrals past their timeout resume in __fail__ (a triggerer does it too;
            # this covers a deployment whose triggerers are all down: ADR 11).
            from updraft.store.triggers import time_out_deferred

            self._dirty.update(time_out_deferred(session, now, self.node_id))
            if time.monotonic() >= self._zombies_paused_until:
                zombies.fail_zombies(session, now, self.zombie_threshold, self.dags.read,
                                     self.node_id)
            self._heartbeat(session, now)
        with session_scope(self.store_url) as session:
            adopted = zombies.reset_orphaned_queued(
                session, now, threshold=self.scheduler_health_threshold,
                grace=self.scheduler_health_threshold, node=self.node_id)
            if adopted:
                log.warning("Queued again %d tr%s queued by a scheduler that is gone",
                            len(adopted), "y" if len(adopted) == 1 else "ies")
                self._dirty.update((key[0], key[1]) for key in adopted)
        with session_scope(self.store_url) as session:
            if self.bus is not None:
                try:
                    self.bus.heartbeat(self.node_id, "scheduler", {"loops": self._loops})
                except Exception:  # noqa: BLE001
                    log.debug("bus heartbeat failed", exc_info=True)
            running = session.execute(select(DagRunModel.dag_id, DagRunModel.run_id).where(
                DagRunModel.state == str(DagRunState.RUNNING))).all()
        self._dirty.update((r.dag_id, r.run_id) for r in running)
        self._sla_checks(now)

    def _heartbeat(self, session, now: datetime, state: str = "running") -> None:
        info = {"executor": self.executor.name, "loops": self._loops,
                "queue_depth": self.executor.queue_depth()}
        try:
            health = self.executor.health()
            info["dashboard_link"] = health.get("dashboard_link")
            info["workers"] = len(health.get("workers") or [])
            if health.get("cluster"):  # the Dask cluster, for the health page
                info["cluster"] = health["cluster"]
        except Exception:  # noqa: BLE001  (the health page shows what it has)
            pass
        if self.loop_durations:
            recent = self.loop_durations[-200:]
            info["loop_seconds_avg"] = sum(recent) / len(recent)
        record_node(session, self.node_id, "scheduler", state, info, now)

    def _handle_lost_try(self, event, now: datetime) -> None:
        """The executor lost track of a submission. If its try never reached a worker (still
        ``queued`` under its identity), it was not a try: queue it again, counting nothing.
        A try that started is its supervisor's to record; if that supervisor's worker is
        gone, the lost-worker signal or the zombie check fails it."""
        dag_id, run_id, task_id, map_index = event.key
        with session_scope(self.store_url) as session:
            zombies.requeue_unstarted(session, dag_id=dag_id, run_id=run_id, task_id=task_id,
                                      map_index=map_index, try_number=event.try_number,
                                      try_id=event.try_id, reason=event.error or "lost",
                                      now=now, node=self.node_id)

    def _handle_lost_worker(self, worker: str, detail: str, now: datetime) -> None:
        """A worker node is gone (Dask removed it, an ``updraft worker`` stopped beating):
        fail its running tries, under their retry policy, as soon as their heartbeats are
        late (a supervisor that is still alive, on a worker closing gracefully, keeps
        beating and records its try itself)."""
        from datetime import timedelta

        stale_before = now - timedelta(seconds=self._task_heartbeat + 1.0)
        with session_scope(self.store_url) as session:
            failed = zombies.fail_worker_tries(session, worker=worker, detail=detail,
                                               read_dag=self.dags.read, now=now,
                                               node=self.node_id, stale_before=stale_before)
        if failed:
            log.warning("Worker %s was lost (%s): failed %d of its running tr%s", worker,
                        detail, len(failed), "y" if len(failed) == 1 else "ies")
            for key in failed:
                self.mark_dirty(key[0], key[1])

    # -- deciding a run --------------------------------------------------------------------

    def _pinned_graph(self, session, run: DagRunModel):
        """The serialized DAG a run was created with, when ``[core] run_version_policy`` is
        pinned and the run is pinned to a bundle version (ADR 12); None: align the run with
        the newest graph instead (ADR 5)."""
        if self.run_version_policy != "pinned" or not run.bundle_version or not run.dag_hash:
            return None
        from updraft.store.dags import read_dag

        return read_dag(session, run.dag_id, run.dag_hash)

    def schedule_run(self, dag_id: str, run_id: str, now: datetime) -> DagRunState | None:
        """Evaluate one run and apply the decisions; returns the run's final state if it ended."""
        with session_scope(self.store_url) as session:
            query = select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                              DagRunModel.run_id == run_id)
            if session.get_bind().dialect.name in ("postgresql", "mysql", "mariadb"):
                query = query.with_for_update(skip_locked=True)
            run = session.scalar(query)
            if run is None or run.state != str(DagRunState.RUNNING):
                if run is not None:
                    self.waiting.forget_run(dag_id, run_id)
                return None
            dag = self.dags.read(session, dag_id)
            if dag is None:
                return None
            if run.dag_hash != dag.dag_hash:
                pinned = self._pinned_graph(session, run)
                if pinned is not None:
                    dag = pinned  # the run keeps the graph it was created with (ADR 12)
                else:
                    verify_integrity(session, run, dag, now, self.node_id)
            specs = self.dags.specs(dag)
            past_tasks = [s.task_id for s in specs.values() if s.depends_on_past]
            # On SQLite the first write takes the database-wide write lock: commit each
            # round of changes at once instead of holding it while deciding the next round
            # (with PostgreSQL and MariaDB the run's row lock must be kept to the end).
            release = session.get_bind().dialect.name == "sqlite"
            changed = False
            for _ in range(100):
                snapshot = self.snapshots.get(session, dag_id, run_id)
                past = past_view(session, dag_id, run_id, run.logical_date, past_tasks) \
                    if past_tasks else None
                decision = decide(specs, snapshot, now, past)
                if decision.changes:
                    set_ti_states(session, dag_id, run_id, decision.changes, self.node_id, now,
                                  expected=snapshot.states)
                for task_id in decision.expand:
                    task = dag.task_dict[task_id]
                    lengths = xcom_lengths(session, dag_id, run_id, task.mapped_task_ids())
                    expand_task(session, dag_id, run_id, task_id,
                                task.get_map_length(lengths) or 0, self.node_id, now)
                if decision.expand:  # new map indexes: read the run whole
                    self.snapshots.drop((dag_id, run_id))
                if not decision.changes and not decision.expand:
                    break
                changed = True
                if release:
                    session.commit()
            current = snapshot.states
            newly_ready = [key for key in decision.ready if current.get(key) != TI.SCHEDULED]
            if newly_ready:
                set_ti_states(session, dag_id, run_id,
                              [(t, i, TI.SCHEDULED, "dependencies met")
                               for t, i in newly_ready], self.node_id, now, expected=current)
                self._explain_slots = True
            self.waiting.note_run(dag_id, run_id, current, decision.waiting, now)
            if changed or newly_ready or decision.run_state is not None:
                self._pass_wrote = True
                last = run.last_scheduling_decision
                # Shown to users, never read by the scheduler: once a second is enough
                # (one UPDATE less per hop of a chain).
                if decision.run_state is not None or last is None or \
                        (now - last).total_seconds() >= 1.0:
                    run.last_scheduling_decision = now
            if decision.run_state is not None:
                self.snapshots.drop((dag_id, run_id))
                self.waiting.forget_run(dag_id, run_id)
                set_run_state(session, run, decision.run_state, now)
                self._publish_run(dag_id, run_id, str(DagRunState.RUNNING),
                                  str(decision.run_state), now, session=session,
                                  reason=decision.run_reason or "")
                log.info("Run %s of %s finished: %s (%s)", run_id, dag_id,
                         decision.run_state, decision.run_reason)
                self._after_run(session, dag, run, decision.run_state, decision.run_reason, now)
                self._check_assets = True  # a free run slot may take the next batch
                return decision.run_state
            if decision.wake_at is not None:
                key = (dag_id, run_id)
                earliest = self._wake_at.get(key)
                if earliest is None or decision.wake_at < earliest:
                    self._wake_at[key] = decision.wake_at
        return None

    def _after_run(self, session, dag, run, state: DagRunState, reason: str,
                   now: datetime) -> None:
        wants = dag.has_on_success_callback if state == DagRunState.SUCCESS else \
            dag.has_on_failure_callback
        if wants:
            from scheduler.callbacks import submit_dag_callback

            submit_dag_callback(dag.fileloc, dag.dag_id, run.run_id, str(state), reason,
                                self.store_url)

    def _sla_checks(self, now: datetime) -> None:
        from scheduler.sla import check_slas

        try:
            with session_scope(self.store_url) as session:
                check_slas(session, now, self.dags.read, self.store_url)
        except Exception:  # noqa: BLE001  (SLA bookkeeping must not stop scheduling)
            log.exception("SLA check failed")

    # -- dispatching -----------------------------------------------------------------------

    def _dispatch(self, now: datetime) -> None:
        free = self.executor.slots_available()
        explain = free <= 0 and self._explain_slots
        if free <= 0 and not explain and not self.waiting.pending:
            return
        self._explain_slots = False
        with session_scope(self.store_url) as session:
            requests = dispatch.pick_and_queue(session, now, free_slots=free,
                                               read_dag=self.dags.read,
                                               executor_name=self.executor.name,
                                               node=self.node_id, store_url=self.store_url,
                                               waiting=self.waiting, explain=explain,
                                               parallelism=getattr(self.executor,
                                                                   "parallelism", None),
                                               dags_folder=self.dags_folder)
            # Why what was decided or dispatched waits, in one statement (changes only).
            self.waiting.flush(session)
        if requests:
            self._pass_wrote = True
            self.executor.submit(requests)


__all__ = ["Scheduler", "DagCache"]
