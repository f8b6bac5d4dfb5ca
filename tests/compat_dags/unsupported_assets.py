"""Asset (data-aware) scheduling, which Updraft does not have."""
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

orders = Asset("s3://bucket/orders.parquet")

with DAG("unsupported_assets", start_date=datetime(2024, 1, 1), schedule=[orders]) as dag:
    EmptyOperator(task_id="consume")
