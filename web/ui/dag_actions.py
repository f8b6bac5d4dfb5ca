"""Notes on runs and task instances, DAG delete, and backfill with its progress page.

Like every change the UI makes, each is a form post (with the CSRF token) that becomes a bus
command to the scheduler (``set_note``, ``delete_dag``, ``backfill``); the page flashes the
reply. The backfill page reads its progress from the store and the page script refreshes it
from ``GET /api/v1/dags/<dag_id>/backfill`` while runs are unfinished.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from updraft.store.actions import MAX_NOTE
from web.auth.permissions import DAG_DELETE, READ, RUN_MARK, RUN_TRIGGER, require
from web.ui.blueprint import bp
from web.ui.commands import send_command
from web.ui.helpers import MAX_INT, flash_outcome, int_param, owner_name, store, truthy


@bp.route("/dags/<dag_id>/runs/<path:run_id>/note", methods=["POST"])
@require(RUN_MARK)
def save_note(dag_id: str, run_id: str):
    """Set or remove the note of a run, or of a task instance (``task_id``, ``map_index``)."""
    note = "" if truthy(request.form.get("remove")) else request.form.get("note", "")
    task_id = request.form.get("task_id") or None
    map_index = int_param("map_index", -1, minimum=-1, maximum=MAX_INT, source=request.form)
    if task_id:
        back = url_for("ui.task_instance", dag_id=dag_id, run_id=run_id, task_id=task_id,
                       **({"map_index": map_index} if map_index >= 0 else {}))
    else:
        back = url_for("ui.run_page", dag_id=dag_id, run_id=run_id)
    if len(note) > MAX_NOTE:
        flash(f"Not saved: the note is {len(note):,} characters long; at most {MAX_NOTE:,}",
              "error")
        return redirect(back)
    outcome = send_command("set_note", {"dag_id": dag_id, "run_id": run_id, "note": note,
                                        "task_id": task_id, "map_index": map_index,
                                        "owner": owner_name()})
    what = f"{task_id}{f'[{map_index}]' if map_index >= 0 else ''}" if task_id else \
        f"run {run_id}"
    flash_outcome(outcome, f"Note of {what} saved" if note.strip() else
                  f"Note of {what} removed")
    return redirect(back)


@bp.route("/dags/<dag_id>/delete", methods=["POST"])
@require(DAG_DELETE)
def dag_delete(dag_id: str):
    """Delete a DAG's runs and history through the scheduler; the file stays and is parsed
    again, so the DAG comes back in the list without its history."""
    outcome = send_command("delete_dag", {"dag_id": dag_id, "owner": owner_name()})
    deleted = outcome.result.get("deleted") or {}
    if flash_outcome(outcome, f"Deleted DAG {dag_id}: {deleted.get('dag_run', 0)} run(s) and "
                     f"{deleted.get('task_instance', 0)} task instance(s). Its file stays: "
                     "the DAG comes back, without its history, when the file is parsed "
                     "again"):
        return redirect(url_for("ui.dag_list"))
    return redirect(url_for("ui.dag_grid", dag_id=dag_id))


def _date_field(name: str) -> str:
    value = (request.values.get(name) or "").strip()
    if len(value) > 40:
        abort(400, f"{name} is too long")
    return value


@bp.get("/dags/<dag_id>/backfill")
@require(READ)
def dag_backfill(dag_id: str):
    """The progress of the DAG's backfill runs in the range, for anyone who may read the DAG;
    the form to start one only for those who may trigger runs."""
    return _backfill_page(dag_id)


@bp.post("/dags/<dag_id>/backfill")
@require(RUN_TRIGGER)
def dag_backfill_start(dag_id: str):
    """Preview a backfill (``action=preview``: a dry run) or create its runs."""
    return _backfill_page(dag_id)


def _backfill_page(dag_id: str):
    """The backfill form (preview with ``dry_run``, then create) and the progress of the
    DAG's backfill runs in the range; a POST goes to the scheduler first."""
    from updraft.schedules import coerce_datetime
    from updraft.store.actions import backfill_progress
    from web.ui.dags import _dag_or_404

    start, end = _date_field("start_date"), _date_field("end_date")
    reset = truthy(request.values.get("reset_dagruns"))
    preview = None
    status = 200
    if request.method == "POST":
        dry_run = request.form.get("action") == "preview"
        if not start or not end:
            flash("Give a start date and an end date", "error")
            status = 400
        else:
            outcome = send_command("backfill", {
                "dag_id": dag_id, "start_date": start, "end_date": end, "reset_dagruns": reset,
                "dry_run": dry_run, "owner": owner_name()})
            if not outcome.ok:
                flash_outcome(outcome, "")
                status = {"too_large": 413, "bad_request": 400, "conflict": 409,
                          "not_found": 404}.get(outcome.code, 503)
            elif dry_run:
                preview = outcome.result
            else:
                created = outcome.result.get("created") or []
                total = len(outcome.result.get("run_ids") or [])
                flash_outcome(outcome, f"Backfill of {dag_id}: {len(created)} of {total} "
                              "run(s) created; the scheduler runs them")
                return redirect(url_for("ui.dag_backfill", dag_id=dag_id, start_date=start,
                                        end_date=end))
    with store() as session:
        row, dag = _dag_or_404(session, dag_id)
        try:
            first = coerce_datetime(start, dag.timezone) if start else None
            last = coerce_datetime(end, dag.timezone) if end else None
        except ValueError as exc:
            flash(f"Bad date: {exc}", "error")
            first = last = None
            status = 400
        if last is not None and len(end) == 10:  # a bare date: the whole day
            from datetime import timedelta

            last = last + timedelta(days=1) - timedelta(microseconds=1)
        progress = backfill_progress(session, dag_id, first, last)
        progress_url = url_for("api.backfill_progress", dag_id=dag_id, **{
            name: value.isoformat() for name, value in (("start_date", first),
                                                        ("end_date", last)) if value})
        return render_template(
            "dag_backfill.html", row=row, dag=dag, runs=[], run=None, progress=progress,
            preview=preview, start_date=start, end_date=end, reset=reset,
            first=first, last=last, progress_url=progress_url), status


__all__ = ["dag_backfill", "dag_backfill_start", "dag_delete", "save_note"]
