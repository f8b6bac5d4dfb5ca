"""Portable style: airflow.providers.common.compat paths and a custom operator."""
from datetime import datetime

from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowSkipException,
    BaseOperator,
    Context,
    TriggerRule,
)
from airflow.providers.common.compat.standard.operators import PythonOperator


class GreetOperator(BaseOperator):
    template_fields = ("greeting",)

    def __init__(self, *, greeting: str, skip: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.greeting = greeting
        self.skip = skip

    def execute(self, context: Context):
        if self.skip:
            raise AirflowSkipException("asked to skip")
        self.xcom_push(context, key="length", value=len(self.greeting))
        return self.greeting


with DAG("a3_common_compat", start_date=datetime(2024, 1, 1), schedule=None) as dag:
    hello = GreetOperator(task_id="hello", greeting="hello {{ ds }}")
    skipped = GreetOperator(task_id="skipped", greeting="x", skip=True)
    summary = PythonOperator(
        task_id="summary",
        python_callable=lambda ti: ti.xcom_pull(task_ids="hello", key="length"),
        trigger_rule=TriggerRule.ALL_DONE,
    )
    [hello, skipped] >> summary
