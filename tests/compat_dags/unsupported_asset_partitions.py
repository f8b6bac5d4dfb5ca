"""Asset partitions (Airflow 3.2+), which Updraft does not have; plain assets it does."""
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, PartitionedAssetTimetable

orders = Asset("s3://bucket/orders.parquet")

with DAG("unsupported_asset_partitions", start_date=datetime(2024, 1, 1),
         schedule=PartitionedAssetTimetable(assets=orders)) as dag:
    EmptyOperator(task_id="consume")
