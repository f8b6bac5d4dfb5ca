"""Removing large XCom values from object storage on schedulers whose executor does not.

The Dask executor applies the lifetime rule of ``updraft.xcom_backends.reaper`` from its
watchdog, to the cluster and to object storage. With any other executor (local, NATS work
queue) tries may still keep values in object storage; this thread applies the same rule to
them every ``[xcom] reap_interval`` seconds, off the scheduling loop (listing a bucket can be
slow). Every scheduler may run it: removing a folder twice is harmless.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("updraft.scheduler")


class ObjectStorageReaper:
    """A daemon thread calling ``reap_object_storage`` until ``stop()``."""

    def __init__(self, store_url: str | None, interval: float) -> None:
        self.store_url = store_url
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ObjectStorageReaper:
        self._thread = threading.Thread(target=self._loop, name="updraft-xcom-reaper",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        from updraft.xcom_backends.reaper import reap_object_storage

        while not self._stop.wait(self.interval):
            try:
                reap_object_storage(self.store_url)
            except Exception:  # noqa: BLE001  (tried again at the next interval)
                log.debug("removing object-storage XComs failed", exc_info=True)


__all__ = ["ObjectStorageReaper"]
