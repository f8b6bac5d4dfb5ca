"""Airflow 3 style: SQLExecuteQueryOperator on a SQLite connection from AIRFLOW_CONN_*."""
from datetime import datetime

from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator
from airflow.sdk import DAG, task

with DAG(dag_id="a3_sql_sqlite", start_date=datetime(2024, 1, 1), schedule=None,
         catchup=False) as dag:
    create = SQLExecuteQueryOperator(
        task_id="create",
        conn_id="compat_sqlite",
        sql="CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, amount REAL, day TEXT)",
    )
    insert = SQLExecuteQueryOperator(
        task_id="insert",
        conn_id="compat_sqlite",
        sql=[
            "DELETE FROM orders",
            "INSERT INTO orders (id, amount, day) VALUES (1, 10.5, '{{ ds }}')",
            "INSERT INTO orders (id, amount, day) VALUES (2, 4.5, '{{ ds }}')",
        ],
    )
    select = SQLExecuteQueryOperator(
        task_id="select",
        conn_id="compat_sqlite",
        sql="SELECT id, amount FROM orders ORDER BY id",
    )

    @task
    def total(rows):
        return sum(amount for _id, amount in rows)

    create >> insert >> select
    total(select.output)
