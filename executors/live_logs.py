"""Live logs for the Dask and local executors' worker processes, when NATS is there.

``run_with_live_logs(request, run)`` calls ``run(on_log_line)`` with a callback that
publishes each log line of the try on the bus (``bus.logs``: one connection per worker
process, made lazily in the background), or with None when ``[logging] live_logs`` is off,
no NATS server is configured or the bus package cannot be used. NATS being unreachable never
delays a task: lines are buffered (bounded) and the try's log file is written regardless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def run_with_live_logs(request: Any, run: Callable[[Callable[[str], None] | None], Any]) -> Any:
    """``run(on_log_line)`` with live logs when available (see the module docstring)."""
    try:
        from bus.logs import run_with_live_logs as with_bus
    except ImportError:  # the bus extra (nats-py) is not installed on this worker
        return run(None)
    return with_bus(request, run)
