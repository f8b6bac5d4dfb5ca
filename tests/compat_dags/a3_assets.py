"""Airflow 3 assets: a producer with an outlet and extra, a consumer scheduled on it."""
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Metadata, task

orders = Asset(name="orders", uri="s3://bucket/orders.parquet")

with DAG("a3_assets_producer", start_date=datetime(2024, 1, 1), schedule=None):

    @task(outlets=[orders])
    def write_orders():
        yield Metadata(orders, {"rows": 3})

    write_orders()

with DAG("a3_assets_consumer", start_date=datetime(2024, 1, 1), schedule=[orders]):
    EmptyOperator(task_id="consume")
