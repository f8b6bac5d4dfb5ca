"""Prometheus text-format metrics, shared by the web node and the scheduler.

``store_metrics_text(session)`` renders what the store knows (runs and task instances by
state, task try durations as a histogram, DAG count, import errors); the web serves it at
``/metrics``. ``scheduler_metrics_text(scheduler)`` adds what only a scheduler process knows
(loop time, executor queue depth, DAG processing time) and ``serve_metrics`` serves it from a
thread with ``http.server`` on ``[scheduler] metrics_port``. Neither node imports the other.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Upper bounds (seconds) of the task try duration histogram.
DURATION_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class MetricsWriter:
    """Builds a Prometheus text exposition, one metric family at a time."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[dict[str, Any], float]]) -> None:
        """One metric family: ``samples`` are (labels, value) pairs."""
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.sample(name, labels, value)

    def sample(self, name: str, labels: dict[str, Any], value: float) -> None:
        """One sample line."""
        if labels:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{text}}} {_number(value)}")
        else:
            self._lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def write_store_metrics(writer: MetricsWriter, session) -> None:
    """Add the store's figures to ``writer``."""
    from sqlalchemy import case, func, select

    from updraft.state import DagRunState, TaskInstanceState
    from updraft.store.models import (
        DagModel,
        DagRunModel,
        ImportError_,
        TaskInstanceModel,
        TaskInstanceTry,
    )

    runs = {s.value: 0 for s in DagRunState}
    for state, count in session.execute(select(DagRunModel.state, func.count())
                                        .group_by(DagRunModel.state)):
        runs[state] = count
    writer.family("updraft_dag_runs", "gauge", "DAG runs in the store by state.",
                  (({"state": s}, n) for s, n in sorted(runs.items())))

    tis = {s.value: 0 for s in TaskInstanceState}
    for state, count in session.execute(select(TaskInstanceModel.state, func.count())
                                        .group_by(TaskInstanceModel.state)):
        tis[state] = count
    writer.family("updraft_task_instances", "gauge", "Task instances in the store by state.",
                  (({"state": s}, n) for s, n in sorted(tis.items())))

    columns = [func.sum(case((TaskInstanceTry.duration <= bound, 1), else_=0))
               for bound in DURATION_BUCKETS]
    rows = session.execute(select(TaskInstanceTry.state, func.count(),
                                  func.coalesce(func.sum(TaskInstanceTry.duration), 0.0), *columns)
                           .where(TaskInstanceTry.duration.is_not(None))
                           .group_by(TaskInstanceTry.state)).all()
    name = "updraft_task_duration_seconds"
    writer.family(name, "histogram", "Durations of finished task tries by final state.", ())
    for row in sorted(rows, key=lambda r: r[0]):
        state, count, total = row[0], int(row[1] or 0), float(row[2] or 0.0)
        for bound, within in zip(DURATION_BUCKETS, row[3:], strict=True):
            writer.sample(f"{name}_bucket", {"state": state, "le": _number(bound)},
                          int(within or 0))
        writer.sample(f"{name}_bucket", {"state": state, "le": "+Inf"}, count)
        writer.sample(f"{name}_sum", {"state": state}, total)
        writer.sample(f"{name}_count", {"state": state}, count)

    dags = session.execute(select(DagModel.is_paused, func.count())
                           .where(DagModel.is_active.is_(True))
                           .group_by(DagModel.is_paused)).all()
    paused = {bool(p): n for p, n in dags}
    writer.family("updraft_dags", "gauge", "Active DAGs by paused flag.",
                  [({"paused": "false"}, paused.get(False, 0)),
                   ({"paused": "true"}, paused.get(True, 0))])
    errors = session.scalar(select(func.count()).select_from(ImportError_)) or 0
    writer.family("updraft_import_errors", "gauge", "DAG files that failed to load.",
                  [({}, errors)])


