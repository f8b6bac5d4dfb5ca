"""Branching: BranchPythonOperator and @task.branch choose which path runs.

The paths not chosen are skipped; the join task uses ``none_failed_min_one_success`` so it
runs after whichever branch ran.
"""

from __future__ import annotations

import random
from datetime import datetime

from updraft import DAG, Label, task
from updraft.operators.empty import EmptyOperator
from updraft.operators.python import BranchPythonOperator
from updraft.state import TriggerRule

OPTIONS = ["branch_a", "branch_b", "branch_c", "branch_d"]

with DAG(
    "example_branching",
    schedule="@daily",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:
    run_this_first = EmptyOperator(task_id="run_this_first")

    branching = BranchPythonOperator(
        task_id="branching",
        python_callable=lambda: f"branch_{random.choice(['a', 'b', 'c', 'd'])}",
    )
    run_this_first >> branching

    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    for option in OPTIONS:
        t = EmptyOperator(task_id=option)
        follow = EmptyOperator(task_id=f"follow_{option}")
        branching >> Label(option) >> t >> follow >> join

    @task.branch(task_id="choose_by_weekday")
    def choose_by_weekday(logical_date=None) -> str:
        """Weekdays go one way, weekends the other."""
        return "weekday_work" if logical_date.weekday() < 5 else "weekend_rest"

    weekday = EmptyOperator(task_id="weekday_work")
    weekend = EmptyOperator(task_id="weekend_rest")
    done = EmptyOperator(task_id="done", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)

    join >> choose_by_weekday() >> [weekday, weekend] >> done
