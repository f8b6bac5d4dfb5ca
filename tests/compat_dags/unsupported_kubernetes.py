"""Uses KubernetesPodOperator, which Updraft does not have."""
from datetime import datetime

from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

with DAG("unsupported_kubernetes", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    KubernetesPodOperator(task_id="pod", name="pod", image="python:3.12",
                          cmds=["python", "-c", "print(1)"])
