"""The Dask executor's answers to faults, run by a watchdog thread twice a second.

- A worker that left the cluster is reported by ``lost_workers()`` (the scheduler fails
  its running tries once their heartbeats stop); a dead worker of the cluster the
  executor owns is started again.
- A lost Dask scheduler (its process ended, or the client lost it): every submission in
  flight is reported lost (tries still ``queued`` go back to the scheduler, counting
  nothing; tries that started are recorded by their supervisors, as interruptions if their
  worker closes), the owned cluster's scheduler is started again on its address (an
  external one is reconnected to with backoff), and tries flow again. Meanwhile
  ``slots_available()`` is 0 and ``health()`` says what happened.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from executors.dask_identity import cluster_identity

log = logging.getLogger("executors.dask")

WATCH_INTERVAL = 0.5


class DaskRecovery:
    """Mixin of ``DaskExecutor``: the watchdog and the recovery (see the module docstring).

    It uses the executor's ``_client``, ``_processes`` (the owned cluster, or None),
    ``scheduler_address``, ``_known_workers``, ``_incident`` and ``recoveries``.
    """

    def slots_available(self) -> int:
        """0 while the cluster is being recovered; else as ``BaseExecutor``."""
        if self._incident is not None:
            return 0
        return super().slots_available()

    def _current_workers(self) -> dict[str, str]:
        """Address -> name of the cluster's workers (one round trip); also refreshes their
        resources (for placement) and the last ``scheduler_info`` (for adapting)."""
        info = cluster_identity(self._client)
        workers = info.get("workers", {})
        self._worker_resources = {address: dict(w.get("resources") or {})
                                  for address, w in workers.items()}
        self._last_identity = info
        return {address: str(w.get("name")) for address, w in workers.items()}

    def _watch(self) -> None:
        """The watchdog: lost workers, a lost scheduler, dead owned processes."""
        while not self._stopping:
            time.sleep(WATCH_INTERVAL)
            if self._stopping:
                return
            try:
                self._watch_once()
            except Exception:  # noqa: BLE001  (looked at again next time)
                log.debug("the Dask watchdog failed", exc_info=True)

    def _watch_once(self) -> None:
        processes = self._processes
        scheduler_lost = (processes is not None and not processes.scheduler_alive()) or \
            self._client is None or self._client.status not in ("running", "connecting")
        if scheduler_lost:
            self._recover("the Dask scheduler was lost" + (
                f" (its process ended with code {processes.scheduler.returncode})"
                if processes is not None and processes.scheduler is not None
                and processes.scheduler.returncode is not None else ""))
            return
        if processes is not None:
            for index in processes.restart_dead_workers():
                log.warning("Dask worker %s of the local cluster died; started it again",
                            index)
        try:
            workers = self._current_workers()
        except Exception:  # noqa: BLE001  (the next look decides)
            return
        for address, name in self._known_workers.items():
            if address not in workers:
                self._worker_lost(name, f"Dask removed worker {address} from the cluster")
        self._known_workers = workers
        # Dask-native tasks (executors.dask_native): placement, reaping, adapting.
        now = time.monotonic()
        self._check_placement(now)
        self._reap(now)
        self._adapt(now, self._last_identity)

    def _recover(self, reason: str) -> None:
        """Report what was in flight as lost, get a working client again, go on."""
        self._incident = {"reason": reason, "since": time.time()}
        log.warning("%s: the %d tr%s in flight go back to the scheduler; %s", reason,
                    len(self._in_flight), "y" if len(self._in_flight) == 1 else "ies",
                    "restarting the local Dask scheduler" if self._processes is not None
                    else f"reconnecting to {self.scheduler_address or 'the cluster'}")
        with self._lock:
            lost = dict(self._futures)
            self._futures.clear()
        for token in list(lost):
            self._finish(token, error=f"lost: {reason}")
        old, self._client = self._client, None
        self._close_client_quietly(old)
        pause = 0.5
        while not self._stopping:
            try:
                if self._processes is not None and not self._processes.scheduler_alive():
                    # Its workers close when they lose it (after interrupting their
                    # tries): the watchdog starts them again as they end.
                    address = self._processes.restart_scheduler()
                elif self._processes is not None:
                    address = self._processes.address
                else:
                    address = self.scheduler_address
                self._client = self._connect(address)
                self._after_connect(recovering=True)
                break
            except Exception as exc:  # noqa: BLE001  (tried again with backoff)
                self._incident["error"] = f"{type(exc).__name__}: {exc}"
                time.sleep(pause)
                pause = min(pause * 2, 10.0)
        else:
            return
        self.recoveries += 1
        took = time.time() - self._incident["since"]
        log.warning("The Dask cluster is back after %.1f s (%s)", took, reason)
        self._incident = None
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup()

    @staticmethod
    def _close_client_quietly(client: Any) -> None:
        if client is None:
            return
        quiet = [logging.getLogger(name) for name in ("distributed", "distributed.client",
                                                       "distributed.core",
                                                       "distributed.comm")]
        levels = [logger.level for logger in quiet]
        for logger in quiet:
            logger.setLevel(logging.CRITICAL)
        try:
            client.close(timeout=2)
        except Exception:  # noqa: BLE001  (it was broken: that is why it goes)
            pass
        finally:
            for logger, level in zip(quiet, levels):
                logger.setLevel(level)


__all__ = ["WATCH_INTERVAL", "DaskRecovery"]
