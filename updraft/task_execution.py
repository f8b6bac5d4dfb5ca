"""Running a try's task code: load the DAG, build the context, render, execute, collect.

This is the part of a try that runs user code, and only that: it writes nothing to the
store. ``execute_try`` runs in the try's own process with process isolation (a child the
supervisor forked from its zygote: ``updraft.isolation``) or in the executor slot's thread
with thread isolation; ``after_try`` runs the task's callbacks there once the outcome is
recorded. What the try produced travels back as a ``TryResult``: small and picklable.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from updraft.exceptions import (
    TaskDeferred,
    UnmappableXComTypePushed,
    UpdraftFailException,
    UpdraftRescheduleException,
    UpdraftSensorTimeout,
    UpdraftSkipException,
    UpdraftTaskTimeout,
    XComForMappedNotFound,
)
from updraft.retries import RetryPolicy, failure_state
from updraft.state import FAILED_TRY_STATES, TaskInstanceState as TI

log = logging.getLogger("updraft.runtime")


@dataclass
class TryResult:
    """What a try's task code produced; the outcome is recorded from it."""

    state: TI
    error: str | None = None
    rendered: dict[str, Any] = field(default_factory=dict)  # masked already
    xcoms: dict[str, Any] = field(default_factory=dict)
    skipped_downstream: list[str] = field(default_factory=list)
    followed_branches: list[str] | None = None
    reschedule_at: datetime | None = None
    retry_policy: RetryPolicy | None = None
    #: A successful try's outlet events (``updraft.assets``), recorded with its outcome.
    asset_events: list[dict[str, Any]] = field(default_factory=list)
    #: A deferred try's trigger and where it resumes (``deferral_of``), stored with it.
    deferral: dict[str, Any] | None = None


@dataclass
class TryExecution:
    """A finished execution: its result, and the live objects its callbacks need."""

    result: TryResult
    task: Any = None
    ti: Any = None
    context: dict | None = None
    exception: BaseException | None = None


_dag_cache: dict[tuple[str, str], tuple[float, Any]] = {}
_dag_cache_lock = threading.Lock()
_file_locks: dict[str, threading.Lock] = {}


def load_dag(fileloc: str, dag_id: str):
    """The DAG ``dag_id`` from ``fileloc``, parsed once per file version in this process.

    Threads that need the same file at once wait for one parse instead of racing.
    """
    from updraft.compat import install_if_enabled
    from updraft.dagbag import DagBag
    from updraft.exceptions import DagNotFound

    install_if_enabled()
    mtime = os.stat(fileloc).st_mtime
    with _dag_cache_lock:
        cached = _dag_cache.get((fileloc, dag_id))
        if cached and cached[0] == mtime:
            return cached[1]
        file_lock = _file_locks.setdefault(fileloc, threading.Lock())
    with file_lock:
        with _dag_cache_lock:
            cached = _dag_cache.get((fileloc, dag_id))
            if cached and cached[0] == mtime:
                return cached[1]
        bag = DagBag(dag_folder=fileloc, include_examples=False, safe_mode=False)
        dag = bag.dags.get(dag_id)
        if dag is None:
            problem = bag.import_errors.get(fileloc)
            raise DagNotFound(f"DAG {dag_id!r} not found in {fileloc}" +
                              (f": {problem}" if problem else ""))
        with _dag_cache_lock:
            for other in bag.dags.values():
                _dag_cache[(fileloc, other.dag_id)] = (mtime, other)
        # -- listeners: loaded with the first DAG, so tries forked from a warm process
        # inherit them instead of each reading entry points (updraft.listeners) --
        from updraft.plugins.registry import preload_for_tries

        preload_for_tries()
        # -- end listeners --
        settle_heap()
        return dag


def is_dag_cached(fileloc: str, dag_id: str) -> bool:
    """True if this process has parsed the current version of ``fileloc`` for ``dag_id``."""
    try:
        mtime = os.stat(fileloc).st_mtime
    except OSError:
        return False
    with _dag_cache_lock:
        cached = _dag_cache.get((fileloc, dag_id))
    return cached is not None and cached[0] == mtime


