"""DAG runs: list, get, trigger, delete, set state and clear (changes go over the bus)."""

from __future__ import annotations

from flask import jsonify

from updraft.store.engine import session_scope
from web import queries
from web.api import bp
from web.api.common import (
    ApiError,
    check_payload_size,
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
from web.api.openapi import RUN_STATES
from web.auth.permissions import READ, RUN_CLEAR, RUN_DELETE, RUN_MARK, RUN_TRIGGER, require

#: ``dag_id`` that lists the runs of every DAG
ALL_DAGS = "~"
RUN_ORDERINGS = [p + c for c in queries.RUN_ORDERINGS for p in ("", "-")]


def _require_dag(session, dag_id: str) -> None:
    if queries.get_dag_row(session, dag_id) is None:
        raise not_found(f"DAG {dag_id!r}")


def _run_or_404(session, dag_id: str, run_id: str):
    run = queries.get_run(session, dag_id, run_id)
    if run is None:
        raise not_found(f"run {run_id!r} of DAG {dag_id!r}")
    return run


@bp.get("/dags/<dag_id>/dagRuns")
@require(READ)
def list_runs(dag_id: str):
    """A page of runs (``~`` for every DAG), newest first; filter by state and logical date."""
    limit, offset = page_args()
    states = list_arg("state", RUN_STATES)
    order_by = str_arg("order_by", RUN_ORDERINGS, default="-id")
    after, before = date_arg("logical_date_gte"), date_arg("logical_date_lte")
    with session_scope() as session:
        if dag_id != ALL_DAGS:
            _require_dag(session, dag_id)
        rows, total = queries.list_runs(
            session, None if dag_id == ALL_DAGS else dag_id, limit=limit, offset=offset,
            states=states, order_by=order_by, logical_date_gte=after, logical_date_lte=before)
        return page("dag_runs", [queries.run_json(r) for r in rows], total)


@bp.get("/dags/<dag_id>/dagRuns/<run_id>")
@require(READ)
def get_run(dag_id: str, run_id: str):
    """One run."""
    with session_scope() as session:
        return jsonify(queries.run_json(_run_or_404(session, dag_id, run_id)))


def check_conf(session, dag_id: str, conf: dict) -> None:
    """Refuse (400) a conf that the DAG's params do not accept."""
    from updraft.store.dags import read_dag

    dag = read_dag(session, dag_id)
    if dag is None:
        raise ApiError(409, f"DAG {dag_id!r} has no serialized version in the store yet")
    try:
        dag.params.resolve(conf)
    except Exception as exc:  # noqa: BLE001  (ParamValidationError and friends)
        raise ApiError(400, f"DAG {dag_id!r} refused the conf: {exc}") from None


@bp.post("/dags/<dag_id>/dagRuns")
@require(RUN_TRIGGER)
def trigger_run(dag_id: str):
    """Trigger a run with ``conf`` (checked against the DAG's params); the scheduler makes it."""
    body = json_body("DAGRunTrigger")
    conf = body.get("conf", {})
    logical_date = None
    if body.get("logical_date") is not None:
        logical_date = run_date(body["logical_date"], "field 'logical_date'").isoformat()
    command = {"dag_id": dag_id, "conf": conf, "run_id": body.get("dag_run_id"),
               "logical_date": logical_date}
    check_payload_size(command)
    with session_scope() as session:
        _require_dag(session, dag_id)
        check_conf(session, dag_id, conf)
    result = send_command("trigger", command)
    run_id = result.get("run_id") or body.get("dag_run_id")
    with session_scope() as session:
        run = queries.get_run(session, dag_id, run_id) if run_id else None
        if run is None:  # the scheduler replied before this node sees the row: echo the reply
            return jsonify({"dag_id": dag_id, "dag_run_id": run_id, **result}), 200
        return jsonify(queries.run_json(run)), 200


@bp.delete("/dags/<dag_id>/dagRuns/<run_id>")
@require(RUN_DELETE)
def delete_run(dag_id: str, run_id: str):
    """Delete a run and its task instances (done by the scheduler)."""
    with session_scope() as session:
        _run_or_404(session, dag_id, run_id)
    send_command("delete_run", {"dag_id": dag_id, "run_id": run_id})
    return "", 204


@bp.patch("/dags/<dag_id>/dagRuns/<run_id>")
@require(RUN_MARK)
def set_run_state(dag_id: str, run_id: str):
    """Mark a run success or failed, or queue it again; and/or set its ``note``."""
    body = json_body("DAGRunState")
    with session_scope() as session:
        _run_or_404(session, dag_id, run_id)
    if "state" in body:
        send_command("set_run_state", {"dag_id": dag_id, "run_id": run_id,
                                       "state": body["state"]})
    if "note" in body:
        send_command("set_note", {"dag_id": dag_id, "run_id": run_id,
                                  "note": body["note"] or ""})
    with session_scope() as session:
        return jsonify(queries.run_json(_run_or_404(session, dag_id, run_id)))


def _clear(dag_id: str, run_id: str | None, body: dict) -> dict:
    task_ids = body.get("task_ids")
    return send_command("clear", {
        "dag_id": dag_id, "run_id": run_id, "task_ids": task_ids,
        "upstream": bool(body.get("include_upstream")),
        "downstream": bool(body.get("include_downstream")),
        "only_failed": bool(body.get("only_failed")),
        "only_running": bool(body.get("only_running")),
        "dry_run": bool(body.get("dry_run"))})


@bp.post("/dags/<dag_id>/dagRuns/<run_id>/clear")
@require(RUN_CLEAR)
def clear_run(dag_id: str, run_id: str):
    """Clear the task instances of a run (all, or ``task_ids``) so they run again."""
    body = json_body("ClearRequest")
    with session_scope() as session:
        _run_or_404(session, dag_id, run_id)
    return jsonify(_clear(dag_id, run_id, body))


@bp.post("/dags/<dag_id>/clearTaskInstances")
@require(RUN_CLEAR)
def clear_task_instances(dag_id: str):
    """Clear task instances of a DAG, in one run (``dag_run_id``) or in every run."""
    body = json_body("ClearTaskInstances")
    with session_scope() as session:
        _require_dag(session, dag_id)
        if body.get("dag_run_id"):
            _run_or_404(session, dag_id, body["dag_run_id"])
    return jsonify(_clear(dag_id, body.pop("dag_run_id", None), body))
