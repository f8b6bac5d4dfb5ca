"""A run's page, a task instance's page with its tries and log, and the actions on them."""

from __future__ import annotations

import json

from flask import abort, redirect, render_template, request, send_file, url_for
from sqlalchemy import select

from updraft.store.models import (
    DagRunModel,
    TaskInstanceModel,
    TaskInstanceTry,
    TiEvent,
    XComModel,
)
from web.auth.permissions import READ, RUN_CLEAR, RUN_DELETE, RUN_MARK, can, require
from web.masking import shown
from web.ui.blueprint import bp
from web.ui.commands import send_command
from web.ui.helpers import MAX_INT, flash_outcome, int_param, owner_name, store, truthy


def _run_or_404(session, dag_id: str, run_id: str) -> DagRunModel:
    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id))
    if run is None:
        abort(404, f"run {run_id!r} of DAG {dag_id!r} not found")
    return run


@bp.route("/dags/<dag_id>/runs/<path:run_id>/tasks/<task_id>")
@require(READ)
def task_instance(dag_id: str, run_id: str, task_id: str):
    """Every try of one task instance, its rendered fields, XComs, story and log."""
    from updraft.store.dags import read_dag
    from web.queries import read_try_log

    map_index = int_param("map_index", -1, minimum=-1)
    with store() as session:
        run = _run_or_404(session, dag_id, run_id)
        dag = read_dag(session, dag_id, run.dag_hash) or read_dag(session, dag_id)
        ti = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
        if ti is None:
            copies = session.scalars(select(TaskInstanceModel.map_index).where(
                TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
                TaskInstanceModel.task_id == task_id).order_by(TaskInstanceModel.map_index)).all()
            if copies:
                return redirect(url_for("ui.task_instance", dag_id=dag_id, run_id=run_id,
                                        task_id=task_id, map_index=copies[0]))
            abort(404, f"task {task_id!r} has no task instance in run {run_id!r} of {dag_id!r}")
        map_indexes = session.scalars(select(TaskInstanceModel.map_index).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id,
            TaskInstanceModel.task_id == task_id).order_by(TaskInstanceModel.map_index)).all()
        tries = list(session.scalars(select(TaskInstanceTry).where(
            TaskInstanceTry.dag_id == dag_id, TaskInstanceTry.run_id == run_id,
            TaskInstanceTry.task_id == task_id, TaskInstanceTry.map_index == map_index)
            .order_by(TaskInstanceTry.try_number)))
        xcoms = list(session.scalars(select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id,
            XComModel.task_id == task_id, XComModel.map_index == map_index)
            .order_by(XComModel.key)))
        story = list(session.scalars(select(TiEvent).where(
            TiEvent.dag_id == dag_id, TiEvent.run_id == run_id, TiEvent.task_id == task_id,
            TiEvent.map_index == map_index).order_by(TiEvent.id.desc()).limit(50)))
        task = dag.task_dict.get(task_id) if dag is not None else None
        # Tries already recorded, plus the one under way (not yet in task_instance_try).
        try_rows = {t.try_number: {"try_number": t.try_number, "state": t.state,
                                   "start_date": t.start_date, "end_date": t.end_date,
                                   "duration": t.duration, "hostname": t.hostname,
                                   "executor": t.executor, "error": t.error} for t in tries}
        if ti.try_number and ti.try_number not in try_rows:
            try_rows[ti.try_number] = {"try_number": ti.try_number, "state": ti.state,
                                       "start_date": ti.start_date, "end_date": ti.end_date,
                                       "duration": ti.duration, "hostname": ti.hostname,
                                       "executor": ti.executor, "error": None}
        all_tries = [try_rows[n] for n in sorted(try_rows)]
        chosen = int_param("try", ti.try_number or 0, minimum=0)
        # The file comes from the task instance in the store, never from the URL's parts.
        log_text = shown(read_try_log(ti, chosen)) if chosen else None
        from web.ui.logview import log_lines

        lines, skipped = log_lines(log_text) if log_text else ([], 0)
        live = bool(chosen) and chosen == ti.try_number and ti.state in (
            "running", "queued", "scheduled", "up_for_retry")
        from web.queries import trigger_json
        from updraft.store.waiting import waiting_reasons

        waiting = waiting_reasons(session, dag, run, ti) if dag is not None else []

        return render_template(
            "ti.html", dag_id=dag_id, run=run, ti=ti, task=task, tries=all_tries, xcoms=xcoms,
            story=story, trigger=trigger_json(session, ti), chosen_try=chosen, log_text=log_text,
            log_lines=lines, log_skipped=skipped, live=live, waiting=waiting,
            map_indexes=map_indexes, rendered=_rendered(ti, task), xcom_value=_xcom_value,
            reports=_dask_reports(ti, [t["try_number"] for t in all_tries]))


