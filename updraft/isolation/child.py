"""The body of a try's process, forked by the zygote and driven by its supervisor.

The supervisor first sends ``("setup", options)`` with the write end of the try's log
pipe, which becomes this process's stdout and stderr: Python's output (masked: registered
secrets become ``***``) and C-level output alike reach the supervisor, which writes the
try's log. Then, for each try (one, or several of one bundle):

- supervisor -> child: ``("run", {"request": ..., "claimed": ...})``;
- child -> supervisor: ``("task", limits)`` once the operator is built (its execution
  timeout, memory limit and retry policy), then ``("result", TryResult)``;
- supervisor -> child: ``("recorded", state)`` (None if the store refused the outcome),
  when the result said it waits for it (the task has callbacks, alert emails or there are
  listeners of finished tries);
- child: runs the callbacks of the recorded state, then ``("done", {"reusable": bool})``.

``("exit",)`` or the end of the channel ends the process. SIGTERM (a timeout the task did
not honour, a cancel, a mark, a shutdown) calls the task's ``on_kill()`` and raises
``UpdraftTaskTerminated`` in the task's code; the supervisor sends SIGKILL after
``[core] kill_grace_period`` if that is not enough.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from updraft.isolation.wire import Channel

log = logging.getLogger("updraft.runtime")

_current_task: list[Any] = [None]
_killed = [False]


class _MaskedStream(io.TextIOBase):
    """stdout/stderr of the try: registered secrets are masked on the way to the fd."""

    def __init__(self, fd: int) -> None:
        self._raw = open(fd, "w", buffering=1, encoding="utf-8",  # noqa: SIM115
                         errors="backslashreplace", closefd=False)

    def write(self, text: str) -> int:
        from updraft.secrets import redact

        self._raw.write(redact(text))
        return len(text)

    def flush(self) -> None:
        self._raw.flush()

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self):  # type: ignore[override]
        return "utf-8"


def _setup(log_fd: int, options: dict[str, Any], channel: Channel) -> None:
    """Make this forked process the try's: output to the log pipe, fresh store engines,
    the log format of try logs, and SIGTERM as a stop."""
    from updraft.secrets import get_secrets_masker
    from updraft.store.engine import dispose_engines
    from updraft.tasklog import LOG_FORMAT, _UtcFormatter

    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = _MaskedStream(1)
    sys.stderr = _MaskedStream(2)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(open(2, "w", buffering=1, encoding="utf-8",  # noqa: SIM115
                                         errors="backslashreplace", closefd=False))
    handler.setFormatter(_UtcFormatter(LOG_FORMAT))
    handler.addFilter(get_secrets_masker())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    level = logging.getLevelName(str(options.get("log_level") or "INFO").upper())
    logging.getLogger("updraft.task").setLevel(level if isinstance(level, int) else logging.INFO)
    # The zygote opened no connection, but a DAG file it parsed might have: never share one.
    dispose_engines(close=False)
    from updraft.store import group_commit

    group_commit._committers.clear()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if options.get("dask_worker"):
        from updraft.isolation.dask_bridge import install_in_child

        install_in_child(options["dask_worker"], lambda: channel.send(("secede",)))


def _on_sigterm(_signum, _frame) -> None:
    from updraft.exceptions import UpdraftTaskTerminated

    task = _current_task[0]
    if task is not None and not _killed[0]:
        _killed[0] = True
        try:
            task.on_kill()
        except Exception:  # noqa: BLE001
            log.exception("on_kill() failed")
    raise UpdraftTaskTerminated("the try's process was told to stop (SIGTERM)")


def _task_limits(task: Any) -> dict[str, Any]:
    from updraft.config import conf
    from updraft.isolation.limits import parse_size
    from updraft.retries import RetryPolicy

    config = getattr(task, "executor_config", None) or {}
    raw_limit = config.get("memory_limit") if isinstance(config, dict) else None
    if raw_limit is None:
        raw_limit = conf.get("core", "task_memory_limit")
    timeout = task.execution_timeout
    return {"execution_timeout": timeout.total_seconds() if timeout is not None else None,
            "memory_limit": parse_size(raw_limit), "retry_policy": RetryPolicy.of(task)}


def _reusable() -> bool:
    """Nothing of the try may linger: no thread of its own, no child process."""
    if threading.active_count() > 1:
        return False
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as handle:
            return not handle.read().strip()
    except OSError:
        from updraft.isolation.limits import descendants

        return not descendants(pid)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass


def _run(channel: Channel, spec: dict[str, Any]) -> None:
    from updraft.runtime import TryRequest
    from updraft.secrets import clear_masks
    from updraft.task_execution import TryResult, after_try, execute_try, has_after_work

    request = TryRequest.from_json(spec["request"])
    clear_masks()
    _killed[0] = False
    log.info("Running %s on host %s (process %d)", request.label, socket.gethostname(),
             os.getpid())

    def on_task(task: Any) -> None:
        _current_task[0] = task
        channel.send(("task", _task_limits(task)))

    try:
        execution = execute_try(request, spec["claimed"], on_task=on_task)
    finally:
        _current_task[0] = None
    _flush()
    # Without callbacks, emails or listeners nothing depends on the recorded state: the
    # process says it is done at once instead of waiting for the store's answer.
    wants_reply = has_after_work(execution)
    try:
        channel.send(("result", execution.result, wants_reply))
    except (TypeError, AttributeError, ValueError) as exc:  # a value pickle cannot carry
        from updraft.state import TaskInstanceState as TI

        channel.send(("result", TryResult(state=TI.FAILED, error=f"the try's result could not "
                      f"be sent to its supervisor: {type(exc).__name__}: {exc}"), wants_reply))
    if wants_reply:
        reply, _fds = channel.recv()
        if reply[0] == "recorded" and reply[1] is not None:
            after_try(execution, reply[1])
        _flush()
    channel.send(("done", {"reusable": _reusable()}))


def child_main(sock: socket.socket) -> int:
    """Serve the supervisor on ``sock`` until told to exit; the process's exit code."""
    channel = Channel(sock)
    try:
        message, fds = channel.recv()
    except EOFError:  # a spare the zygote dropped
        return 0
    if message[0] != "setup" or not fds:
        return 2
    _setup(fds[0], message[1], channel)
    while True:
        try:
            message, _fds = channel.recv()
        except EOFError:
            break
        if message[0] == "run":
            _run(channel, message[1])
        elif message[0] == "exit":
            break
    _flush()
    return 0


__all__ = ["child_main"]
