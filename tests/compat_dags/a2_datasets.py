"""Airflow 2 datasets: a producer with an outlet, a consumer scheduled on it that reads the
events that triggered its run."""
from datetime import datetime

from airflow import DAG
from airflow.datasets import Dataset
from airflow.decorators import task

orders = Dataset("s3://bucket/orders.csv")

with DAG("a2_datasets_producer", start_date=datetime(2024, 1, 1), schedule=None):

    @task(outlets=[orders])
    def write_orders():
        return "written"

    write_orders()

with DAG("a2_datasets_consumer", start_date=datetime(2024, 1, 1), schedule=[orders]):

    @task
    def read_orders(triggering_dataset_events=None):
        return [e.uri for events in triggering_dataset_events.values() for e in events]

    read_orders()
