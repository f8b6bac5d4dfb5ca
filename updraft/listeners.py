"""Listeners: code told about task and run state changes (Airflow's listener API).

A listener is a module or an object whose functions are named after the hooks below
(marked with ``@hookimpl`` as in Airflow; the marker is optional here). Listeners are
registered in the entry-point group ``updraft.listeners`` or in an ``AirflowPlugin.listeners``
list in the plugins folder.

Hooks, with the keyword arguments they get (a hook may declare only some of them):

- ``on_task_instance_running(previous_state, task_instance)``: in the try's process, once the
  task is built and before it runs.
- ``on_task_instance_success(previous_state, task_instance)``,
  ``on_task_instance_failed(previous_state, task_instance, error)`` (also when a retry
  follows, as in Airflow) and ``on_task_instance_skipped(previous_state, task_instance)``:
  there too, once the outcome is recorded.
- ``on_dag_run_running(dag_run, msg)``, ``on_dag_run_success(dag_run, msg)``,
  ``on_dag_run_failed(dag_run, msg)``: in the scheduler, when a run changes state.
- ``on_starting(component)``, ``before_stopping(component)``: when a node starts and stops.

A listener that raises is logged and changes nothing: not the outcome, not the other
listeners. Listeners run in the thread that changed the state, so keep them short.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from updraft.state import FAILED_TRY_STATES

log = logging.getLogger("updraft.listeners")

GROUP = "listeners"
TASK_HOOKS = ("on_task_instance_running", "on_task_instance_success", "on_task_instance_failed",
              "on_task_instance_skipped")
RUN_HOOKS = ("on_dag_run_running", "on_dag_run_success", "on_dag_run_failed")
LIFECYCLE_HOOKS = ("on_starting", "before_stopping")
HOOKS = TASK_HOOKS + RUN_HOOKS + LIFECYCLE_HOOKS

_RUN_HOOK_BY_STATE = {"running": "on_dag_run_running", "success": "on_dag_run_success",
                      "failed": "on_dag_run_failed"}


def hookimpl(function: Callable | None = None, **_options: Any) -> Any:
    """Mark a listener hook (Airflow's ``@hookimpl``; also usable as ``@hookimpl()``)."""
    def mark(fn: Callable) -> Callable:
        fn.updraft_listener_hook = True  # type: ignore[attr-defined]
        return fn

    return mark(function) if function is not None else mark


def get_listeners() -> list[Any]:
    """Every registered listener that loads (each once, even if registered twice)."""
    from updraft.plugins import registry

    listeners: list[Any] = []
    for listener in registry.load_all(GROUP).values():
        if not any(listener is known for known in listeners):
            listeners.append(listener)
    return listeners


def has_listeners(hook: str) -> bool:
    """Whether some registered listener implements ``hook``."""
    return any(callable(getattr(listener, hook, None)) for listener in get_listeners())


def _accepted(function: Callable, kwargs: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return kwargs
    return {name: value for name, value in kwargs.items() if name in params}


def call_hook(hook: str, **kwargs: Any) -> int:
    """Call ``hook`` on every listener that has it; return how many were called.

    Listeners get only the arguments they declare (as pluggy gives them); an exception is
    logged with the listener's name and goes no further.
    """
    if hook not in HOOKS:
        raise ValueError(f"unknown listener hook {hook!r}; the hooks are {', '.join(HOOKS)}")
    try:
        listeners = get_listeners()
    except Exception:  # noqa: BLE001  (listeners must never break what they listen to)
        log.exception("Listeners could not be loaded; %s is not called", hook)
        return 0
    called = 0
    for listener in listeners:
        function = getattr(listener, hook, None)
        if not callable(function):
            continue
        called += 1
        try:
            function(**_accepted(function, kwargs))
        except Exception:  # noqa: BLE001
            name = getattr(listener, "__name__", None) or type(listener).__qualname__
            log.exception("Listener %s failed in %s; the state change stands", name, hook)
    return called


# -- what the nodes call ---------------------------------------------------------------------


def notify_task_instance_running(task_instance: Any, previous_state: Any = "queued") -> None:
    """A try is about to run its task (called in the try's process)."""
    call_hook("on_task_instance_running", previous_state=previous_state,
              task_instance=task_instance)


def notify_task_instance_finished(task_instance: Any, state: Any,
                                  error: BaseException | str | None = None,
                                  previous_state: Any = "running") -> None:
    """A try's outcome was recorded: success, skipped, failed or up_for_retry (failed)."""
    state = str(getattr(state, "value", state))
    try:
        task_instance.state = state  # listeners read the recorded state, as in Airflow
    except AttributeError:
        pass
    if state == "success":
        call_hook("on_task_instance_success", previous_state=previous_state,
                  task_instance=task_instance)
    elif state == "skipped":
        call_hook("on_task_instance_skipped", previous_state=previous_state,
                  task_instance=task_instance)
    elif state in FAILED_TRY_STATES:
        call_hook("on_task_instance_failed", previous_state=previous_state,
                  task_instance=task_instance, error=error)


def notify_dag_run_state(dag_run: Any, old_state: Any, new_state: Any, msg: str = "") -> None:
    """A run moved from ``old_state`` to ``new_state`` (running, success or failed).

    ``dag_run`` is the run as listeners see it: a ``updraft.runtime_models.DagRun`` (see
    :func:`dag_run_for_listeners`) or any object with the run's attributes.
    """
    hook = _RUN_HOOK_BY_STATE.get(str(getattr(new_state, "value", new_state)))
    if hook is not None and str(old_state) != str(new_state):
        call_hook(hook, dag_run=dag_run, msg=msg)


def dag_run_for_listeners(session: Any, dag_id: str, run_id: str) -> Any:
    """The run ``dag_id``/``run_id`` read from the store, as listeners get it (None if gone)."""
    from updraft.runtime_models import DagRun
    from updraft.store.runs import get_run

    row = get_run(session, dag_id, run_id)
    return DagRun.from_row(row) if row is not None else None


def notify_dag_run_changed(dag_id: str, run_id: str, old_state: Any, new_state: Any,
                           msg: str = "", *, session: Any = None,
                           store_url: str | None = None) -> None:
    """:func:`notify_dag_run_state` for a run known by its ids; reads the run (with
    ``session``, or a short session of its own on ``store_url``) only when some listener
    implements the hook of ``new_state``, so it costs nothing when none is registered."""
    hook = _RUN_HOOK_BY_STATE.get(str(getattr(new_state, "value", new_state)))
    if hook is None or str(old_state) == str(new_state) or not has_listeners(hook):
        return
    try:
        if session is not None:
            dag_run = dag_run_for_listeners(session, dag_id, run_id)
        else:
            from updraft.store.engine import session_scope

            with session_scope(store_url) as own:
                dag_run = dag_run_for_listeners(own, dag_id, run_id)
    except Exception:  # noqa: BLE001
        log.exception("Run %s of %s could not be read for the listeners", run_id, dag_id)
        return
    if dag_run is not None:
        call_hook(hook, dag_run=dag_run, msg=msg)


def notify_starting(component: Any) -> None:
    """A node (scheduler, web, worker, task runner...) is starting."""
    call_hook("on_starting", component=component)


def notify_before_stopping(component: Any) -> None:
    """A node is about to stop."""
    call_hook("before_stopping", component=component)


__all__ = ["HOOKS", "call_hook", "dag_run_for_listeners", "get_listeners", "has_listeners",
           "hookimpl", "notify_before_stopping", "notify_dag_run_changed",
           "notify_dag_run_state", "notify_starting", "notify_task_instance_finished",
           "notify_task_instance_running"]
