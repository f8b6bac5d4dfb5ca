"""DAGs: list, get, pause/unpause and delete (over the bus), backfill (over the bus) and its
progress, details, tasks, source."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from updraft.store.engine import session_scope
from web import queries
from web.api import bp
from web.api.common import (
    bool_arg,
    date_arg,
    json_body,
    list_arg,
    not_found,
    page,
    page_args,
    run_date,
    send_command,
    str_arg,
)
from web.auth.permissions import DAG_DELETE, DAG_PAUSE, READ, RUN_TRIGGER, require

#: Fields of a serialized DAG that ``/details`` leaves out (the tasks have their own route).
_DETAIL_SKIP = ("tasks", "task_group", "edge_info")
DAG_ORDERINGS = [p + c for c in ("dag_id", "next_dagrun", "last_parsed_time") for p in ("", "-")]


@bp.get("/dags")
@require(READ)
def list_dags():
    """A page of DAGs; filters: tags, paused, dag_id_pattern, owner, only_active."""
    limit, offset = page_args()
    tags, paused = list_arg("tags"), bool_arg("paused")
    only_active = bool_arg("only_active", True)
    order_by = str_arg("order_by", DAG_ORDERINGS, default="dag_id")
    with session_scope() as session:
        rows, total = queries.list_dags(
            session, limit=limit, offset=offset, tags=tags, paused=paused,
            dag_id_pattern=request.args.get("dag_id_pattern"),
            owner=request.args.get("owner"), only_active=bool(only_active), order_by=order_by)
        return page("dags", [queries.dag_json(r) for r in rows], total)


def _dag_or_404(session, dag_id: str):
    row = queries.get_dag_row(session, dag_id)
    if row is None:
        raise not_found(f"DAG {dag_id!r}")
    return row


@bp.get("/dags/<dag_id>")
@require(READ)
def get_dag(dag_id: str):
    """One DAG."""
    with session_scope() as session:
        return jsonify(queries.dag_json(_dag_or_404(session, dag_id)))


@bp.patch("/dags/<dag_id>")
@require(DAG_PAUSE)
def patch_dag(dag_id: str):
    """Pause or unpause a DAG: the scheduler does it and replies."""
    body = json_body("DAGPatch")
    with session_scope() as session:
        _dag_or_404(session, dag_id)
    send_command("pause" if body["is_paused"] else "unpause", {"dag_id": dag_id})
    with session_scope() as session:
        return jsonify(queries.dag_json(_dag_or_404(session, dag_id)))


@bp.delete("/dags/<dag_id>")
@require(DAG_DELETE)
def delete_dag(dag_id: str):
    """Delete a DAG's metadata (runs, task instances, versions); the file stays and is parsed
    again, so the DAG comes back without its history. The scheduler does it."""
    with session_scope() as session:
        _dag_or_404(session, dag_id)
    send_command("delete_dag", {"dag_id": dag_id})
    return "", 204


@bp.post("/dags/<dag_id>/backfill")
@require(RUN_TRIGGER)
def backfill(dag_id: str):
    """Create the backfill runs of a date range (``dry_run``: only list them); the scheduler
    makes and runs them."""
    body = json_body("DAGBackfill")
    start = run_date(body["start_date"], "field 'start_date'").isoformat()
    end = run_date(body["end_date"], "field 'end_date'").isoformat()
    with session_scope() as session:
        _dag_or_404(session, dag_id)
    return jsonify(send_command("backfill", {
        "dag_id": dag_id, "start_date": start, "end_date": end,
        "reset_dagruns": bool(body.get("reset_dagruns")), "dry_run": bool(body.get("dry_run"))}))


@bp.get("/dags/<dag_id>/backfill")
@require(READ)
def backfill_progress(dag_id: str):
    """The backfill runs of a DAG (between ``start_date`` and ``end_date``) with their task
    instances done and in all."""
    from updraft.store.actions import backfill_progress as progress

    start, end = date_arg("start_date"), date_arg("end_date")
    with session_scope() as session:
        _dag_or_404(session, dag_id)
        found = progress(session, dag_id, start, end)
    for run in found["runs"]:
        for key in ("logical_date", "start_date", "end_date"):
            run[key] = queries.iso(run[key])
    return jsonify(found)


@bp.get("/dags/<dag_id>/details")
@require(READ)
def get_dag_details(dag_id: str):
    """A DAG with everything its serialized form says (params, docs, timetable, ...)."""
    with session_scope() as session:
        body = queries.dag_json(_dag_or_404(session, dag_id))
        data = queries.serialized_dag_json(session, dag_id)
    if data is not None:
        for key, value in data.items():
            if key not in _DETAIL_SKIP and key not in body:
                body[key] = value
        body["task_count"] = len(data.get("tasks", []))
    return jsonify(body)


def _task_json(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k != "template_field_values"} | {
        "template_field_values": task.get("template_field_values", {})}


@bp.get("/dags/<dag_id>/tasks")
@require(READ)
def list_tasks(dag_id: str):
    """The tasks of a DAG's current version, as serialized."""
    with session_scope() as session:
        _dag_or_404(session, dag_id)
        data = queries.serialized_dag_json(session, dag_id)
    tasks = [_task_json(t) for t in (data or {}).get("tasks", [])]
    return jsonify({"tasks": tasks, "total_entries": len(tasks)})


@bp.get("/dags/<dag_id>/tasks/<task_id>")
@require(READ)
def get_task(dag_id: str, task_id: str):
    """One task of a DAG's current version."""
    with session_scope() as session:
        _dag_or_404(session, dag_id)
        data = queries.serialized_dag_json(session, dag_id)
    for task in (data or {}).get("tasks", []):
        if task.get("task_id") == task_id:
            return jsonify(_task_json(task))
    raise not_found(f"task {task_id!r} of DAG {dag_id!r}")


@bp.get("/dags/<dag_id>/source")
@require(READ)
def get_dag_source(dag_id: str):
    """The source of the file that defines the DAG, as stored by the DAG processor."""
    with session_scope() as session:
        _dag_or_404(session, dag_id)
        found = queries.dag_source(session, dag_id)
    if found is None:
        raise not_found(f"source code of DAG {dag_id!r}")
    return jsonify({"dag_id": dag_id, "fileloc": found[0], "content": found[1]})


@bp.get("/dagTags")
@require(READ)
def list_dag_tags():
    """Every tag used by an active DAG."""
    limit, offset = page_args()
    with session_scope() as session:
        tags = queries.all_tags(session)
    return page("tags", [{"name": t} for t in tags[offset:offset + limit]], len(tags))
