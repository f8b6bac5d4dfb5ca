"""Dynamic task mapping: one task instance per item, decided when the DAG runs.

- ``add_one.expand(x=[1, 2, 3])`` maps over literals;
- ``double.expand(x=make_list())`` maps over an upstream task's XCom;
- ``BashOperator.partial(...).expand_kwargs(...)`` maps over dicts of arguments;
- ``total(...)`` reduces the mapped results.
"""

from __future__ import annotations

from datetime import datetime

from updraft import DAG, task
from updraft.operators.bash import BashOperator

with DAG(
    "example_dynamic_mapping",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:

    @task
    def add_one(x: int) -> int:
        return x + 1

    @task
    def make_list() -> list[int]:
        return [10, 20, 30, 40]

    @task
    def double(x: int, factor: int) -> int:
        return x * factor

    @task
    def total(from_literals, from_xcom) -> int:
        result = sum(from_literals) + sum(from_xcom)
        print(f"total: {result}")
        if result != 2 + 3 + 4 + 2 * (10 + 20 + 30 + 40):
            raise ValueError(f"unexpected total {result}")
        return result

    @task
    def commands() -> list[dict]:
        return [{"bash_command": "echo one", "env": {"N": "1"}},
                {"bash_command": "echo two", "env": {"N": "2"}}]

    from_literals = add_one.expand(x=[1, 2, 3])
    from_xcom = double.partial(factor=2).expand(x=make_list())
    total(from_literals, from_xcom)

    BashOperator.partial(task_id="run_commands").expand_kwargs(commands())
