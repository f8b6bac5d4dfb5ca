"""Airflow 3 style: dynamic task mapping over literals, upstream XComs and classic operators."""
from datetime import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, task

with DAG(dag_id="a3_mapping", start_date=datetime(2024, 1, 1), schedule=None,
         catchup=False) as dag:

    @task
    def make_list():
        return [1, 2, 3]

    @task
    def add(x: int, y: int):
        return x + y

    @task
    def collect(values):
        return sorted(values)

    added = add.partial(y=10).expand(x=make_list())
    collect(added)

    @task
    def pairs():
        return [{"x": 1, "y": 2}, {"x": 3, "y": 4}]

    summed = add.override(task_id="add_kwargs").expand_kwargs(pairs())
    collect.override(task_id="collect_kwargs")(summed)

    echo = BashOperator.partial(task_id="echo").expand(
        bash_command=["echo one", "echo two"])
