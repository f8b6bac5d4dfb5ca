"""The audit log (table ``log_event``): who did what, when, to which DAG, run or task."""

from __future__ import annotations

import json
import logging
from typing import Any

log = logging.getLogger(__name__)


def audit(event: str, *, owner: str | None = None, dag_id: str | None = None,
          run_id: str | None = None, task_id: str | None = None, map_index: int | None = None,
          try_number: int | None = None, extra: dict[str, Any] | str | None = None) -> None:
    """Write one audit entry in its own transaction; a store failure is logged, not raised."""
    from updraft.store.engine import session_scope
    from updraft.store.models import LogEvent

    if owner is None:
        owner = _request_owner()
    text = extra if isinstance(extra, str) or extra is None else json.dumps(
        extra, default=str, sort_keys=True)
    try:
        with session_scope() as session:
            session.add(LogEvent(event=event[:60], owner=owner, dag_id=dag_id, run_id=run_id,
                                 task_id=task_id, map_index=map_index, try_number=try_number,
                                 extra=text))
    except Exception:  # an audit write must not turn a refusal into a 500
        log.exception("could not write audit event %s", event)


def _request_owner() -> str | None:
    from flask import g, has_request_context

    if not has_request_context():
        return None
    user = g.get("_updraft_user")
    return getattr(user, "username", None)
