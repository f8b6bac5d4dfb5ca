"""The web node's own row on the health page: a heartbeat in the ``node`` table.

``updraft web`` and ``updraft standalone`` start one ``WebHeartbeat``: a daemon thread that
writes this node (kind ``web``, host, pid, the address it serves) every ``interval``
seconds, and marks it ``stopped`` when the server stops. A web node whose row goes silent
is one that died: the health page shows how long ago it was heard from.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

log = logging.getLogger(__name__)


class WebHeartbeat:
    """Writes this web node's row now and every ``interval`` seconds until stopped."""

    def __init__(self, address: str, interval: float = 15.0, store_url: str | None = None,
                 node_id: str | None = None) -> None:
        self.address = address
        self.interval = interval
        self.store_url = store_url
        self.node_id = node_id or \
            f"web-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WebHeartbeat:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="updraft-web-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.beat(state="stopped")

    def beat(self, state: str = "running") -> None:
        """Write the row (best effort: a store that is away is retried next interval)."""
        from updraft.store.engine import session_scope
        from updraft.store.nodes import record_node

        try:
            with session_scope(self.store_url) as session:
                record_node(session, self.node_id, "web", state, {"address": self.address})
        except Exception:  # noqa: BLE001  (the health page shows the node as silent)
            log.warning("web heartbeat failed", exc_info=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()


__all__ = ["WebHeartbeat"]
