"""Listeners: this module (``sample_recorder``) appends each hook call as a JSON line to the
file named by ``SAMPLE_LISTENER_LOG``; ``broken_listener`` (``sample_broken``) raises in every
hook, which must change nothing."""

from __future__ import annotations

import json
import os

from updraft.listeners import hookimpl


def _record(hook: str, **fields) -> None:
    path = os.environ.get("SAMPLE_LISTENER_LOG")
    if not path:
        return
    with open(path, "a") as handle:
        handle.write(json.dumps({"hook": hook, "pid": os.getpid(), **fields}, default=str) + "\n")


def _ti_fields(task_instance) -> dict:
    return {"dag_id": task_instance.dag_id, "task_id": task_instance.task_id,
            "run_id": task_instance.run_id, "try_number": task_instance.try_number,
            "state": str(task_instance.state)}


@hookimpl
def on_task_instance_running(previous_state, task_instance):
    _record("on_task_instance_running", previous_state=str(previous_state),
            **_ti_fields(task_instance))


@hookimpl
def on_task_instance_success(previous_state, task_instance):
    _record("on_task_instance_success", previous_state=str(previous_state),
            **_ti_fields(task_instance))


@hookimpl
def on_task_instance_failed(previous_state, task_instance, error):
    _record("on_task_instance_failed", previous_state=str(previous_state), error=str(error),
            **_ti_fields(task_instance))


@hookimpl
def on_dag_run_running(dag_run, msg):
    _record("on_dag_run_running", dag_id=dag_run.dag_id, run_id=dag_run.run_id, msg=msg)


@hookimpl
def on_dag_run_success(dag_run, msg):
    _record("on_dag_run_success", dag_id=dag_run.dag_id, run_id=dag_run.run_id, msg=msg)


@hookimpl
def on_dag_run_failed(dag_run):  # takes only what it needs, as pluggy allows
    _record("on_dag_run_failed", dag_id=dag_run.dag_id, run_id=dag_run.run_id)


class _Broken:
    """Raises in every hook."""

    def on_task_instance_running(self, previous_state, task_instance):
        raise RuntimeError("sample_broken listener fails on purpose (running)")

    def on_task_instance_success(self, previous_state, task_instance):
        raise RuntimeError("sample_broken listener fails on purpose (success)")

    def on_task_instance_failed(self, previous_state, task_instance, error):
        raise RuntimeError("sample_broken listener fails on purpose (failed)")


broken_listener = _Broken()
