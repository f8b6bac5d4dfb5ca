"""Tasks made in a loop: one extract/transform pair per database, then one load.

The parametrised loop over ``['customers', 'orders', 'products']`` from the Airflow overview.
"""

from __future__ import annotations

from datetime import datetime

from updraft import DAG
from updraft.operators.empty import EmptyOperator
from updraft.operators.python import PythonOperator


def extract_data(database: str) -> dict:
    print(f"extracting {database}")
    return {"database": database, "rows": len(database)}


def transform_data(database: str, ti=None) -> int:
    extracted = ti.xcom_pull(task_ids=f"extract_{database}")
    print(f"transforming {extracted}")
    return extracted["rows"] * 10


def load_data(ti=None) -> int:
    totals = ti.xcom_pull(task_ids=[f"transform_{db}" for db in DATABASES])
    print(f"loading {totals}")
    return sum(totals)


DATABASES = ["customers", "orders", "products"]

with DAG(
    "example_loop_databases",
    schedule="0 3 * * *",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:
    start = EmptyOperator(task_id="start")
    load_task = PythonOperator(task_id="load", python_callable=load_data)

    for database in DATABASES:
        extract_task = PythonOperator(
            task_id=f"extract_{database}",
            python_callable=extract_data,
            op_kwargs={"database": database},
        )
        transform_task = PythonOperator(
            task_id=f"transform_{database}",
            python_callable=transform_data,
            op_kwargs={"database": database},
        )
        start >> extract_task >> transform_task >> load_task
