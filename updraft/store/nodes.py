"""The ``node`` table: which schedulers, workers and web nodes are alive.

Every long-running node writes its row with ``record_node`` at start, on each heartbeat and
when it stops; the health page and ``/api/v1/health`` read them.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from updraft.store.models import NodeModel, utcnow


def record_node(session: Session, node_id: str, kind: str, state: str = "running",
                info: dict[str, Any] | None = None, now: datetime | None = None) -> None:
    """Insert or refresh this process's row (the caller commits)."""
    now = now or utcnow()
    node = session.get(NodeModel, node_id)
    if node is None:
        node = NodeModel(node_id=node_id, kind=kind, hostname=socket.gethostname(),
                         pid=os.getpid(), started_at=now)
        session.add(node)
    node.heartbeat_at = now
    node.state = state
    node.info = info or {}


__all__ = ["record_node"]