def store_metrics_text(session) -> str:
    """The store's figures in the Prometheus text format."""
    writer = MetricsWriter()
    write_store_metrics(writer, session)
    return writer.text()


def _attr(obj: Any, *names: str) -> Any:
    for name in names:
        value = getattr(obj, name, None)
        if value is not None:
            return value() if callable(value) else value
    return None


def scheduler_metrics_text(scheduler: Any, session=None) -> str:
    """A scheduler's own figures (read defensively from its attributes) plus the store's."""
    writer = MetricsWriter()
    node = _attr(scheduler, "node_id") or "scheduler"
    labels = {"node": node}
    loops = _attr(scheduler, "_loops", "loops")
    if loops is not None:
        writer.family("updraft_scheduler_loops_total", "counter",
                      "Scheduling loops run by this scheduler.", [(labels, int(loops))])
    loop_seconds = _attr(scheduler, "last_loop_seconds", "_last_loop_seconds")
    durations = list(getattr(scheduler, "loop_durations", None) or [])
    if loop_seconds is None and durations:
        loop_seconds = durations[-1]
    if durations:
        recent = durations[-200:]
        writer.family("updraft_scheduler_loop_seconds_avg", "gauge",
                      "Mean duration of the last 200 scheduling loops.",
                      [(labels, sum(recent) / len(recent))])
    if loop_seconds is not None:
        writer.family("updraft_scheduler_loop_seconds", "gauge",
                      "Duration of the last scheduling loop.", [(labels, float(loop_seconds))])
    executor = getattr(scheduler, "executor", None)
    depth = None
    if executor is not None and hasattr(executor, "queue_depth"):
        try:
            depth = executor.queue_depth()
        except Exception:  # noqa: BLE001  (a metric must not break the scheduler)
            depth = None
    if depth is not None:
        writer.family("updraft_executor_queue_depth", "gauge",
                      "Task tries submitted to the executor and not finished.",
                      [({**labels, "executor": getattr(executor, "name", "?")}, int(depth))])
    processing = _attr(scheduler, "dag_processing_seconds", "_dag_processing_seconds")
    if isinstance(processing, dict):
        writer.family("updraft_dag_processing_seconds", "gauge",
                      "Time the last parse of each DAG file took.",
                      (({"file": f}, float(s)) for f, s in sorted(processing.items())))
    elif processing is not None:
        writer.family("updraft_dag_processing_seconds", "gauge",
                      "Time the last scan of the DAG folder took.", [(labels, float(processing))])
    writer.family("updraft_scheduler_up", "gauge", "1 while this scheduler serves metrics.",
                  [(labels, 1)])
    try:
        if session is not None:
            write_store_metrics(writer, session)
        else:
            from updraft.store.engine import session_scope

            url = getattr(scheduler, "store_url", None)
            with session_scope(url) as own:
                write_store_metrics(writer, own)
    except Exception as exc:  # noqa: BLE001
        log.warning("store metrics unavailable: %s", exc)
        writer.family("updraft_store_up", "gauge", "Whether the store answered.", [({}, 0)])
    return writer.text()


def serve_metrics(render, host: str, port: int) -> tuple[Any, threading.Thread]:
    """Serve ``render()`` as ``/metrics`` on ``host:port`` from a daemon thread.

    Returns ``(server, thread)``; ``server.shutdown()`` stops it. ``port`` 0 picks a free port
    (``server.server_address`` says which).
    """
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404, "only /metrics is served here")
                return
            started = time.monotonic()
            try:
                body = render().encode()
                status = 200
            except Exception as exc:  # noqa: BLE001
                body = f"# metrics failed: {exc}\n".encode()
                status = 500
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            log.debug("metrics served in %.3fs", time.monotonic() - started)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("metrics: " + fmt, *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="updraft-metrics", daemon=True)
    thread.start()
    return server, thread


__all__ = ["CONTENT_TYPE", "MetricsWriter", "scheduler_metrics_text", "serve_metrics",
           "store_metrics_text", "write_store_metrics"]
