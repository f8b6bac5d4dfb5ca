"""Airflow 1.10/2.0 import paths: *_operator modules, ShortCircuitOperator, cross_downstream."""
from datetime import datetime

from airflow import DAG
from airflow.operators.bash_operator import BashOperator
from airflow.operators.dummy_operator import DummyOperator
from airflow.operators.python_operator import PythonOperator, ShortCircuitOperator
from airflow.utils.helpers import cross_downstream

dag = DAG("a2_legacy_paths", start_date=datetime(2023, 1, 1), schedule_interval=None)

go = ShortCircuitOperator(task_id="is_weekday", python_callable=lambda: False, dag=dag)
skipped_a = DummyOperator(task_id="skipped_a", dag=dag)
skipped_b = BashOperator(task_id="skipped_b", bash_command="echo never", dag=dag)
runs = PythonOperator(task_id="independent", python_callable=lambda: "ran", dag=dag)
sink_1 = DummyOperator(task_id="sink_1", dag=dag)
sink_2 = DummyOperator(task_id="sink_2", dag=dag)

go >> [skipped_a, skipped_b]
cross_downstream([runs], [sink_1, sink_2])
