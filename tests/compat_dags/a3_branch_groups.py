"""Airflow 3 style: @task.branch, @task_group, edge labels, trigger rules, EmptyOperator."""
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Label, TriggerRule, dag, task, task_group


@dag(schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC"), catchup=False)
def a3_branch_groups():
    start = EmptyOperator(task_id="start")

    @task.branch
    def pick(**context):
        day = context["logical_date"].day
        return "even_group.first" if day % 2 == 0 else "odd"

    @task_group
    def even_group():
        @task
        def first():
            return "even-1"

        @task
        def second(value):
            return value + "+2"

        second(first())

    odd = EmptyOperator(task_id="odd")
    join = EmptyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)

    chosen = pick()
    start >> chosen
    chosen >> Label("even day") >> even_group() >> join
    chosen >> Label("odd day") >> odd >> join


a3_branch_groups()
