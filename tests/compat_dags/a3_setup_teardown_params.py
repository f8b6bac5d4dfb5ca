"""Airflow 3 style: setup/teardown tasks, typed params, templated fields, run conf."""
import pendulum
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, Param, setup, task, teardown

with DAG(
    dag_id="a3_setup_teardown_params",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    schedule=None,
    params={
        "name": Param("world", type="string"),
        "count": Param(3, type="integer", minimum=1, maximum=10),
    },
) as dag:

    @setup
    def create_resource():
        return "resource-1"

    @teardown
    def delete_resource(resource):
        return f"deleted {resource}"

    greet = BashOperator(
        task_id="greet",
        bash_command="echo 'hello {{ params.name }} x{{ params.count }} ({{ dag_run.conf.get(\"who\", \"nobody\") }})'",
    )

    def repeat(name, count):
        return [name] * count

    rep = PythonOperator(
        task_id="repeat",
        python_callable=repeat,
        op_kwargs={"name": "{{ params.name }}", "count": 2},
    )

    @task
    def work(resource):
        return f"used {resource}"

    resource = create_resource()
    worked = work(resource)
    resource >> [greet, rep] >> delete_resource(resource)
    worked >> delete_resource.override(task_id="delete_after_work")(resource)
