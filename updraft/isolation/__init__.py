"""Process isolation of tries: every try in a process of its own, supervised from outside.

An executor slot (a Dask task, an ``updraft worker`` slot, a local executor slot) is a
*supervisor* (``supervisor.Supervisor``). For each try it claims the try in the store, has a
*zygote* fork the try's process, and while that process runs user code the supervisor
streams its output into the try's log, heartbeats for it, enforces its execution timeout,
memory limit and any stop request, and finally records the outcome, or how the process
died, with a compare-and-set.

- ``zygote``: a single-threaded process started with ``subprocess`` (never ``fork()`` of a
  multi-threaded worker) that has imported the task runner and parses the DAGs its tries
  need, so a forked child starts warm; it forks one spare child ahead, reaps children and
  reports how each ended. ``ZygoteClient`` is its handle in the supervisor's process.
- ``child``: the body of a try's process: run the task, send the result, run the callbacks
  once the outcome is recorded.
- ``wire``: the framed, fd-passing messages between them.
- ``limits``: reading a process's memory, its descendants, and naming how it ended.

``[core] task_isolation = thread`` runs the try in the slot's thread instead
(``updraft.runtime.run_task_try``): for trusted, very short tasks; see README.
"""


def configured_isolation() -> str:
    """``[core] task_isolation``, checked: "process" or "thread"."""
    from updraft.config import conf

    value = conf.get("core", "task_isolation")
    mode = str(value or "process").strip().lower()
    if mode not in ("process", "thread"):
        raise ValueError(f"[core] task_isolation must be 'process' or 'thread', got {value!r}")
    return mode
