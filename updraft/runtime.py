"""Run one try of one task instance: the task runner every executor calls.

``run_task_try(request)`` claims the try (``queued -> running`` compare-and-set on the try
number), builds the context, renders templates, runs the operator with its timeout while
capturing the try's log, and records the outcome with a second compare-and-set
(``running -> outcome`` for that try number) in the same transaction as the XComs, the
branch skips and the row in ``task_instance_try`` whose unique key makes a try count once.
A duplicate or stale delivery is refused at either step and changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from updraft.exceptions import (
    UpdraftFailException,
    UpdraftRescheduleException,
    UpdraftSensorTimeout,
    UpdraftSkipException,
    UpdraftTaskTimeout,
    UnmappableXComTypePushed,
    XComForMappedNotFound,
)
from updraft.state import TaskInstanceState as TI

log = logging.getLogger(__name__)
MAX_RETRY_DELAY_SECONDS = 24 * 60 * 60


@dataclass(frozen=True)
class TryRequest:
    """Everything a worker needs to run one try; small and JSON-friendly."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    fileloc: str
    store_url: str | None = None
    queue: str = "default"  # the task's queue: executors route it (Dask: worker resources)

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> "TryRequest":
        return cls(**data)

    @property
    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} {self.run_id} try {self.try_number}"


@dataclass
class TryOutcome:
    """What became of a try. ``refused`` means the store said another runner owns it."""

    state: TI | None
    try_number: int
    refused: bool = False
    error: str | None = None
    log_path: str | None = None
    duration: float | None = None
    next_retry_at: datetime | None = None


def utcnow() -> datetime:
    from updraft.store.models import utcnow as _now

    return _now()


# -- retries -------------------------------------------------------------------------------

def next_retry_datetime(task, *, dag_id: str, logical_date: Any, try_number: int,
                        failed_at: datetime) -> datetime:
    """When the next try may start: retry_delay, or Airflow's exponential backoff."""
    delay: timedelta = task.retry_delay
    if task.retry_exponential_backoff:
        min_backoff = max(1, math.ceil(delay.total_seconds() * (2 ** (try_number - 1))))
        digest = hashlib.sha1(f"{dag_id}#{task.task_id}#{logical_date}#{try_number}"
                              .encode()).hexdigest()
        modded = min_backoff + int(digest, 16) % min_backoff
        delay = timedelta(seconds=min(modded, MAX_RETRY_DELAY_SECONDS))
        if task.max_retry_delay is not None:
            delay = min(task.max_retry_delay, delay)
    return failed_at + delay


# -- loading the task ------------------------------------------------------------------------

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
        settle_heap()
        return dag


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


# -- heartbeats ------------------------------------------------------------------------------

class _Heartbeats:
    """One thread per process that marks every running try as alive, in one UPDATE."""

    def __init__(self):
        self._keys: dict[tuple, str | None] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: tuple, store_url: str | None) -> None:
        with self._lock:
            self._keys[key] = store_url
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="updraft-heartbeat",
                                                daemon=True)
                self._thread.start()

    def remove(self, key: tuple) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def _loop(self) -> None:
        from sqlalchemy import tuple_, update

        from updraft.config import conf
        from updraft.store.engine import session_scope
        from updraft.store.models import TaskInstanceModel

        interval = conf.getfloat("scheduler", "task_heartbeat_interval")
        while True:
            time.sleep(interval)
            with self._lock:
                by_url: dict[str | None, list[tuple]] = {}
                for key, url in self._keys.items():
                    by_url.setdefault(url, []).append(key)
            for url, keys in by_url.items():
                try:
                    with session_scope(url) as session:
                        session.execute(update(TaskInstanceModel).where(
                            tuple_(TaskInstanceModel.dag_id, TaskInstanceModel.run_id,
                                   TaskInstanceModel.task_id, TaskInstanceModel.map_index,
                                   TaskInstanceModel.try_number).in_(keys),
                            TaskInstanceModel.state == str(TI.RUNNING),
                        ).values(heartbeat_at=utcnow()))
                except Exception:  # noqa: BLE001  (a missed beat is retried next interval)
                    log.warning("task heartbeat failed", exc_info=True)


