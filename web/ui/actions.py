"""Clear and mark with a preview: the dialog lists the task instances a change will touch
before anything is sent, with Airflow's past / future / upstream / downstream / recursive
options (and "only failed" for a clear).

The same plan serves the preview and the change, so what is shown is what is asked for:
a clear is one ``clear`` command per DAG (sent with ``dry_run`` for the preview: the
scheduler answers with the rows it would reset), plus, when ``recursive`` is on, one per
``ExternalTaskMarker`` it reaches (the marked task and its downstream in the other DAG's run
of the same logical date, to the marker's ``recursion_depth``). A mark's preview is read from
the store with the selection the ``set_state`` / ``set_run_state`` commands make; the web
node still changes nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import abort, redirect, render_template, request, url_for
from sqlalchemy import select

from updraft.state import UNFINISHED_STATES
from updraft.store.models import DagRunModel, TaskInstanceModel
from web.auth.permissions import READ, RUN_CLEAR, RUN_MARK, can, require
from web.ui.blueprint import bp
from web.ui.commands import send_command
from web.ui.helpers import flash_outcome, int_param, owner_name, store, truthy

ACTIONS = {"clear": RUN_CLEAR, "mark_success": RUN_MARK, "mark_failed": RUN_MARK}
OPTIONS = ("past", "future", "upstream", "downstream", "recursive", "only_failed")
PREVIEW_ROWS = 500
MAX_DEPTH = 10


@dataclass
class Plan:
    """What one confirmation asks for: the commands, and the task instances they touch."""

    action: str
    commands: list[tuple[str, dict]] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)
    error: str = ""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _options(source) -> dict[str, bool]:
    return {name: truthy(source.get(name)) for name in OPTIONS}


def _relatives(dag, task_ids: set[str], upstream: bool, downstream: bool) -> set[str]:
    found = set(task_ids)
    todo = list(task_ids)
    while todo:
        task = dag.task_dict.get(todo.pop())
        if task is None:
            continue
        near = (set(task.upstream_task_ids) if upstream else set()) | (
            set(task.downstream_task_ids) if downstream else set())
        for other in near - found:
            found.add(other)
            todo.append(other)
    return found


def _clear_payload(dag_id: str, run: DagRunModel, task_ids: list[str] | None,
                   map_index: int, opts: dict[str, bool]) -> dict:
    payload = {"dag_id": dag_id, "task_ids": task_ids,
               "map_indexes": [map_index] if map_index >= 0 else None,
               "upstream": opts["upstream"], "downstream": opts["downstream"],
               "only_failed": opts["only_failed"]}
    if (opts["past"] or opts["future"]) and run.logical_date is not None:
        payload["start_date"] = None if opts["past"] else _iso(run.logical_date)
        payload["end_date"] = None if opts["future"] else _iso(run.logical_date)
    else:
        payload["run_id"] = run.run_id
    return payload


def plan_clear(session, dag, run: DagRunModel, task_id: str | None, map_index: int,
               opts: dict[str, bool]) -> Plan:
    """The clear commands (with the markers' DAGs when recursive) and their dry-run rows."""
    from updraft.store.dags import read_dag

    plan = Plan("clear")
    todo = [(_clear_payload(dag.dag_id, run, [task_id] if task_id else None, map_index, opts),
             0)]
    seen: set[tuple] = set()
    while todo:
        payload, depth = todo.pop(0)
        key = (payload["dag_id"], tuple(payload.get("task_ids") or ()), payload.get("run_id"),
               payload.get("start_date"), payload.get("end_date"))
        if key in seen:
            continue
        seen.add(key)
        outcome = send_command("clear", dict(payload, dry_run=True))
        if not outcome.ok:
            plan.error = f"no preview: {outcome.error}"
            return plan
        plan.commands.append(("clear", payload))
        rows = outcome.result.get("task_instances") or []
        plan.rows.extend(dict(r, new_state="none") for r in rows)
        if not opts["recursive"] or depth >= MAX_DEPTH:
            continue
        target = dag if payload["dag_id"] == dag.dag_id else read_dag(session,
                                                                       payload["dag_id"])
        for r in rows:
            task = target.task_dict.get(r["task_id"]) if target is not None else None
            if task is None or task.task_type != "ExternalTaskMarker":
                continue
            todo.extend((p, depth + 1) for p in _marker_clears(session, r, task))
    return plan


def _marker_clears(session, row: dict, task) -> list[dict]:
    """The clear an ExternalTaskMarker asks for in its other DAG (at its logical date)."""
    ti = session.get(TaskInstanceModel, (row["dag_id"], row["run_id"], row["task_id"],
                                         row.get("map_index", -1)))
    fields = dict(task.template_field_values or {})
    fields.update((ti.rendered_fields or {}) if ti is not None else {})
    other_dag, other_task = fields.get("external_dag_id"), fields.get("external_task_id")
    if not other_dag or not other_task:
        return []
    when = fields.get("logical_date")
    if not isinstance(when, str) or "{{" in when:
        when = _iso(session.scalar(select(DagRunModel.logical_date).where(
            DagRunModel.dag_id == row["dag_id"], DagRunModel.run_id == row["run_id"])))
    if when is None:
        return []
    return [{"dag_id": other_dag, "task_ids": [other_task], "downstream": True,
             "start_date": when, "end_date": when}]


def plan_mark(session, dag, run: DagRunModel, task_id: str | None, map_index: int,
              state: str, opts: dict[str, bool]) -> Plan:
    """The mark command and the task instances it changes, read from the store."""
    plan = Plan(f"mark_{state}")
    if task_id is None:
        plan.commands.append(("set_run_state", {"dag_id": dag.dag_id, "run_id": run.run_id,
                                                "state": state}))
        for r in session.execute(select(
                TaskInstanceModel.task_id, TaskInstanceModel.map_index, TaskInstanceModel.state)
                .where(TaskInstanceModel.dag_id == dag.dag_id,
                       TaskInstanceModel.run_id == run.run_id,
                       TaskInstanceModel.state.in_([str(s) for s in UNFINISHED_STATES]))
                .order_by(TaskInstanceModel.task_id, TaskInstanceModel.map_index)):
            new = "failed" if state == "failed" and r.state == "running" else (
                "success" if state == "success" else "skipped")
            plan.rows.append({"dag_id": dag.dag_id, "run_id": run.run_id, "task_id": r.task_id,
                              "map_index": r.map_index, "state": r.state, "new_state": new})
        return plan
    plan.commands.append(("set_state", {
        "dag_id": dag.dag_id, "run_id": run.run_id, "task_id": task_id, "state": state,
        "map_indexes": [map_index] if map_index >= 0 else None,
        "upstream": opts["upstream"], "downstream": opts["downstream"],
        "past": opts["past"], "future": opts["future"]}))
    runs = [run.run_id]
    if (opts["past"] or opts["future"]) and run.logical_date is not None:
        query = select(DagRunModel.run_id).where(DagRunModel.dag_id == dag.dag_id,
                                                 DagRunModel.run_id != run.run_id)
        if not opts["past"]:
            query = query.where(DagRunModel.logical_date > run.logical_date)
        elif not opts["future"]:
            query = query.where(DagRunModel.logical_date < run.logical_date)
        runs += list(session.scalars(query))
    task_ids = _relatives(dag, {task_id}, opts["upstream"], opts["downstream"])
    query = select(TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                   TaskInstanceModel.map_index, TaskInstanceModel.state).where(
        TaskInstanceModel.dag_id == dag.dag_id, TaskInstanceModel.run_id.in_(runs),
        TaskInstanceModel.task_id.in_(sorted(task_ids)), TaskInstanceModel.state != state)
    if map_index >= 0:
        query = query.where(TaskInstanceModel.map_index == map_index)
    for r in session.execute(query.order_by(TaskInstanceModel.run_id, TaskInstanceModel.task_id,
                                            TaskInstanceModel.map_index)):
        plan.rows.append({"dag_id": dag.dag_id, "run_id": r.run_id, "task_id": r.task_id,
                          "map_index": r.map_index, "state": r.state, "new_state": state})
    return plan


def _plan(session, dag_id: str, run_id: str, source) -> tuple[Plan, dict]:
    from web.ui.dags import _dag_or_404

    action = source.get("action", "")
    if action not in ACTIONS:
        abort(400, f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    _row, dag = _dag_or_404(session, dag_id)
    run = session.scalar(select(DagRunModel).where(DagRunModel.dag_id == dag_id,
                                                   DagRunModel.run_id == run_id))
    if run is None:
        abort(404, f"run {run_id!r} of DAG {dag_id!r} not found")
    task_id = source.get("task_id") or None
    if task_id is not None and task_id not in dag.task_dict:
        abort(404, f"task {task_id!r} is not in DAG {dag_id!r}")
    map_index = int_param("map_index", -1, minimum=-1, source=source)
    opts = _options(source)
    if action == "clear":
        plan = plan_clear(session, dag, run, task_id, map_index, opts)
    else:
        plan = plan_mark(session, dag, run, task_id, map_index, action.split("_", 1)[1], opts)
    return plan, {"dag": dag, "run": run, "task_id": task_id, "map_index": map_index,
                  "opts": opts, "action": action}


@bp.route("/dags/<dag_id>/runs/<path:run_id>/confirm")
@require(READ)
def action_confirm(dag_id: str, run_id: str):
    """The preview of a clear or mark with its options (``?partial=1``: the dialog's body)."""
    action = request.args.get("action", "")
    if action in ACTIONS and not can(ACTIONS[action]):
        return require(ACTIONS[action])(lambda: None)()
    with store() as session:
        plan, context = _plan(session, dag_id, run_id, request.args)
    template = "_action_confirm.html" if request.args.get("partial") else "action_confirm.html"
    return render_template(template, plan=plan, shown_rows=plan.rows[:PREVIEW_ROWS],
                           option_names=OPTIONS, **context)


@bp.route("/dags/<dag_id>/runs/<path:run_id>/confirm", methods=["POST"])
@require(READ)
def action_apply(dag_id: str, run_id: str):
    """Send what the preview showed (planned again now, from the same options)."""
    action = request.form.get("action", "")
    if action not in ACTIONS:
        abort(400, f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if not can(ACTIONS[action]):
        return require(ACTIONS[action])(lambda: None)()
    from flask import flash

    task_id = request.form.get("task_id") or None
    with store() as session:
        plan, _context = _plan(session, dag_id, run_id, request.form)
    back = request.form.get("next") or url_for("ui.run_page", dag_id=dag_id, run_id=run_id)
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("ui.run_page", dag_id=dag_id, run_id=run_id)
    if plan.error:
        flash(f"Nothing was sent: {plan.error}", "error")
        return redirect(back)
    owner = owner_name()
    for verb, payload in plan.commands:
        outcome = send_command(verb, dict(payload, owner=owner))
        if not outcome.ok:
            flash_outcome(outcome, "")
            return redirect(back)
    what = "Cleared" if action == "clear" else f"Marked {action.split('_', 1)[1]}:"
    others = len({p["dag_id"] for _verb, p in plan.commands}) > 1
    flash(f"{what} {len(plan.rows)} task instance(s) of {task_id or 'run ' + run_id}"
          + (", in other DAGs too (recursive)" if others else ""), "success")
    return redirect(back)
