"""Run one try of one task instance: the task runner every executor uses.

A try has four steps (ADR 2), each its own function so that an executor slot can run them
in two processes (``updraft.isolation``):

1. ``claim_try``: ``queued -> running`` compare-and-set on the task instance, its try number
   and the try's identity (``try_id``, set when it was queued): a duplicate or stale request
   is refused and runs nothing;
2. ``task_execution.execute_try``: the task's code (render templates, execute, collect
   XComs), in the try's own process with process isolation; it writes nothing;
3. ``record_try``: ``running -> outcome`` compare-and-set for that same try, in one
   transaction with the XComs, the branch skips and the ``task_instance_try`` row whose
   unique key makes a try count once; retried while the store is away, so a finished try's
   outcome is never lost to an outage;
4. ``task_execution.after_try``: the callbacks of the recorded outcome.

``run_task_try(request)`` runs all four in this thread: thread isolation, ``dag.test`` and
``tasks test``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from updraft.state import TaskInstanceState as TI
from updraft.utils.timezone import utcnow

log = logging.getLogger(__name__)


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
    #: The identity of this queueing of the try (``task_instance.try_id``): the claim and the
    #: outcome compare-and-set on it, so a stale request for an earlier queueing is refused.
    try_id: str | None = None
    #: Dask worker resources the try needs (``executor_config={"resources": ...}``) and its
    #: pool (with its slots): the Dask executor maps them to resources and annotations.
    resources: dict | None = None
    pool: str | None = None
    pool_slots: int = 1

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> "TryRequest":
        return cls(**data)

    @property
    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}.{self.task_id}{index} {self.run_id} try {self.try_number}"

    @property
    def heartbeat_key(self) -> tuple[str, str, str, int, int]:
        return (self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number)


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


@dataclass
class ClaimedTry:
    """What the claim read for the try: its run's and task instance's rows (as plain
    attribute bags, so they travel to the try's process) and the previous successful run."""

    run: Any
    ti: Any
    previous: dict[str, Any]
    started_at: datetime


_CLAIM = ((TI.QUEUED, TI.RUNNING),)

REFUSED_CLAIM = ("the store refused the claim: this try is not queued under this identity "
                 "(already running elsewhere, finished, cleared, marked or queued again)")


# -- the store side of a try ---------------------------------------------------------------

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
    from sqlalchemy import bindparam, func, insert, select

    from updraft.state import DagRunState
    from updraft.store.models import DagRunModel, TaskInstanceModel, TaskInstanceTry
    from updraft.store.ti_state import cas_update

    ti = TaskInstanceModel.__table__
    run = DagRunModel.__table__
    key = (ti.c.dag_id == bindparam("k_dag"), ti.c.run_id == bindparam("k_run"),
           ti.c.task_id == bindparam("k_task"), ti.c.map_index == bindparam("k_index"),
           ti.c.try_number == bindparam("k_try"),
           ti.c.try_id.is_not_distinct_from(bindparam("k_id", type_=ti.c.try_id.type)))
    _STATEMENTS.update(
        # Only the exact queueing named by the request may start (ADR 2).
        claim=cas_update(
            TI.QUEUED, TI.RUNNING, *key,
            start_date=bindparam("v_now", type_=ti.c.start_date.type),
            end_date=None, duration=None, hostname=bindparam("v_host"),
            pid=bindparam("v_pid"), heartbeat_at=bindparam("v_now"),
            worker=bindparam("v_worker", type_=ti.c.worker.type),
            updated_at=bindparam("v_now"),
            executor=func.coalesce(bindparam("v_executor", type_=ti.c.executor.type),
                                   ti.c.executor)),
        outcome=cas_update(
            TI.RUNNING, bindparam("v_state"), *key,
            end_date=bindparam("v_now", type_=ti.c.end_date.type),
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
            "k_index": request.map_index, "k_try": request.try_number, "k_id": request.try_id}


def _bag(row) -> Any:
    return None if row is None else SimpleNamespace(**row._asdict())


def claim_try(request: TryRequest, node: str | None, executor: str | None, *,
              give_up: Callable[[], bool] | None = None) -> ClaimedTry | None:
    """``queued -> running`` for exactly this try; None if the store refused it.

    Runs in a transaction shared with other threads' store writes (group commit), retried
    with backoff while the store is away (``give_up()`` true stops retrying: the error is
    raised). ``node`` is recorded as the try's worker.
    """
    from updraft.models.xcom import clear_xcoms
    from updraft.store.group_commit import group_committer
    from updraft.store.outage import retry_while_unavailable
    from updraft.store.runs import add_event
    from updraft.store.ti_state import execute as write

    stmts = _statements()
    params = _key_params(request)

    def claim(session):
        now = utcnow()
        result = write(session, stmts["claim"], {
            **params, "v_now": now, "v_host": hostname(), "v_pid": os.getpid(),
            "v_executor": executor, "v_worker": node}, _CLAIM, where="claim_try")
        if not result.rowcount:
            return None
        ti = session.execute(stmts["ti"], params).first()
        if ti is not None and ti.next_method:
            # A deferred try resuming (ADR 11): it continues where next_method says, once;
            # the XComs it pushed before deferring stay.
            from updraft.store.triggers import start_resumed_try

            start_resumed_try(session, request)
        elif request.try_number > 1:
            # XComs of an earlier try of this task instance must not leak into this one.
            clear_xcoms(session, dag_id=request.dag_id, run_id=request.run_id,
                        task_id=request.task_id, map_index=request.map_index)
        add_event(session, dag_id=request.dag_id, run_id=request.run_id,
                  task_id=request.task_id, map_index=request.map_index,
                  try_number=request.try_number, old=str(TI.QUEUED), new=str(TI.RUNNING),
                  cause=f"try {request.try_number} started on {socket.gethostname()}",
                  node=node, when=now)
        run = session.execute(stmts["run"], params).first()
        previous: dict[str, Any] = {}
        if run is not None and run.logical_date is not None:
            prev = session.execute(stmts["previous"],
                                   {**params, "k_date": run.logical_date}).first()
            if prev is not None:
                previous = {"prev_data_interval_start_success": prev.data_interval_start,
                            "prev_data_interval_end_success": prev.data_interval_end,
                            "prev_start_date_success": prev.start_date,
                            "prev_end_date_success": prev.end_date}
        return ClaimedTry(_bag(run), _bag(ti), previous, now)

    committer = group_committer(request.store_url)
    return retry_while_unavailable(lambda: committer.run(claim),
                                   what=f"claiming {request.label}", give_up=give_up)


def record_try(request: TryRequest, claimed: ClaimedTry, result, *, node: str | None,
               duration: float, give_up: Callable[[], bool] | None = None) -> TryOutcome:
    """``running -> outcome`` for exactly this try, with XComs, skips and the try row.

    ``result`` is the ``task_execution.TryResult``. Retried with backoff while the store is
    away, for as long as it takes unless ``give_up()`` turns true: the outcome of a finished
    try is written when the store is back (the write is a compare-and-set, so repeating it
    is safe). Refused (not raised) when the task instance moved on meanwhile.
    """
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from updraft.models.xcom import set_xcom
    from updraft.retries import next_retry_at as retry_time
    from updraft.store.group_commit import group_committer
    from updraft.store.models import TaskReschedule
    from updraft.store.outage import retry_while_unavailable
    from updraft.store.runs import add_event, skip_task_instances
    from updraft.store.ti_state import execute as write

    state, error = result.state, result.error
    now = utcnow()
    next_retry_at = None
    if state == TI.UP_FOR_RETRY and result.retry_policy is not None:
        next_retry_at = retry_time(result.retry_policy, dag_id=request.dag_id,
                                   task_id=request.task_id,
                                   logical_date=claimed.run.logical_date,
                                   try_number=request.try_number, failed_at=now)
    elif state == TI.UP_FOR_RESCHEDULE:
        next_retry_at = result.reschedule_at
    params = {**_key_params(request), "v_state": str(state), "v_now": now,
              "v_duration": duration, "v_next": next_retry_at,
              "v_rendered": result.rendered}
    started_at = now - timedelta(seconds=duration)

    def record(session) -> bool:
        if state == TI.DEFERRED:
            from updraft.store.triggers import record_deferral

            return record_deferral(session, request, result.deferral, now=now,
                                   duration=duration, node=node, xcoms=result.xcoms)
        if not write(session, _statements()["outcome"], params, ((TI.RUNNING, state),),
                     where="record_try").rowcount:
            return False
        if state == TI.UP_FOR_RESCHEDULE:
            session.execute(insert(TaskReschedule.__table__).values(
                dag_id=request.dag_id, run_id=request.run_id, task_id=request.task_id,
                map_index=request.map_index, try_number=request.try_number,
                start_date=started_at, end_date=now, duration=duration,
                reschedule_date=result.reschedule_at))
        else:
            session.execute(_statements()["try_row"], {
                "dag_id": request.dag_id, "run_id": request.run_id, "task_id": request.task_id,
                "map_index": request.map_index, "try_number": request.try_number,
                "state": str(state), "start_date": started_at, "end_date": now,
                "duration": duration, "hostname": hostname(),
                "error": (error or "")[:4000] or None})
        for key, value in result.xcoms.items():
            set_xcom(session, dag_id=request.dag_id, run_id=request.run_id,
                     task_id=request.task_id, map_index=request.map_index, key=key,
                     value=value)
        if state == TI.SUCCESS and getattr(result, "asset_events", None):
            # Outlet events belong to the success they come from (ADR 10).
            from updraft.store.assets import record_task_events

            record_task_events(session, dag_id=request.dag_id, run_id=request.run_id,
                               task_id=request.task_id, map_index=request.map_index,
                               try_number=request.try_number, events=result.asset_events,
                               now=now)
        if state == TI.SUCCESS and result.skipped_downstream:
            branch = (f"branch chose {', '.join(result.followed_branches)}"
                      if result.followed_branches is not None else "short-circuited")
            skip_task_instances(session, request.dag_id, request.run_id,
                                result.skipped_downstream,
                                cause=f"skipped by {request.task_id}: {branch}", node=node,
                                now=now)
        cause = {TI.SUCCESS: "try succeeded", TI.SKIPPED: "task skipped itself",
                 TI.UP_FOR_RETRY: f"try failed ({error}); retry at {next_retry_at}",
                 TI.UP_FOR_RESCHEDULE: f"sensor rescheduled to {result.reschedule_at}",
                 TI.FAILED: f"try failed: {error}"}[state]
        add_event(session, dag_id=request.dag_id, run_id=request.run_id,
                  task_id=request.task_id, map_index=request.map_index,
                  try_number=request.try_number, old=str(TI.RUNNING), new=str(state),
                  cause=cause, node=node, when=now)
        return True

    committer = group_committer(request.store_url)
    try:
        recorded = retry_while_unavailable(lambda: committer.run(record),
                                           what=f"recording the outcome of {request.label}",
                                           give_up=give_up)
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


def interrupt_try(request: TryRequest, *, reason: str, node: str | None,
                  duration: float) -> TryOutcome:
    """Record a try stopped by a shutdown, not by its own doing: ``running -> up_for_retry``
    due now, with one more try allowed (``max_tries + 1``), so the interruption uses none
    of the task's retries while the next try still gets a new try number."""
    from updraft.store.group_commit import group_committer
    from updraft.store.models import TaskInstanceModel as T
    from updraft.store.outage import retry_while_unavailable
    from updraft.store.runs import add_event
    from updraft.store.ti_state import write_state

    now = utcnow()
    started_at = now - timedelta(seconds=duration)

    def interrupt(session) -> bool:
        changed = write_state(
            session, TI.RUNNING, TI.UP_FOR_RETRY,
            T.dag_id == request.dag_id, T.run_id == request.run_id,
            T.task_id == request.task_id, T.map_index == request.map_index,
            T.try_number == request.try_number, T.try_id.is_not_distinct_from(request.try_id),
            writer="interrupt_try", max_tries=T.max_tries + 1, end_date=now,
            duration=duration, next_retry_at=now, updated_at=now)
        if not changed:
            return False
        session.execute(_statements()["try_row"], {
            "dag_id": request.dag_id, "run_id": request.run_id, "task_id": request.task_id,
            "map_index": request.map_index, "try_number": request.try_number,
            "state": str(TI.UP_FOR_RETRY), "start_date": started_at, "end_date": now,
            "duration": duration, "hostname": hostname(), "error": reason[:4000]})
        add_event(session, dag_id=request.dag_id, run_id=request.run_id,
                  task_id=request.task_id, map_index=request.map_index,
                  try_number=request.try_number, old=str(TI.RUNNING),
                  new=str(TI.UP_FOR_RETRY), cause=reason, node=node, when=now)
        return True

    committer = group_committer(request.store_url)
    recorded = retry_while_unavailable(lambda: committer.run(interrupt),
                                       what=f"recording the interruption of {request.label}",
                                       deadline=time.monotonic() + 5.0)
    if not recorded:
        return TryOutcome(state=None, try_number=request.try_number, refused=True,
                          error="the task instance was changed by someone else while it ran",
                          duration=duration)
    return TryOutcome(state=TI.UP_FOR_RETRY, try_number=request.try_number, error=reason,
                      duration=duration, next_retry_at=now)


def run_task_try(request: TryRequest, dag=None, *, node: str | None = None,
                 executor: str | None = None, on_log_line: Callable[[str], None] | None = None,
                 echo_log=None) -> TryOutcome:
    """Run one try in this thread: claim, execute, record, callbacks (see the docstring)."""
    from updraft.config import conf
    from updraft.heartbeats import heartbeats
    from updraft.task_execution import after_try, execute_try
    from updraft.tasklog import capture_try_log, try_log_path

    claimed = claim_try(request, node, executor)
    if claimed is None:
        return TryOutcome(state=None, try_number=request.try_number, refused=True,
                          error=REFUSED_CLAIM)
    path = try_log_path(conf.log_folder(), request.dag_id, request.run_id, request.task_id,
                        request.map_index, request.try_number)
    heartbeats.add(request.heartbeat_key, request.store_url, try_id=request.try_id)
    started = time.monotonic()
    try:
        with capture_try_log(path, on_line=on_log_line, echo=echo_log):
            log.info("Running %s on host %s", request.label, socket.gethostname())
            execution = execute_try(request, claimed, dag)
            outcome = record_try(request, claimed, execution.result, node=node,
                                 duration=time.monotonic() - started)
            if outcome.refused:
                log.warning("Outcome not recorded: %s", outcome.error)
            else:
                after_try(execution, outcome.state)
    finally:
        heartbeats.remove(request.heartbeat_key)
    outcome.log_path = str(path)
    return outcome


def apply_switch_interval() -> None:
    """Set ``[core] switch_interval`` as this process's GIL switch interval (node start)."""
    import sys

    from updraft.config import conf

    try:
        interval = float(conf.get("core", "switch_interval") or 0)
    except (TypeError, ValueError):
        log.warning("[core] switch_interval must be a number of seconds; left at %s",
                    sys.getswitchinterval())
        return
    if interval > 0:
        sys.setswitchinterval(interval)


def preload() -> None:
    """Import what a try needs (the runner imports it lazily, so importing this module stays
    cheap): a worker that calls this ahead saves its first try about a tenth of a second."""
    import importlib

    for name in ("updraft.store.models", "updraft.store.runs", "updraft.store.group_commit",
                 "updraft.store.outage", "updraft.models.xcom", "updraft.templating",
                 "updraft.runtime_models", "updraft.runtime_context", "updraft.params",
                 "updraft.mapping", "updraft.xcom_arg", "updraft.tasklog", "updraft.secrets",
                 "updraft.dagbag", "updraft.compat", "updraft.task_execution",
                 "updraft.heartbeats", "updraft.retries", "updraft.assets",
                 "updraft.dask_support", "updraft.xcom_backends", "updraft.task_services",
                 "updraft.store.task_services", "jinja2.ext"):
        importlib.import_module(name)
    from updraft.plugins.registry import preload_for_tries

    preload_for_tries()


def warm_statements(store_url: str | None = None) -> None:
    """Run the task runner's statements once, on no row, in a transaction rolled back:
    SQLAlchemy compiles each on first use, which the first try would otherwise pay."""
    from updraft.store.engine import write_transaction
    from updraft.store.runs import add_event

    now = utcnow()
    nothing = {"k_dag": "", "k_run": "", "k_task": "", "k_index": -2, "k_try": -1, "k_id": None}
    stmts = _statements()

    class _Rollback(Exception):
        pass

    try:
        with write_transaction(store_url) as connection:
            connection.execute(stmts["claim"], {**nothing, "v_now": now, "v_host": "",
                                                "v_pid": 0, "v_executor": None,
                                                "v_worker": None})
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


__all__ = ["REFUSED_CLAIM", "ClaimedTry", "TryOutcome", "TryRequest", "claim_try",
           "interrupt_try", "preload", "record_try", "run_task_try", "warm_statements"]