heartbeats = _Heartbeats()


# -- timeouts --------------------------------------------------------------------------------

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


# -- the runner ------------------------------------------------------------------------------

_HOST: dict[str, str] = {}


def hostname() -> str:
    """This machine's name, looked up once (getfqdn may ask DNS)."""
    if "fqdn" not in _HOST:
        _HOST["fqdn"] = socket.getfqdn()
    return _HOST["fqdn"]


_STATEMENTS: dict[str, Any] = {}


def _statements() -> dict[str, Any]:
    """The task runner's hot statements, built once with bind parameters (building a
    SQLAlchemy statement costs more than running it on SQLite)."""
    if _STATEMENTS:
        return _STATEMENTS
    from sqlalchemy import bindparam, func, insert, select, update

    from updraft.state import DagRunState
    from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry

    ti = TaskInstanceModel.__table__
    run = DagRunModel.__table__
    key = (ti.c.dag_id == bindparam("k_dag"), ti.c.run_id == bindparam("k_run"),
           ti.c.task_id == bindparam("k_task"), ti.c.map_index == bindparam("k_index"),
           ti.c.try_number == bindparam("k_try"))
    _STATEMENTS.update(
        claim=update(ti).where(*key, ti.c.state.in_([str(TI.QUEUED), str(TI.SCHEDULED)]))
        .values(state=str(TI.RUNNING), start_date=bindparam("v_now", type_=ti.c.start_date.type),
                end_date=None, duration=None, hostname=bindparam("v_host"),
                pid=bindparam("v_pid"), heartbeat_at=bindparam("v_now"),
                updated_at=bindparam("v_now"),
                executor=func.coalesce(bindparam("v_executor", type_=ti.c.executor.type),
                                       ti.c.executor)),
        outcome=update(ti).where(*key, ti.c.state == str(TI.RUNNING)).values(
            state=bindparam("v_state"), end_date=bindparam("v_now", type_=ti.c.end_date.type),
            duration=bindparam("v_duration"),
            next_retry_at=bindparam("v_next", type_=ti.c.next_retry_at.type),
            rendered_fields=bindparam("v_rendered", type_=ti.c.rendered_fields.type),
            updated_at=bindparam("v_now")),
        try_row=insert(TaskInstanceTry.__table__),
        run=select(run).where(run.c.dag_id == bindparam("k_dag"),
                              run.c.run_id == bindparam("k_run")),
        ti=select(ti).where(*key[:4]),
        previous=select(run.c.data_interval_start, run.c.data_interval_end,
                        run.c.start_date, run.c.end_date).where(
            run.c.dag_id == bindparam("k_dag"), run.c.logical_date < bindparam("k_date"),
            run.c.state == str(DagRunState.SUCCESS)).order_by(
            run.c.logical_date.desc()).limit(1),
    )
    return _STATEMENTS


def _key_params(request: TryRequest) -> dict[str, Any]:
    return {"k_dag": request.dag_id, "k_run": request.run_id, "k_task": request.task_id,
            "k_index": request.map_index, "k_try": request.try_number}


def _claim(request: TryRequest, node: str | None, executor: str | None):
    """queued -> running for exactly this try; returns (run row, ti row, previous success)
    or None if refused. Runs in a transaction shared with other threads' store writes."""
    from updraft.models.xcom import clear_xcoms
    from updraft.store.group_commit import group_committer
    from updraft.store.runs import add_event

    stmts = _statements()
    params = _key_params(request)

    def claim(session):
        now = utcnow()
        result = session.execute(stmts["claim"], {**params, "v_now": now, "v_host": hostname(),
                                                  "v_pid": os.getpid(), "v_executor": executor})
        if not result.rowcount:
            return None
        if request.try_number > 1:
            # XComs of an earlier try of this task instance must not leak into this one.
            clear_xcoms(session, dag_id=request.dag_id, run_id=request.run_id,
                        task_id=request.task_id, map_index=request.map_index)
        add_event(session, dag_id=request.dag_id, run_id=request.run_id,
                  task_id=request.task_id, map_index=request.map_index,
                  try_number=request.try_number, old=str(TI.QUEUED), new=str(TI.RUNNING),
                  cause=f"try {request.try_number} started on {socket.gethostname()}",
                  node=node, when=now)
        run = session.execute(stmts["run"], params).first()
        ti = session.execute(stmts["ti"], params).first()
        previous: dict[str, Any] = {}
        if run is not None and run.logical_date is not None:
            prev = session.execute(stmts["previous"],
                                   {**params, "k_date": run.logical_date}).first()
            if prev is not None:
                previous = {"prev_data_interval_start_success": prev.data_interval_start,
                            "prev_data_interval_end_success": prev.data_interval_end,
                            "prev_start_date_success": prev.start_date,
                            "prev_end_date_success": prev.end_date}
        return run, ti, previous

    return group_committer(request.store_url).run(claim)


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
    if _has_mapped_dependants(task):
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


