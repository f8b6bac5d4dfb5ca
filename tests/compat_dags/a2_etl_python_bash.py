"""Airflow 2 style: classic operators, provide_context, templated bash, XCom pulls."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.operators.python import PythonOperator

default_args = {
    "owner": "data-eng",
    "depends_on_past": False,
    "retries": 1,
    "retry_delay": timedelta(minutes=5),
}


def extract(**kwargs):
    ti = kwargs["ti"]
    ti.xcom_push(key="row_count", value=42)
    return {"rows": [1, 2, 3]}


def transform(**context):
    ti = context["ti"]
    data = ti.xcom_pull(task_ids="extract")
    count = ti.xcom_pull(task_ids="extract", key="row_count")
    return {"total": sum(data["rows"]), "count": count, "ds": context["ds"]}


with DAG(
    dag_id="a2_etl_python_bash",
    default_args=default_args,
    description="A simple ETL DAG",
    schedule_interval=None,
    start_date=datetime(2023, 1, 1),
    catchup=False,
    tags=["example", "airflow2"],
) as dag:
    t1 = PythonOperator(task_id="extract", python_callable=extract, provide_context=True)
    t2 = PythonOperator(task_id="transform", python_callable=transform, provide_context=True)
    t3 = BashOperator(
        task_id="report",
        bash_command="echo 'total={{ ti.xcom_pull(task_ids=\"transform\")[\"total\"] }} on {{ ds }}'",
    )
    t1 >> t2 >> t3
