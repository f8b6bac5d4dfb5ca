"""ETL with PythonOperator and XCom, in the style of Airflow's tutorial.

extract reads a JSON string of orders, transform totals them, load prints the total. Each
task hands its result to the next through XCom (``ti.xcom_push`` / ``ti.xcom_pull``).
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime

from updraft import DAG
from updraft.operators.python import PythonOperator

with DAG(
    "example_etl",
    description="Extract, transform and load with PythonOperator and XCom",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    default_args={"retries": 1},
) as dag:
    dag.doc_md = __doc__

    def extract(**kwargs):
        ti = kwargs["ti"]
        data_string = '{"1001": 301.27, "1002": 433.21, "1003": 502.22}'
        ti.xcom_push("order_data", data_string)

    def transform(**kwargs):
        ti = kwargs["ti"]
        order_data = json.loads(ti.xcom_pull(task_ids="extract", key="order_data"))
        total_order_value = sum(order_data.values())
        ti.xcom_push("total_order_value", json.dumps({"total_order_value": total_order_value}))

    def load(**kwargs):
        ti = kwargs["ti"]
        total = json.loads(ti.xcom_pull(task_ids="transform", key="total_order_value"))
        print(total)
        return total["total_order_value"]

    extract_task = PythonOperator(task_id="extract", python_callable=extract)
    extract_task.doc_md = textwrap.dedent("""\
        #### Extract task
        Gets the order data ready for the rest of the pipeline (a hard-coded JSON string here).
        """)
    transform_task = PythonOperator(task_id="transform", python_callable=transform)
    transform_task.doc_md = "#### Transform task\nSums the order values."
    load_task = PythonOperator(task_id="load", python_callable=load)
    load_task.doc_md = "#### Load task\nPrints the total (a real pipeline would store it)."

    extract_task >> transform_task >> load_task
