"""Task instances of a run: list, get, tries, story, logs, set state (over the bus), XComs."""

from __future__ import annotations

from flask import Response, jsonify

from updraft.store.engine import session_scope
from web import queries
from web.api import bp
from web.api.common import (
    int_arg,
    json_body,
    list_arg,
    not_found,
    page,
    page_args,
    send_command,
    str_arg,
)
from web.api.openapi import MAX_INT, TI_STATES
from web.api.runs import _run_or_404
from web.auth.permissions import READ, RUN_MARK, require
from web.masking import shown

_TI = "/dags/<dag_id>/dagRuns/<run_id>/taskInstances"


def _map_index() -> int:
    return int_arg("map_index", -1, minimum=-1, maximum=MAX_INT)  # type: ignore[return-value]


def _ti_or_404(session, dag_id: str, run_id: str, task_id: str, map_index: int):
    ti = queries.get_task_instance(session, dag_id, run_id, task_id, map_index)
    if ti is None:
        _run_or_404(session, dag_id, run_id)
        suffix = f" (map index {map_index})" if map_index >= 0 else ""
        raise not_found(f"task instance {task_id!r}{suffix} in run {run_id!r} of DAG {dag_id!r}")
    return ti


@bp.get(_TI)
@require(READ)
def list_task_instances(dag_id: str, run_id: str):
    """The task instances of a run (filter by state)."""
    limit, offset = page_args()
    states = list_arg("state", TI_STATES)
    with session_scope() as session:
        _run_or_404(session, dag_id, run_id)
        rows, total = queries.list_task_instances(session, dag_id, run_id, states=states,
                                                  limit=limit, offset=offset)
        return page("task_instances", [queries.ti_json(r) for r in rows], total)


@bp.get(_TI + "/<task_id>")
@require(READ)
def get_task_instance(dag_id: str, run_id: str, task_id: str):
    """One task instance (``map_index`` for a mapped task)."""
    with session_scope() as session:
        ti = _ti_or_404(session, dag_id, run_id, task_id, _map_index())
        return jsonify({**queries.ti_json(ti), "trigger": queries.trigger_json(session, ti)})


@bp.get(_TI + "/<task_id>/tries")
@require(READ)
def list_tries(dag_id: str, run_id: str, task_id: str):
    """Every finished try of a task instance: start, end, duration, executor, host, error."""
    map_index = _map_index()
    with session_scope() as session:
        _ti_or_404(session, dag_id, run_id, task_id, map_index)
        tries = [queries.try_json(t) for t in queries.list_tries(session, dag_id, run_id, task_id,
                                                                 map_index)]
    return jsonify({"tries": tries, "total_entries": len(tries)})


@bp.get(_TI + "/<task_id>/events")
@require(READ)
def list_ti_events(dag_id: str, run_id: str, task_id: str):
    """The story of a task instance: each state change and its cause."""
    map_index = _map_index()
    with session_scope() as session:
        _ti_or_404(session, dag_id, run_id, task_id, map_index)
        events = [queries.event_json(e) for e in queries.list_ti_events(
            session, dag_id, run_id, task_id, map_index)]
    return jsonify({"events": events, "total_entries": len(events)})


@bp.get(_TI + "/<task_id>/dependencies")
@require(READ)
def list_dependencies(dag_id: str, run_id: str, task_id: str):
    """Why a task instance is not running: each unmet condition and its reason, as the
    scheduler recorded it (``recorded_by_scheduler``, ``since``) or else read from the store
    with the scheduler's rules (``updraft.store.waiting``)."""
    from updraft.store.dags import read_dag
    from updraft.store.waiting import waiting_reasons

    map_index = _map_index()
    with session_scope() as session:
        ti = _ti_or_404(session, dag_id, run_id, task_id, map_index)
        run = queries.get_run(session, dag_id, run_id)
        dag = read_dag(session, dag_id, run.dag_hash) or read_dag(session, dag_id)
        reasons = waiting_reasons(session, dag, run, ti) if dag is not None else []
        state = ti.state
    return jsonify({"state": state, "dependencies": [
        {"name": r["check"], "reason": r["reason"],
         "recorded_by_scheduler": "recorded_since" in r,
         "since": r["recorded_since"].isoformat() if r.get("recorded_since") else None}
        for r in reasons]})