def _dask_reports(ti, try_numbers: list[int]) -> set[int]:
    """The tries of ``ti`` that saved a Dask performance report beside their log."""
    from web.queries import dask_report_file

    return {n for n in try_numbers if dask_report_file(ti, n) is not None}


def _rendered(ti, task) -> list[tuple[str, str]]:
    """The rendered template fields as stored (masked by the task runner), or the templates
    themselves before the first try; values under a sensitive name are masked here too."""
    fields = ti.rendered_fields or {}
    if not fields and task is not None:
        fields = task.template_field_values
    return [(k, _text(shown(v, k))) for k, v in sorted(fields.items())]


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, indent=2, default=str)


def _xcom_value(row) -> str:
    """The XCom's value, pretty-printed, with known secrets masked (the store keeps the real
    value: downstream tasks need it). Values kept on the Dask cluster or in object storage
    are shown by ``xcom_refs`` (their type, shape, partitions, size and place) instead."""
    try:
        text = json.dumps(json.loads(row.value), indent=2) if row.value is not None else "null"
    except ValueError:
        text = row.value or ""
    return shown(text)


@bp.route("/dags/<dag_id>/runs/<path:run_id>/tasks/<task_id>/log")
@require(READ)
def task_log(dag_id: str, run_id: str, task_id: str):
    """Download the log of one try as a text file, found from the task instance in the store
    (never from the URL's parts); the answer names no server path."""
    from web.queries import log_file

    map_index = int_param("map_index", -1, minimum=-1)
    try_number = int_param("try", 1, minimum=1)
    with store() as session:
        _run_or_404(session, dag_id, run_id)
        ti = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
        if ti is None:
            abort(404, f"task {task_id!r} has no task instance with map index {map_index} in "
                       f"run {run_id!r} of {dag_id!r}")
        path = log_file(ti, try_number)
    if path is None:
        abort(404, f"no log of try {try_number} of {task_id} on this web node")
    name = f"{dag_id}__{run_id}__{task_id}__{map_index}__{try_number}.log"
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return send_file(path, mimetype="text/plain", as_attachment=True, download_name=safe)


