"""The TaskFlow API: an ETL pipeline written with @dag and @task.

Return values flow between tasks as XComs; ``multiple_outputs=True`` makes each key of a
returned dict its own XCom.
"""

from __future__ import annotations

import json
from datetime import datetime

from updraft import dag, task


@dag(
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
)
def example_taskflow():
    """### TaskFlow ETL

    Extract a JSON string of orders, sum and count them, print the summary.
    """

    @task()
    def extract() -> dict:
        data_string = '{"1001": 301.27, "1002": 433.21, "1003": 502.22}'
        return json.loads(data_string)

    @task(multiple_outputs=True)
    def transform(order_data_dict: dict) -> dict:
        return {"total_order_value": sum(order_data_dict.values()),
                "order_count": len(order_data_dict)}

    @task()
    def load(total_order_value: float, order_count: int) -> str:
        summary = f"{order_count} orders, total {total_order_value:.2f}"
        print(summary)
        return summary

    order_data = extract()
    order_summary = transform(order_data)
    load(order_summary["total_order_value"], order_summary["order_count"])


example_taskflow()
