"""A deferrable HTTP operator, which Updraft does not run (it runs HttpOperator synchronously)."""
from datetime import datetime

from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk import DAG

with DAG("unsupported_deferrable", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    HttpOperator(task_id="call", endpoint="/jobs", method="POST", deferrable=True)
