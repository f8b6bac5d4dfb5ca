"""Dask preload for the processes of a cluster the Updraft scheduler owns: they die with it.

``dask scheduler --preload executors.dask_preload`` (and ``dask worker ...``) start a thread
that checks twice a second whether the process that started them (``UPDRAFT_DASK_PARENT``)
is still their parent; when it is gone (killed, even by SIGKILL) the process kills itself,
so no Dask process outlives its Updraft scheduler. A parent-death signal would be quicker,
but the kernel sends it when the *thread* that started the process ends, which a
restarting executor cannot promise.
"""

from __future__ import annotations

import os
import signal
import threading
import time

CHECK_EVERY = 0.5


def _watch(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(CHECK_EVERY)


def dask_setup(server=None) -> None:
    """Dask's preload hook: start watching the parent (once per process)."""
    parent = os.environ.get("UPDRAFT_DASK_PARENT")
    if not parent or getattr(dask_setup, "watching", False):
        return
    dask_setup.watching = True  # type: ignore[attr-defined]
    if os.getppid() != int(parent):  # the parent died before we got here
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=_watch, args=(int(parent),), name="updraft-parent-watch",
                     daemon=True).start()
