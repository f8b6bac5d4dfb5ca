"""Airflow 3 style: airflow.sdk TaskFlow ETL with params, get_current_context, XCom pulls."""
import json

import pendulum
from airflow.sdk import Param, dag, get_current_context, task


@dag(
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"multiplier": Param(2, type="integer", minimum=1)},
    tags=["example", "airflow3"],
)
def a3_taskflow_etl():
    @task()
    def extract():
        data_string = '{"1001": 301.27, "1002": 433.21, "1003": 502.22}'
        return json.loads(data_string)

    @task(multiple_outputs=True)
    def transform(order_data_dict: dict):
        context = get_current_context()
        total = sum(order_data_dict.values()) * context["params"]["multiplier"]
        return {"total_order_value": round(total, 2), "orders": len(order_data_dict)}

    @task()
    def load(total_order_value: float, orders: int, **context):
        pulled = context["ti"].xcom_pull(task_ids="transform", key="orders")
        return f"{orders}/{pulled} orders, total {total_order_value:.2f}"

    order_summary = transform(extract())
    load(order_summary["total_order_value"], order_summary["orders"])


a3_taskflow_etl()
