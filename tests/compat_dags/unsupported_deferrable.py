"""A deferrable sensor, which Updraft does not run."""
from datetime import datetime, timedelta

from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
from airflow.sdk import DAG

with DAG("unsupported_deferrable", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    TimeDeltaSensor(task_id="wait", delta=timedelta(minutes=5), deferrable=True)