_settled = [0.0]


def settle_heap(min_interval: float = 1.0) -> None:
    """Keep long-lived objects (parsed DAGs: thousands of objects each) out of the garbage
    collector's full passes, which otherwise walk them again and again while tries run (a
    fifth of a short try's cost). Called after parsing: objects frozen before are thawed
    and collected first, so a replaced DAG version is not kept forever. At most once per
    ``min_interval`` seconds (a full collection costs tens of milliseconds)."""
    import gc

    now = time.monotonic()
    if now - _settled[0] < min_interval:
        return
    _settled[0] = now
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def call_with_timeout(func: Callable[[], Any], timeout: timedelta | None,
                      on_kill: Callable[[], None], label: str) -> Any:
    """Call ``func``; past ``timeout`` raise UpdraftTaskTimeout (and call ``on_kill``)."""
    if timeout is None:
        return func()
    seconds = timeout.total_seconds()
    message = f"Timeout, PID: {os.getpid()}: {label} ran longer than {timeout}"
    if threading.current_thread() is threading.main_thread():
        def _raise(_signum, _frame):
            raise UpdraftTaskTimeout(message)

        previous = signal.signal(signal.SIGALRM, _raise)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return func()
        except UpdraftTaskTimeout:
            on_kill()
            raise
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    # Worker threads cannot take signals: run in a helper thread and abandon it on timeout.
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = func()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller)
            box["error"] = exc

    from updraft.tasklog import _routes

    sink = _routes.get(threading.get_ident())
    from updraft.runtime_context import _local

    stack = list(getattr(_local, "stack", []) or [])

    def routed_target():
        if sink is not None:
            _routes[threading.get_ident()] = sink
        _local.stack = stack
        try:
            target()
        finally:
            _routes.pop(threading.get_ident(), None)

    worker = threading.Thread(target=routed_target, name=f"updraft-task-{label}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        on_kill()
        raise UpdraftTaskTimeout(message)
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _has_mapped_dependants(task) -> bool:
    from updraft.mapping import MappedOperator

    dag = task.dag
    for down_id in task.downstream_task_ids:
        down = dag.task_dict[down_id]
        if isinstance(down, MappedOperator) and task.task_id in down.mapped_task_ids():
            return True
    return False


def _collect_xcoms(task, ti, result: Any) -> None:
    """Queue the return value (and each key with multiple_outputs) as XComs."""
    # A mapped copy's value is one item of what its mapped dependants expand over (a task
    # mapped over a mapped task's output); an unmapped task must push a collection.
    if getattr(ti, "map_index", -1) < 0 and _has_mapped_dependants(task):
        if result is None:
            raise XComForMappedNotFound(
                f"Task {task.task_id!r} feeds a mapped task but returned None; return a list "
                "or a dict to map over")
        if isinstance(result, (str, bytes)) or not isinstance(result, (list, tuple, dict)):
            raise UnmappableXComTypePushed(
                f"Task {task.task_id!r} feeds a mapped task but returned a "
                f"{type(result).__name__}; only a list or a dict can be mapped over")
    if not task.do_xcom_push or result is None:
        return
    if task.multiple_outputs:
        if not isinstance(result, dict):
            raise TypeError(f"Returned output was type {type(result)} expected dictionary for "
                            "multiple_outputs")
        for key in result:
            if not isinstance(key, str):
                raise TypeError(f"Returned dictionary keys must be strings when using "
                                f"multiple_outputs, found {key} ({type(key)}) instead")
        for key, value in result.items():
            ti.xcom_push(key=key, value=value)
    ti.xcom_push(key="return_value", value=result)


def _prepare_task(dag, request, run, ti_row, store_url, previous: dict):
    """Build the operator, the TaskInstance and the context for this try."""
    from updraft.mapping import MappedOperator
    from updraft.params import ParamsDict
    from updraft.runtime_models import DagRun, TaskInstance
    from updraft.templating import build_context

    declared = dag.get_task(request.task_id)
    run_view = DagRun.from_row(run, dag=dag, store_url=store_url)
    ti = TaskInstance.from_row(ti_row, run=run_view, task=declared, store_url=store_url)
    params = ParamsDict()
    params.update(dag.params)
    params.update(declared.params)
    resolved_params = params.resolve(run_view.conf or {})
    context = build_context(dag=dag, task=declared, ti=ti, dag_run=run_view,
                            params=resolved_params, **previous)
    if isinstance(declared, MappedOperator):
        mapped_kwargs = declared.resolve_expansion_kwargs(context, request.map_index)
        task = declared.unmap(mapped_kwargs)
    else:
        try:
            task = copy.deepcopy(declared)
        except Exception:  # noqa: BLE001  (uncopyable attributes: render on a shallow copy)
            task = copy.copy(declared)
    ti.task = task
    context["task"] = task
    context["expanded_ti_count"] = None
    return task, ti, context


def _prepare_and_render(dag, request, claimed):
    """Build the task and its context, and render its templates (pulling the XComs they
    name). Nothing of the task's own code has run yet, so while the store is away this is
    retried with backoff instead of failing the try."""
    from updraft.runtime_context import set_current_context
    from updraft.store.outage import retry_while_unavailable

    def attempt():
        task, ti, context = _prepare_task(dag, request, claimed.run, claimed.ti,
                                          request.store_url, claimed.previous)
        with set_current_context(context):
            rendered = _render(task, context)
        return task, ti, context, rendered

    return retry_while_unavailable(attempt, what=f"preparing {request.label}")


def _render(task, context) -> dict[str, Any]:
    from updraft.xcom_arg import resolve_xcom_args

    for name in task.template_fields:
        value = getattr(task, name, None)
        if value is not None:
            setattr(task, name, resolve_xcom_args(value, context))
    return task.render_template_fields(context) or {}


def _run_callbacks(callbacks, context, label: str) -> None:
    if not callbacks:
        return
    for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        try:
            callback(context)
        except Exception:  # noqa: BLE001  (a failing callback must not change the outcome)
            log.exception("Error when executing %s callback", label)




def execute_try(request, claimed, dag=None, *,
                on_task: Callable[[Any], None] | None = None) -> TryExecution:
    """Run the task of ``request`` in this thread and return what it produced.

    ``claimed`` is the claim's ``ClaimedTry`` (the run's and the task instance's rows).
    ``on_task(task)`` is called once the operator is built, before any of its code runs
    (the supervisor learns the task's timeout and limits that way). Every error of the
    task's code becomes the result's state; only KeyboardInterrupt escapes.
    """
    # -- dask-native tasks (updraft.xcom_backends): in the try's scope, XCom references
    # pulled resolve to their values and large values pushed leave as references --
    from updraft.xcom_backends import try_scope

    with try_scope(request) as scope:
        execution = _execute_try(request, claimed, dag, on_task=on_task, scope=scope)
    scope.drop_unsent(execution.result)  # a failed try's large values stay behind
    return execution
    # -- end dask-native tasks --


def _execute_try(request, claimed, dag=None, *, on_task=None, scope=None) -> TryExecution:
    from updraft.runtime_context import set_current_context
    from updraft.secrets import redact

    state: TI = TI.FAILED
    error: str | None = None
    exception: BaseException | None = None
    reschedule_at: datetime | None = None
    deferral: dict[str, Any] | None = None
    task = ti = context = None
    rendered: dict[str, Any] = {}
    try:
        dag = dag or load_dag(request.fileloc, request.dag_id)
        task, ti, context, rendered = _prepare_and_render(dag, request, claimed)
        if on_task is not None:
            on_task(task)
        with set_current_context(context):
            # -- listeners: on_task_instance_running (updraft.listeners) --
            from updraft.listeners import notify_task_instance_running

            notify_task_instance_running(ti, previous_state=TI.QUEUED)
            # -- end listeners --
            _run_callbacks(task.on_execute_callback, context, "on_execute")
            task.pre_execute(context)

            resume = getattr(claimed.ti, "next_method", None) if claimed is not None \
                else None
            if resume:
                next_kwargs = _next_kwargs(claimed.ti)
                log.info("Resuming after deferral in %s", resume)

                def execute():
                    return task.resume_execution(resume, next_kwargs, context)
            elif getattr(task, "start_from_trigger", False) and \
                    getattr(task, "start_trigger_args", None) is not None:
                def execute():
                    return _defer_from_start(task)
            else:
                def execute():
                    return task.execute(context)

            result = call_with_timeout(execute, task.execution_timeout, task.on_kill,
                                       request.label)
            task.post_execute(context, result)
            _collect_xcoms(task, ti, result)
            if scope is not None:  # dask-native tasks: large values to their backend
                scope.offload(ti, task)
        state = TI.SUCCESS
        log.info("Marking task as SUCCESS. dag_id=%s, task_id=%s, run_id=%s, map_index=%s",
                 request.dag_id, request.task_id, request.run_id, request.map_index)
    except TaskDeferred as exc:
        try:
            deferral = deferral_of(exc, task)
            state, exception = TI.DEFERRED, None
            log.info("Pausing task as DEFERRED. dag_id=%s, task_id=%s, run_id=%s, "
                     "map_index=%s: waits for %s", request.dag_id, request.task_id,
                     request.run_id, request.map_index, deferral["label"])
        except Exception as bad:  # noqa: BLE001  (a trigger that cannot be stored fails)
            state, exception = TI.FAILED, bad
            error = f"the task deferred, but its trigger cannot be stored: {bad}"
            log.error("%s", error, exc_info=True)
    except UpdraftSkipException as exc:
        state, exception = TI.SKIPPED, exc
        log.info("Marking task as SKIPPED: %s", exc)
    except UpdraftRescheduleException as exc:
        state, exception, reschedule_at = TI.UP_FOR_RESCHEDULE, exc, exc.reschedule_date
        log.info("Rescheduling task, next poke at %s", reschedule_at)
    except (UpdraftFailException, UpdraftSensorTimeout) as exc:
        state, exception = TI.FAILED, exc
        error = f"{type(exc).__name__}: {exc}"
        log.error("Task failed without retrying: %s", exc, exc_info=True)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (every error of user code is recorded)
        exception = exc
        error = f"{type(exc).__name__}: {exc}"
        policy = RetryPolicy.of(task) if task is not None else None
        max_tries = claimed.ti.max_tries if claimed is not None else 0
        state = failure_state(policy, request.try_number, max_tries)
        log.error("Task failed with exception", exc_info=True)
        log.info("Marking task as %s. dag_id=%s, task_id=%s, run_id=%s, map_index=%s",
                 "UP_FOR_RETRY" if state == TI.UP_FOR_RETRY else "FAILED", request.dag_id,
                 request.task_id, request.run_id, request.map_index)
    result = TryResult(
        state=state, error=error, rendered=redact(rendered), reschedule_at=reschedule_at,
        xcoms=dict(ti.pending_xcoms) if ti is not None else {},
        skipped_downstream=list(ti.skipped_downstream) if ti is not None else [],
        followed_branches=ti.followed_branches if ti is not None else None,
        retry_policy=RetryPolicy.of(task) if task is not None else None,
        asset_events=_asset_events(task, context) if state == TI.SUCCESS else [],
        deferral=deferral if state == TI.DEFERRED else None)
    return TryExecution(result, task, ti, context, exception)


def _next_kwargs(ti_row) -> dict[str, Any]:
    from updraft.models.xcom import deserialize_value

    return dict(deserialize_value(getattr(ti_row, "next_kwargs", None)) or {})


def _defer_from_start(task) -> Any:
    """``start_from_trigger``: defer with the operator's ``start_trigger_args`` before any
    of its code runs (Airflow runs this part in the scheduler; here it is the try's)."""
    from updraft.triggers.base import import_trigger_class

    args = task.start_trigger_args
    trigger = import_trigger_class(args.trigger_cls)(**(args.trigger_kwargs or {}))
    task.defer(trigger=trigger, method_name=args.next_method, kwargs=args.next_kwargs,
               timeout=args.timeout)


def deferral_of(deferred: TaskDeferred, task) -> dict[str, Any]:
    """What the store keeps of a deferral: the trigger's class path and kwargs (JSON text),
    where the try resumes, and when the wait fails the task."""
    from updraft.models.xcom import serialize_value
    from updraft.triggers.base import BaseTrigger
    from updraft.utils.timezone import utcnow

    trigger = deferred.trigger
    if not isinstance(trigger, BaseTrigger):
        raise TypeError(f"defer(trigger=...) needs a BaseTrigger, got {type(trigger).__name__}")
    classpath, kwargs = trigger.serialize()
    timeout = deferred.timeout
    if timeout is None and task is not None and getattr(task, "is_sensor", False) and \
            getattr(task, "timeout", None):
        # A deferrable sensor's own timeout bounds its wait (Airflow does the same).
        timeout = timedelta(seconds=float(task.timeout))
    method = deferred.method_name or "__trigger_exit__"
    return {"classpath": classpath, "kwargs": serialize_value(dict(kwargs)),
            "method_name": method,
            "next_kwargs": serialize_value(dict(deferred.kwargs or {})),
            "timeout_at": utcnow() + timeout if timeout is not None else None,
            "label": f"{classpath.rpartition('.')[2]}"}


def _asset_events(task, context) -> list[dict[str, Any]]:
    if task is None or context is None or not getattr(task, "outlets", None):
        return []
    from updraft.assets import outlet_events_of

    return outlet_events_of(task, context)


def has_after_work(execution: TryExecution) -> bool:
    """Whether ``after_try`` would do anything for this execution: a callback, an alert
    email or a listener of finished tries (the try's process then waits to learn the
    recorded state; otherwise it need not)."""
    from updraft.listeners import has_listeners

    task = execution.task
    if task is None or execution.context is None:
        return False
    if any((task.on_success_callback, task.on_failure_callback, task.on_retry_callback,
            task.on_skipped_callback)):
        return True
    if task.email and (task.email_on_failure or task.email_on_retry):
        return True
    return any(has_listeners(hook) for hook in (
        "on_task_instance_success", "on_task_instance_failed", "on_task_instance_skipped"))


def after_try(execution: TryExecution, recorded_state: TI | None) -> None:
    """Run the task's callback for the recorded outcome, and its alert email.

    Nothing runs when the outcome was refused (``recorded_state`` None): another runner
    owns the try, or someone changed the task instance meanwhile.
    """
    from updraft.runtime_context import set_current_context

    task, context = execution.task, execution.context
    if recorded_state is None or task is None or context is None:
        return
    context["exception"] = execution.exception
    callbacks = {TI.SUCCESS: (task.on_success_callback, "on_success"),
                 TI.FAILED: (task.on_failure_callback, "on_failure"),
                 TI.UP_FOR_RETRY: (task.on_retry_callback, "on_retry"),
                 TI.SKIPPED: (task.on_skipped_callback, "on_skipped")}.get(recorded_state)
    with set_current_context(context):
        if callbacks:
            _run_callbacks(callbacks[0], context, callbacks[1])
        _send_alert_email(task, execution.ti, recorded_state, execution.exception, context)
        # -- listeners: on_task_instance_success/failed/skipped (updraft.listeners) --
        from updraft.listeners import notify_task_instance_finished

        notify_task_instance_finished(execution.ti, recorded_state, execution.exception,
                                      previous_state=TI.RUNNING)
        # -- end listeners --


def _send_alert_email(task, ti, state: TI, exception, context) -> None:
    """Email on failure or retry when the task asks for it (and SMTP is configured)."""
    if state == TI.FAILED and not task.email_on_failure:
        return
    if state == TI.UP_FOR_RETRY and not task.email_on_retry:
        return
    if state not in FAILED_TRY_STATES or not task.email:
        return
    try:
        from updraft.alerts import send_task_alert

        send_task_alert(task, ti, state, exception, context)
    except Exception:  # noqa: BLE001  (an alert that cannot be sent is logged, not fatal)
        log.exception("Failed to send email alert for %s", ti)


__all__ = ["TryExecution", "TryResult", "after_try", "call_with_timeout", "execute_try",
           "is_dag_cached", "load_dag", "settle_heap"]
