"""LatestOnlyOperator: skips its downstream tasks unless the run is the latest interval."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from updraft.operators.branch import BaseBranchOperator
from updraft.state import DagRunType


class LatestOnlyOperator(BaseBranchOperator):
    """Lets downstream tasks run only in the run of the most recent schedule interval.

    Runs triggered by hand are never held back (Airflow's rule). A scheduled or backfill
    run goes on only if now falls in the interval that follows the run's own interval.
    """

    ui_color = "#e9ffdb"

    def _now(self) -> datetime:
        from updraft.schedules import utcnow

        return utcnow()

    def choose_branch(self, context: dict) -> list[str]:
        from updraft.schedules import DataInterval, TimeRestriction, next_dagrun_info_at

        everything = sorted(self.get_direct_relative_ids(upstream=False))
        dag_run = context["dag_run"]
        if str(getattr(dag_run, "run_type", "")) == DagRunType.MANUAL.value:
            self.log.info("Manually triggered DAG_Run: allowing execution to proceed.")
            return everything
        dag = context["dag"]
        start = dag_run.data_interval_start or dag_run.logical_date
        end = dag_run.data_interval_end or dag_run.logical_date
        now = self._now()
        info = next_dagrun_info_at(dag.timetable,
                                   last_automated_data_interval=DataInterval(start, end),
                                   restriction=TimeRestriction(None, None, catchup=True),
                                   now=now)
        if info is None:
            self.log.info("Last scheduled execution: allowing execution to proceed.")
            return everything
        left_window, right_window = info.data_interval.start, info.data_interval.end
        self.log.info("Checking latest only with left_window: %s right_window: %s now: %s",
                      left_window, right_window, now)
        if not left_window < now <= right_window:
            self.log.info("Not latest execution, skipping downstream.")
            return []
        self.log.info("Latest, allowing execution to proceed.")
        return everything

    def execute(self, context: dict) -> Any:
        branches = self.choose_branch(context)
        self.skip_all_except(context, branches)
        # Airflow's LatestOnlyOperator pushes no XCom.
        return None


__all__ = ["LatestOnlyOperator"]
