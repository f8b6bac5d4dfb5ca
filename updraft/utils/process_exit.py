"""Leaving no helper process behind when a node stops in order.

A node that started a ``spawn`` process (the DAG parsing pool, the DAG-callback pool) also
started multiprocessing's resource tracker, which exits only when every holder of its pipe
has closed it. Without help it outlives the node by a moment (or longer on a loaded
machine), and a supervisor that checks the node's process tree after it exits finds it.
``stop_resource_tracker`` closes this process's end and waits for the tracker to go, once
the node's own children are gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

log = logging.getLogger("updraft.process_exit")


def stop_resource_tracker(timeout: float = 2.0) -> bool:
    """Close this process's pipe to the resource tracker and reap it within ``timeout`` s;
    True if it is gone (or never ran). A tracker still held open by another process is left
    to exit with it."""
    from multiprocessing import resource_tracker

    tracker = resource_tracker._resource_tracker
    lock = getattr(tracker, "_lock", None)
    if lock is None:
        return True
    with lock:
        fd, pid = getattr(tracker, "_fd", None), getattr(tracker, "_pid", None)
        if fd is None or pid is None:
            return True
        with contextlib.suppress(OSError):
            os.close(fd)
        tracker._fd = None
        deadline = time.monotonic() + timeout
        while True:
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                tracker._pid = None
                return True
            if time.monotonic() > deadline:
                log.debug("The multiprocessing resource tracker (pid %d) is still held open",
                          pid)
                return False
            time.sleep(0.02)


__all__ = ["stop_resource_tracker"]
