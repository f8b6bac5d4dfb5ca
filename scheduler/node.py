"""``updraft scheduler``'s process: the scheduler loop with its bus node, its metrics
server and its signals (SIGTERM/SIGINT stop it; a second signal ends it at once)."""

from __future__ import annotations

import logging
import os

from scheduler.core import Scheduler

log = logging.getLogger("updraft.scheduler")


def run_scheduler(num_runs: int = -1, executor_name: str | None = None) -> None:
    """Entry point of ``updraft scheduler``."""
    from executors import get_executor
    from updraft.runtime import apply_switch_interval

    apply_switch_interval()
    scheduler = Scheduler(get_executor(executor_name), num_runs=num_runs)
    # The bus connects in the background: scheduling never waits for NATS.
    from bus.node import start_scheduler_bus

    node = start_scheduler_bus(scheduler)
    metrics_server = _start_metrics(scheduler)
    import signal

    def _stop(signum, _frame):
        if scheduler._stop.is_set():
            log.warning("Second signal: exiting at once")
            os._exit(128 + signum)
        log.info("Stopping the scheduler (running tries are interrupted and run again "
                 "without using a retry)")
        scheduler.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        scheduler.run()
    finally:
        if node is not None:
            node.stop()
        if metrics_server is not None:
            metrics_server.shutdown()
        stop_helper_processes()


def stop_helper_processes() -> None:
    """After the scheduler stopped: end the DAG-callback pool, then multiprocessing's
    resource tracker, so that no process of this node outlives it."""
    from scheduler import callbacks
    from updraft.utils.process_exit import stop_resource_tracker

    callbacks.shutdown()
    stop_resource_tracker()


def _start_metrics(scheduler: Scheduler):
    """Serve Prometheus metrics on ``[scheduler] metrics_port`` (0: off); the server or None."""
    from updraft.config import conf
    from updraft.metrics import scheduler_metrics_text, serve_metrics

    port = conf.getint("scheduler", "metrics_port")
    if port <= 0:
        return None
    host = conf.get("scheduler", "metrics_host")
    try:
        server, _thread = serve_metrics(lambda: scheduler_metrics_text(scheduler), host, port)
    except OSError as exc:
        log.error("Cannot serve metrics on %s:%d: %s", host, port, exc)
        return None
    log.info("Metrics on http://%s:%d/metrics", host, port)
    return server


__all__ = ["run_scheduler", "stop_helper_processes"]
