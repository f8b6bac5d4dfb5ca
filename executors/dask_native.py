"""What the Dask executor does for Dask-native tasks, from its watchdog (``dask_recovery``).

- **Placement.** A try that needs resources (its queue's ``queue-<name>``, its
  ``executor_config={"resources": {...}}``, a pool its workers declare as ``pool-<name>``)
  waits in Dask for a worker that has them. If no worker of the cluster has them for
  ``[dask] resource_wait`` seconds (checked twice a second against the workers' declared
  resources), its Dask task is cancelled and the try is failed through the store with the
  reason, under the retry policy (claimed and recorded like any try, so a worker that
  picked it up meanwhile is refused by the compare-and-set, or wins it).
- **Reaping.** Every ``[xcom] reap_interval`` seconds the datasets Updraft published on the
  cluster (and the object-storage folders) that the lifetime rule no longer keeps are
  released (``updraft.xcom_backends.reaper``).
- **Adapting** (owned cluster, ``[dask] adapt_max`` > 0): the number of worker processes
  follows the tries in flight: enough workers for every try to have a thread, between
  ``adapt_min`` and ``adapt_max``. A worker beyond that is retired once it has been idle
  (no task processing) for ``[dask] adapt_idle`` seconds, with ``retire_workers``, which
  moves the data it holds (persisted XComs) to the others first; busy workers are never
  retired.
- **Health.** ``cluster_health()``: workers with their memory and tasks in flight.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

log = logging.getLogger("executors.dask")


class DaskNative:
    """Mixin of ``DaskExecutor`` (see the module docstring)."""

    _next_reap = 0.0
    _idle_since: dict[str, float] | None = None
    adapt_events = 0

    # -- placement -------------------------------------------------------------------------

    def _check_placement(self, now: float) -> None:
        from executors.dask import can_run, describe_needs

        with self._lock:
            pending = {token: entry for token, entry in self._needs.items()
                       if token in self._in_flight}
            self._needs = dict(pending)
        if not pending:
            return
        workers = self._worker_resources
        for token, (needs, since) in pending.items():
            if can_run(needs, workers.values()):
                with self._lock:
                    if token in self._needs:  # it can run: stop watching it
                        self._needs[token] = (needs, now)
                continue
            if now - since < self.resource_wait:
                continue
            with self._lock:
                self._needs.pop(token, None)
                request = self._in_flight.get(token)
                future = self._futures.pop(token, None)
            if request is None:
                continue
            reason = describe_needs(needs, workers)
            if future is not None:
                try:
                    self._client.cancel([future], reason="no worker has its resources")
                except Exception:  # noqa: BLE001  (the claim below decides anyway)
                    log.debug("could not cancel %s", request.label, exc_info=True)
            threading.Thread(target=self._fail_unplaceable, args=(token, request, reason),
                             name="updraft-dask-unplaceable", daemon=True).start()

    def _fail_unplaceable(self, token: int, request: Any, reason: str) -> None:
        """Fail a try no worker can run: claim it and record the failure (retry policy)."""
        from updraft.retries import RetryPolicy, failure_state
        from updraft.runtime import claim_try, record_try
        from updraft.task_execution import TryResult

        request = request if request.store_url else type(request)(
            **{**request.to_json(), "store_url": self._default_store_url})
        outcome = None
        try:
            claimed = claim_try(request, "dask-executor", "dask")
            if claimed is not None:
                log.warning("%s: %s", request.label, reason)
                policy = RetryPolicy.default()
                state = failure_state(policy, request.try_number, claimed.ti.max_tries)
                outcome = record_try(request, claimed, TryResult(state=state, error=reason,
                                                                 retry_policy=policy),
                                     node="dask-executor", duration=0.0)
                self._write_reason_to_log(request, reason)
        except Exception as exc:  # noqa: BLE001  (reported; the scheduler checks the store)
            log.exception("could not fail %s", request.label)
            self._finish(token, error=f"no worker has its resources, and failing it "
                                      f"failed: {type(exc).__name__}: {exc}")
            return
        if outcome is None:
            self._finish(token, error="no worker has its resources; the store refused the "
                                      "claim (it started elsewhere or was changed)")
        else:
            self._finish(token, outcome)

    @staticmethod
    def _write_reason_to_log(request: Any, reason: str) -> None:
        from updraft.config import conf
        from updraft.tasklog import TryLogSink, try_log_path

        path = try_log_path(conf.log_folder(), request.dag_id, request.run_id,
                            request.task_id, request.map_index, request.try_number)
        sink = TryLogSink(path)
        try:
            sink.write(f"[dask executor] the try failed before it started: {reason}\n")
        finally:
            sink.close()

    # -- reaping ---------------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        from updraft.config import conf

        if now < self._next_reap or self._client is None:
            return
        self._next_reap = now + conf.getfloat("xcom", "reap_interval")
        from updraft.xcom_backends.reaper import reap_cluster, reap_object_storage

        try:
            reap_cluster(self._client, self._default_store_url)
        except Exception:  # noqa: BLE001  (next time)
            log.debug("releasing cluster XComs failed", exc_info=True)
        try:
            reap_object_storage(self._default_store_url)
        except Exception:  # noqa: BLE001  (next time)
            log.debug("removing object-storage XComs failed", exc_info=True)

    # -- adapting --------------------------------------------------------------------------

    def wanted_workers(self) -> int:
        """Workers the tries in flight call for, within ``[adapt_min, adapt_max]``."""
        with self._lock:
            in_flight = len(self._in_flight)
        threads = max(1, self.threads_per_worker)
        return max(self.adapt_min, min(self.adapt_max, math.ceil(in_flight / threads)))

    def _adapt(self, now: float, info: dict[str, Any]) -> None:
        processes = self._processes
        if processes is None or self.adapt_max <= 0:
            return
        wanted = self.wanted_workers()
        current = processes.worker_count()
        if current < wanted:
            for index in processes.add_workers(wanted - current):
                log.info("adapting: started Dask worker %s (%d tries in flight)", index,
                         len(self._in_flight))
                self.adapt_events += 1
            return
        idle_since = self._idle_since if self._idle_since is not None else {}
        self._idle_since = idle_since
        busy = set()
        for address, worker in info.get("workers", {}).items():
            counts = (worker.get("metrics") or {}).get("task_counts") or {}
            if any(counts.get(state) for state in ("executing", "ready", "waiting",
                                                   "constrained", "long-running")):
                busy.add(address)
                idle_since.pop(address, None)
            else:
                idle_since.setdefault(address, now)
        if current <= wanted:
            return
        idle = sorted((since, address) for address, since in idle_since.items()
                      if address not in busy and now - since >= self.adapt_idle)
        names = {address: str(w.get("name")) for address, w in info.get("workers", {}).items()}
        for _since, address in idle[:current - wanted]:
            index = processes.index_of(names.get(address))
            if index is None:
                continue
            processes.forget_worker(index)  # retiring: not a death to restart
            idle_since.pop(address, None)
            self._known_workers.pop(address, None)
            try:
                self._client.retire_workers([address], close_workers=True, remove=True)
            except Exception:  # noqa: BLE001  (stopped by signal below)
                log.debug("retire_workers failed for %s", address, exc_info=True)
            processes.stop_worker(index)
            self.adapt_events += 1
            log.info("adapting: retired idle Dask worker %s (%d wanted)", index, wanted)

    # -- health ----------------------------------------------------------------------------

    @staticmethod
    def cluster_summary(identity: dict[str, Any]) -> dict[str, Any]:
        """Workers, memory and tasks in flight, from ``scheduler_info`` (JSON)."""
        workers = []
        totals = {"memory": 0, "memory_limit": 0, "executing": 0, "in_memory": 0,
                  "waiting": 0, "threads": 0}
        for address, w in identity.get("workers", {}).items():
            metrics = w.get("metrics") or {}
            counts = metrics.get("task_counts") or {}
            executing = int(counts.get("executing", 0) or 0) + \
                int(counts.get("long-running", 0) or 0)
            waiting = sum(int(counts.get(s, 0) or 0)
                          for s in ("ready", "waiting", "constrained", "fetch", "flight"))
            entry = {"name": str(w.get("name")), "address": address,
                     "nthreads": w.get("nthreads"), "status": w.get("status"),
                     "resources": w.get("resources") or {},
                     "memory": int(metrics.get("memory") or 0),
                     "memory_limit": int(w.get("memory_limit") or 0),
                     "managed_bytes": int(metrics.get("managed_bytes") or 0),
                     "executing": executing, "waiting": waiting,
                     "in_memory": int(counts.get("memory", 0) or 0)}
            workers.append(entry)
            totals["memory"] += entry["memory"]
            totals["memory_limit"] += entry["memory_limit"]
            totals["executing"] += executing
            totals["waiting"] += waiting
            totals["in_memory"] += entry["in_memory"]
            totals["threads"] += int(w.get("nthreads") or 0)
        workers.sort(key=lambda entry: entry["name"])
        return {"workers": workers, "totals": totals,
                "datasets": identity.get("updraft_datasets")}


__all__ = ["DaskNative"]
