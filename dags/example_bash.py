"""BashOperator: commands, environment variables, and skipping with exit code 99."""

from __future__ import annotations

from datetime import datetime

from updraft import DAG
from updraft.operators.bash import BashOperator
from updraft.operators.empty import EmptyOperator
from updraft.state import TriggerRule

with DAG(
    "example_bash",
    schedule="0 0 * * *",
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:
    run_this_last = EmptyOperator(task_id="run_this_last",
                                  trigger_rule=TriggerRule.NONE_FAILED)

    for i in range(3):
        task = BashOperator(task_id=f"runme_{i}",
                            bash_command='echo "{{ task_instance_key_str }}" && sleep 0.1')
        task >> run_this_last

    also_run_this = BashOperator(task_id="also_run_this",
                                 bash_command='echo "ti_key={{ task_instance_key_str }}"')
    also_run_this >> run_this_last

    with_env = BashOperator(
        task_id="with_env",
        bash_command='echo "greeting: $GREETING, run: {{ run_id }}" && test "$GREETING" = hi',
        env={"GREETING": "hi"},
        append_env=True,
    )
    with_env >> run_this_last

    this_will_skip = BashOperator(task_id="this_will_skip",
                                  bash_command='echo "hello world"; exit 99;')
    this_will_skip >> run_this_last