def _prepare_task(dag, request: TryRequest, run, ti_row, store_url, previous: dict):
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


def _render(task, context) -> dict[str, Any]:
    from updraft.xcom_arg import resolve_xcom_args

    for field in task.template_fields:
        value = getattr(task, field, None)
        if value is not None:
            setattr(task, field, resolve_xcom_args(value, context))
    return task.render_template_fields(context) or {}


def _run_callbacks(callbacks, context, label: str) -> None:
    if not callbacks:
        return
    for callback in callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]:
        try:
            callback(context)
        except Exception:  # noqa: BLE001  (a failing callback must not change the outcome)
            log.exception("Error when executing %s callback", label)


def run_task_try(request: TryRequest, dag=None, *, node: str | None = None,
                 executor: str | None = None, on_log_line: Callable[[str], None] | None = None,
                 echo_log=None) -> TryOutcome:
    """Run one try of one task instance and record its outcome; see the module docstring."""
    from updraft.config import conf
    from updraft.runtime_context import set_current_context
    from updraft.tasklog import capture_try_log, try_log_path

    claimed = _claim(request, node, executor)
    if claimed is None:
        return TryOutcome(state=None, try_number=request.try_number, refused=True,
                          error="the store refused the claim: this try is not queued "
                                "(already running elsewhere, finished, cleared or marked)")
    run, ti_row, previous = claimed
    path = try_log_path(conf.log_folder(), request.dag_id, request.run_id, request.task_id,
                        request.map_index, request.try_number)
    key = (request.dag_id, request.run_id, request.task_id, request.map_index,
           request.try_number)
    heartbeats.add(key, request.store_url)
    started = time.monotonic()
    state: TI = TI.FAILED
    error: str | None = None
    exception: BaseException | None = None
    reschedule_at: datetime | None = None
    task = ti = context = None
    rendered: dict[str, Any] = {}
    try:
        with capture_try_log(path, on_line=on_log_line, echo=echo_log):
            log.info("Running %s on host %s", request.label, socket.gethostname())
            try:
                dag = dag or load_dag(request.fileloc, request.dag_id)
                task, ti, context = _prepare_task(dag, request, run, ti_row,
                                                      request.store_url, previous)
                with set_current_context(context):
                    rendered = _render(task, context)
                    _run_callbacks(task.on_execute_callback, context, "on_execute")
                    task.pre_execute(context)

                    def execute():
                        return task.execute(context)

                    result = call_with_timeout(execute, task.execution_timeout, task.on_kill,
                                               request.label)
                    task.post_execute(context, result)
                    _collect_xcoms(task, ti, result)
                state = TI.SUCCESS
                log.info("Marking task as SUCCESS. dag_id=%s, task_id=%s, run_id=%s, "
                         "map_index=%s", request.dag_id, request.task_id, request.run_id,
                         request.map_index)
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
            except BaseException as exc:  # noqa: BLE001  (every error of user code is recorded)
                if isinstance(exc, (KeyboardInterrupt, SystemExit)) and \
                        not isinstance(exc, SystemExit):
                    raise
                exception = exc
                error = f"{type(exc).__name__}: {exc}"
                retries = task.retries if task is not None else 0
                eligible = retries and request.try_number <= (ti_row.max_tries or 0)
                state = TI.UP_FOR_RETRY if eligible else TI.FAILED
                log.error("Task failed with exception", exc_info=True)
                log.info("Marking task as %s. dag_id=%s, task_id=%s, run_id=%s, map_index=%s",
                         "UP_FOR_RETRY" if eligible else "FAILED", request.dag_id,
                         request.task_id, request.run_id, request.map_index)
            outcome = _record_outcome(request, run, task, ti, state, error, rendered,
                                      reschedule_at, node, started)
            if outcome.refused:
                log.warning("Outcome not recorded: %s", outcome.error)
            elif context is not None and task is not None:
                context["exception"] = exception
                callbacks = {TI.SUCCESS: (task.on_success_callback, "on_success"),
                             TI.FAILED: (task.on_failure_callback, "on_failure"),
                             TI.UP_FOR_RETRY: (task.on_retry_callback, "on_retry"),
                             TI.SKIPPED: (task.on_skipped_callback, "on_skipped")}.get(state)
                with set_current_context(context):
                    if callbacks:
                        _run_callbacks(callbacks[0], context, callbacks[1])
                    _send_alert_email(task, ti, state, exception, context)
    finally:
        heartbeats.remove(key)
    outcome.log_path = str(path)
    return outcome


