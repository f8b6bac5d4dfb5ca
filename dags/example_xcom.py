"""XCom: push and pull values between tasks (return values, custom keys, multiple outputs)."""

from __future__ import annotations

from datetime import datetime

from updraft import DAG, task
from updraft.operators.python import PythonOperator

VALUE_1 = [1, 2, 3]
VALUE_2 = {"a": "b"}


def push(ti=None):
    """Push an XCom under a custom key."""
    ti.xcom_push(key="value from pusher 1", value=VALUE_1)


def push_by_returning():
    """Pushes the return value (key ``return_value``)."""
    return VALUE_2


def puller(ti=None):
    """Pull both values and check them."""
    v1 = ti.xcom_pull(key="value from pusher 1", task_ids="push")
    v2 = ti.xcom_pull(task_ids="push_by_returning")
    if v1 != VALUE_1:
        raise ValueError(f"The two values differ: {v1} and {VALUE_1}")
    if v2 != VALUE_2:
        raise ValueError(f"The two values differ: {v2} and {VALUE_2}")
    both = ti.xcom_pull(task_ids=["push", "push_by_returning"], key="return_value")
    print("return values of both pushers:", both)


with DAG(
    "example_xcom",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:
    push1 = PythonOperator(task_id="push", python_callable=push)
    push2 = PythonOperator(task_id="push_by_returning", python_callable=push_by_returning)
    pull = PythonOperator(task_id="puller", python_callable=puller)
    [push1, push2] >> pull

    @task(multiple_outputs=True)
    def split_name() -> dict:
        """Each key of the returned dict becomes its own XCom."""
        return {"first": "Ada", "last": "Lovelace"}

    @task
    def greet(first: str, last: str) -> str:
        greeting = f"Hello, {first} {last}!"
        print(greeting)
        return greeting

    @task
    def check(ti=None):
        assert ti.xcom_pull(task_ids="split_name", key="first") == "Ada"
        assert ti.xcom_pull(task_ids="greet") == "Hello, Ada Lovelace!"

    name = split_name()
    greeting = greet(name["first"], name["last"])
    greeting >> check()
