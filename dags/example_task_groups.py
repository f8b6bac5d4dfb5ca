"""Nested task groups; a group's default_args apply to every task inside it."""

from __future__ import annotations

from datetime import datetime, timedelta

from updraft import DAG, TaskGroup
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator

with DAG(
    "example_task_groups",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    default_args={"owner": "data-team", "retries": 1, "retry_delay": timedelta(seconds=5)},
) as dag:
    start = EmptyOperator(task_id="start")

    with TaskGroup("section_1", tooltip="Tasks for section_1",
                   default_args={"retries": 2}) as section_1:
        task_1 = EmptyOperator(task_id="task_1")
        task_2 = BashOperator(task_id="task_2", bash_command="echo 1")
        task_3 = EmptyOperator(task_id="task_3")
        task_1 >> [task_2, task_3]

    with TaskGroup("section_2", tooltip="Tasks for section_2") as section_2:
        task_1 = EmptyOperator(task_id="task_1")

        with TaskGroup("inner_section_2", tooltip="Tasks for inner_section2",
                       default_args={"queue": "default", "priority_weight": 3}):
            task_2 = BashOperator(task_id="task_2", bash_command="echo 1")
            task_3 = EmptyOperator(task_id="task_3")
            task_4 = EmptyOperator(task_id="task_4")
            [task_2, task_3] >> task_4

    end = EmptyOperator(task_id="end")

    start >> section_1 >> section_2 >> end
