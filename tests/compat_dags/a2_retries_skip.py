"""Airflow 2 style: retries, AirflowSkipException, AirflowFailException, trigger rules."""
from datetime import datetime, timedelta

from airflow import DAG
from airflow.exceptions import AirflowFailException, AirflowSkipException
from airflow.operators.python import PythonOperator
from airflow.utils.trigger_rule import TriggerRule


def flaky(ti, **_):
    if ti.try_number < 2:
        raise ValueError("transient error")
    return ti.try_number


def maybe_skip():
    raise AirflowSkipException("nothing to do today")


def hard_fail():
    raise AirflowFailException("bad input, do not retry")


def cleanup():
    return "cleaned"


with DAG(
    "a2_retries_skip",
    start_date=datetime(2023, 1, 1),
    schedule_interval="@daily",
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0)},
) as dag:
    flaky_task = PythonOperator(task_id="flaky", python_callable=flaky)
    skip_task = PythonOperator(task_id="maybe_skip", python_callable=maybe_skip)
    after_skip = PythonOperator(task_id="after_skip", python_callable=cleanup)
    fail_task = PythonOperator(task_id="hard_fail", python_callable=hard_fail)
    always = PythonOperator(task_id="cleanup", python_callable=cleanup,
                            trigger_rule=TriggerRule.ALL_DONE)

    flaky_task >> skip_task >> after_skip
    [after_skip, fail_task] >> always