@bp.get(_TI + "/<task_id>/logs")
@require(READ)
def get_log(dag_id: str, run_id: str, task_id: str):
    """The log of one try (``try_number``, default the latest), JSON or ``format=text``; the
    file is found from the task instance in the store, never from the URL's parts."""
    map_index = _map_index()
    output = str_arg("format", ("json", "text"), default="json")
    with session_scope() as session:
        ti = _ti_or_404(session, dag_id, run_id, task_id, map_index)
        latest = ti.try_number
        try_number = int_arg("try_number", latest or 1, minimum=1, maximum=MAX_INT)
        assert try_number is not None
        content = queries.read_try_log(ti, try_number)
    if content is None:
        raise not_found(f"log of try {try_number} of task {task_id!r} in run {run_id!r}")
    content = shown(content)
    if output == "text":
        name = f"{dag_id}__{run_id}__{task_id}__{map_index}__{try_number}.log"
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        return Response(content, mimetype="text/plain",
                        headers={"Content-Disposition": f'attachment; filename="{safe}"'})
    return jsonify({"dag_id": dag_id, "dag_run_id": run_id, "task_id": task_id,
                    "map_index": map_index, "try_number": try_number,
                    "latest_try_number": latest, "content": content})


@bp.route(_TI + "/<task_id>", methods=["PATCH", "POST"])
@require(RUN_MARK)
def set_task_instance_state(dag_id: str, run_id: str, task_id: str):
    """Mark a task instance success, failed or skipped (with relatives) via the scheduler;
    and/or set its ``note``."""
    body = json_body("TaskInstanceState")
    map_indexes = body.get("map_indexes")
    map_index = _map_index()
    with session_scope() as session:
        _ti_or_404(session, dag_id, run_id, task_id, map_index)
    result: dict = {}
    if "note" in body:
        result = send_command("set_note", {"dag_id": dag_id, "run_id": run_id,
                                           "task_id": task_id, "map_index": map_index,
                                           "note": body["note"] or ""})
    if "new_state" not in body:
        return jsonify(result)
    if map_indexes is None and map_index >= 0:
        map_indexes = [map_index]
    result = send_command("set_state", {
        "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "state": body["new_state"],
        "map_indexes": map_indexes, "upstream": bool(body.get("include_upstream")),
        "downstream": bool(body.get("include_downstream")),
        "future": bool(body.get("include_future")), "past": bool(body.get("include_past"))})
    return jsonify(result)


@bp.get(_TI + "/<task_id>/xcomEntries")
@require(READ)
def list_xcoms(dag_id: str, run_id: str, task_id: str):
    """The XComs a task instance pushed (``map_index`` narrows a mapped task)."""
    limit, offset = page_args()
    map_index = int_arg("map_index", None, minimum=-1, maximum=MAX_INT)
    with session_scope() as session:
        _run_or_404(session, dag_id, run_id)
        rows, total = queries.list_xcoms(session, dag_id, run_id, task_id, map_index,
                                         limit=limit, offset=offset)
        return page("xcom_entries", [queries.xcom_json(r, with_value=False) for r in rows], total)


@bp.get(_TI + "/<task_id>/xcomEntries/<key>")
@require(READ)
def get_xcom(dag_id: str, run_id: str, task_id: str, key: str):
    """One XCom with its value (the stored JSON text)."""
    map_index = _map_index()
    from updraft.store.models import XComModel

    with session_scope() as session:
        row = session.get(XComModel, (dag_id, run_id, task_id, map_index, key))
        if row is None:
            raise not_found(f"XCom {key!r} of task {task_id!r} in run {run_id!r}")
        return jsonify(queries.xcom_json(row))
