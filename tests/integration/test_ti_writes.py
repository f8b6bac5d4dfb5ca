"""The scheduler's state changes are compare-and-sets on what it decided on: a task
instance changed meanwhile (marked or cleared through the API while the scheduler was
deciding on its snapshot) is left as the other writer set it, on every store dialect."""

from __future__ import annotations

from updraft.state import TaskInstanceState as TI
from updraft.store.engine import session_scope
from updraft.store.models import DagRunModel, TaskInstanceModel, utcnow
from updraft.store.runs import set_ti_states


def _run_with(store_url: str, states: dict[str, str]) -> None:
    now = utcnow()
    with session_scope(store_url) as session:
        session.add(DagRunModel(dag_id="d", run_id="r", state="running", run_type="manual",
                                logical_date=now))
        for task_id, state in states.items():
            session.add(TaskInstanceModel(dag_id="d", run_id="r", task_id=task_id,
                                          map_index=-1, state=state))


def _states(store_url: str) -> dict[str, str]:
    with session_scope(store_url) as session:
        return {ti.task_id: ti.state for ti in session.query(TaskInstanceModel)}


def test_a_change_decided_on_a_stale_state_is_not_applied(store_url):
    # The scheduler saw both as none; "marked" was marked success by someone meanwhile.
    _run_with(store_url, {"waiting": "none", "marked": "success"})
    seen = {("waiting", -1): TI.NONE, ("marked", -1): TI.NONE}
    with session_scope(store_url) as session:
        written = set_ti_states(session, "d", "r", [
            ("waiting", -1, TI.SCHEDULED, "dependencies met"),
            ("marked", -1, TI.SCHEDULED, "dependencies met")], "test", expected=seen)
    assert written == 1
    assert _states(store_url) == {"waiting": "scheduled", "marked": "success"}


def test_without_a_snapshot_the_current_state_is_compared(store_url):
    _run_with(store_url, {"a": "none"})
    with session_scope(store_url) as session:
        assert set_ti_states(session, "d", "r", [("a", -1, TI.UPSTREAM_FAILED, "upstream")],
                             "test") == 1
    assert _states(store_url) == {"a": "upstream_failed"}