def _send_alert_email(task, ti, state: TI, exception, context) -> None:
    """Email on failure or retry when the task asks for it (and SMTP is configured)."""
    if state == TI.FAILED and not task.email_on_failure:
        return
    if state == TI.UP_FOR_RETRY and not task.email_on_retry:
        return
    if state not in (TI.FAILED, TI.UP_FOR_RETRY) or not task.email:
        return
    try:
        from updraft.alerts import send_task_alert

        send_task_alert(task, ti, state, exception, context)
    except Exception:  # noqa: BLE001  (an alert that cannot be sent is logged, not fatal)
        log.exception("Failed to send email alert for %s", ti)


def _record_outcome(request: TryRequest, run, task, ti, state: TI, error: str | None,
                    rendered: dict, reschedule_at: datetime | None, node: str | None,
                    started: float) -> TryOutcome:
    """running -> outcome for exactly this try, with XComs, skips and the try row."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from updraft.models.xcom import set_xcom
    from updraft.secrets import redact
    from updraft.store.group_commit import group_committer
    from updraft.store.models import TaskReschedule
    from updraft.store.runs import add_event, skip_task_instances

    now = utcnow()
    duration = time.monotonic() - started
    next_retry_at = None
    if state == TI.UP_FOR_RETRY and task is not None:
        next_retry_at = next_retry_datetime(task, dag_id=request.dag_id,
                                            logical_date=run.logical_date,
                                            try_number=request.try_number, failed_at=now)
    elif state == TI.UP_FOR_RESCHEDULE:
        next_retry_at = reschedule_at
    params = {**_key_params(request), "v_state": str(state), "v_now": now,
              "v_duration": duration, "v_next": next_retry_at,
              # Stored masked: readers of the store (the UI, the API) never see a secret.
              "v_rendered": redact(rendered)}
    started_at = now - timedelta(seconds=duration)

    def record(session) -> bool:
        if not session.execute(_statements()["outcome"], params).rowcount:
            return False
        if state == TI.UP_FOR_RESCHEDULE:
            session.execute(insert(TaskReschedule.__table__).values(
                dag_id=request.dag_id, run_id=request.run_id, task_id=request.task_id,
                map_index=request.map_index, try_number=request.try_number,
                start_date=started_at, end_date=now, duration=duration,
                reschedule_date=reschedule_at))
        else:
            session.execute(_statements()["try_row"], {
                "dag_id": request.dag_id, "run_id": request.run_id, "task_id": request.task_id,
                "map_index": request.map_index, "try_number": request.try_number,
                "state": str(state), "start_date": started_at, "end_date": now,
                "duration": duration, "hostname": hostname(),
                "error": (error or "")[:4000] or None})
        if ti is not None:
            for key, value in ti.pending_xcoms.items():
                set_xcom(session, dag_id=request.dag_id, run_id=request.run_id,
                         task_id=request.task_id, map_index=request.map_index, key=key,
                         value=value)
            if state == TI.SUCCESS and ti.skipped_downstream:
                branch = (f"branch chose {', '.join(ti.followed_branches)}"
                          if ti.followed_branches is not None else "short-circuited")
                skip_task_instances(session, request.dag_id, request.run_id,
                                    ti.skipped_downstream,
                                    cause=f"skipped by {request.task_id}: {branch}", node=node,
                                    now=now)
        cause = {TI.SUCCESS: "try succeeded", TI.SKIPPED: "task skipped itself",
                 TI.UP_FOR_RETRY: f"try failed ({error}); retry at {next_retry_at}",
                 TI.UP_FOR_RESCHEDULE: f"sensor rescheduled to {reschedule_at}",
                 TI.FAILED: f"try failed: {error}"}[state]
        add_event(session, dag_id=request.dag_id, run_id=request.run_id,
                  task_id=request.task_id, map_index=request.map_index,
                  try_number=request.try_number, old=str(TI.RUNNING), new=str(state),
                  cause=cause, node=node, when=now)
        return True

    try:
        recorded = group_committer(request.store_url).run(record)
    except IntegrityError:
        return TryOutcome(state=None, try_number=request.try_number, refused=True,
                          error="this try was already recorded", duration=duration)
    if not recorded:
        return TryOutcome(state=None, try_number=request.try_number, refused=True,
                          error="the task instance was changed by someone else while it "
                                "ran (cleared, marked or failed as a zombie)",
                          duration=duration)
    return TryOutcome(state=state, try_number=request.try_number, error=error,
                      duration=duration, next_retry_at=next_retry_at)


def preload() -> None:
    """Import what a try needs (the runner imports it lazily, so importing this module stays
    cheap): a worker that calls this ahead saves its first try about a tenth of a second."""
    import importlib

    for name in ("updraft.store.models", "updraft.store.runs", "updraft.store.group_commit",
                 "updraft.models.xcom", "updraft.templating", "updraft.runtime_models",
                 "updraft.runtime_context", "updraft.params", "updraft.mapping",
                 "updraft.xcom_arg", "updraft.tasklog", "updraft.secrets", "updraft.dagbag",
                 "updraft.compat"):
        importlib.import_module(name)


def warm_statements(store_url: str | None = None) -> None:
    """Run the task runner's statements once, on no row, in a transaction rolled back:
    SQLAlchemy compiles each on first use, which the first try would otherwise pay."""
    from updraft.store.engine import write_transaction
    from updraft.store.runs import add_event

    now = utcnow()
    nothing = {"k_dag": "", "k_run": "", "k_task": "", "k_index": -2, "k_try": -1}
    stmts = _statements()

    class _Rollback(Exception):
        pass

    try:
        with write_transaction(store_url) as connection:
            connection.execute(stmts["claim"], {**nothing, "v_now": now, "v_host": "",
                                                "v_pid": 0, "v_executor": None})
            connection.execute(stmts["outcome"], {**nothing, "v_state": "success",
                                                  "v_now": now, "v_duration": 0.0,
                                                  "v_next": None, "v_rendered": {}})
            connection.execute(stmts["run"], nothing).first()
            connection.execute(stmts["ti"], nothing).first()
            connection.execute(stmts["previous"], {**nothing, "k_date": now}).first()
            connection.execute(stmts["try_row"], {
                "dag_id": "", "run_id": "", "task_id": "", "map_index": -2, "try_number": -1,
                "state": "success", "start_date": now, "end_date": now, "duration": 0.0,
                "hostname": "", "error": None})
            add_event(connection, dag_id="", run_id="", task_id="", map_index=-2, try_number=-1,
                      old=None, new=None, cause="", when=now)
            raise _Rollback
    except _Rollback:
        pass


__all__ = ["TryOutcome", "TryRequest", "load_dag", "next_retry_datetime", "preload",
           "run_task_try", "settle_heap", "warm_statements"]