@bp.route("/dags/<dag_id>/runs/<path:run_id>/tasks/<task_id>/dask-report")
@require(READ)
def dask_report(dag_id: str, run_id: str, task_id: str):
    """The Dask performance report of one try (HTML the Dask scheduler made), found from the
    task instance in the store like its log; shown sandboxed (its scripts run in an origin
    of their own, away from the UI's session)."""
    from web.queries import dask_report_file

    map_index = int_param("map_index", -1, minimum=-1)
    try_number = int_param("try", 1, minimum=1)
    with store() as session:
        _run_or_404(session, dag_id, run_id)
        ti = session.get(TaskInstanceModel, (dag_id, run_id, task_id, map_index))
        if ti is None:
            abort(404, f"task {task_id!r} has no task instance with map index {map_index} in "
                       f"run {run_id!r} of {dag_id!r}")
        path = dask_report_file(ti, try_number)
    if path is None:
        abort(404, f"no Dask performance report of try {try_number} of {task_id} on this "
                   "web node (the try did not use the cluster, or ran elsewhere)")
    response = send_file(path, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "sandbox allow-scripts"
    return response


@bp.route("/dags/<dag_id>/runs/<path:run_id>")
@require(READ)
def run_page(dag_id: str, run_id: str):
    """One run: its task instances with states, tries and durations, and the actions."""
    from updraft.store.dags import read_dag

    with store() as session:
        run = _run_or_404(session, dag_id, run_id)
        tis = list(session.scalars(select(TaskInstanceModel).where(
            TaskInstanceModel.dag_id == dag_id, TaskInstanceModel.run_id == run_id)
            .order_by(TaskInstanceModel.start_date.is_(None), TaskInstanceModel.start_date,
                      TaskInstanceModel.task_id, TaskInstanceModel.map_index)))
        dag = read_dag(session, dag_id)
        from web.ui.assets import triggering_events

        asset_events = triggering_events(session, dag_id, run_id)
    return render_template("run.html", dag_id=dag_id, run=run, tis=tis, dag=dag,
                           conf_text=json.dumps(shown(run.conf or {}), indent=2, default=str),
                           asset_events=asset_events)


ACTIONS = {
    "clear": RUN_CLEAR,
    "mark_success": RUN_MARK,
    "mark_failed": RUN_MARK,
    "delete": RUN_DELETE,
}


@bp.route("/dags/<dag_id>/runs/<path:run_id>/action", methods=["POST"])
@require(READ)
def run_action(dag_id: str, run_id: str):
    """clear / mark_success / mark_failed / delete a run or some of its task instances."""
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400, f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if not can(ACTIONS[action]):
        return require(ACTIONS[action])(lambda: None)()  # the standard 403, audited
    task_id = request.form.get("task_id") or None
    map_index = int_param("map_index", -1, minimum=-1, maximum=MAX_INT, source=request.form)
    map_indexes = [map_index] if map_index >= 0 else None
    upstream = truthy(request.form.get("upstream"))
    downstream = truthy(request.form.get("downstream"))
    owner = owner_name()
    back = url_for("ui.run_page", dag_id=dag_id, run_id=run_id)
    if task_id:
        back = url_for("ui.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_id,
                       **({"map_index": map_index} if map_indexes else {}))
    if action == "clear":
        outcome = send_command("clear", {
            "dag_id": dag_id, "run_id": run_id, "task_ids": [task_id] if task_id else None,
            "map_indexes": map_indexes, "upstream": upstream, "downstream": downstream,
            "only_failed": truthy(request.form.get("only_failed")), "owner": owner})
        count = outcome.result.get("count")
        flash_outcome(outcome, f"Cleared {count if count is not None else 'the'} task "
                      f"instance(s) of {task_id or 'run ' + run_id}; the scheduler runs them "
                      "again")
    elif action in ("mark_success", "mark_failed"):
        state = action.split("_", 1)[1]
        if task_id:
            outcome = send_command("set_state", {
                "dag_id": dag_id, "run_id": run_id, "task_id": task_id, "state": state,
                "map_indexes": map_indexes, "upstream": upstream, "downstream": downstream,
                "owner": owner})
            flash_outcome(outcome, f"Marked {task_id} {state} "
                          f"({outcome.result.get('count', 1)} task instance(s))")
        else:
            outcome = send_command("set_run_state", {"dag_id": dag_id, "run_id": run_id,
                                                     "state": state, "owner": owner})
            flash_outcome(outcome, f"Marked run {run_id} {state}")
    else:
        outcome = send_command("delete_run", {"dag_id": dag_id, "run_id": run_id,
                                              "owner": owner})
        if flash_outcome(outcome, f"Deleted run {run_id}"):
            back = url_for("ui.dag_grid", dag_id=dag_id)
    return redirect(back)


from web.ui import bundle_code  # noqa: E402, F401  (the run page links to its routes)
