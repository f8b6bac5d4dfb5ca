"""Airflow 2 style: BranchPythonOperator, DummyOperator, a join with a trigger rule."""
from airflow import DAG
from airflow.operators.dummy import DummyOperator
from airflow.operators.python import BranchPythonOperator
from airflow.utils.dates import days_ago
from airflow.utils.trigger_rule import TriggerRule

args = {"owner": "airflow", "start_date": days_ago(2)}

dag = DAG(dag_id="a2_branching", default_args=args, schedule_interval=None, tags=["branch"])


def choose(**context):
    if context["dag_run"].conf.get("big"):
        return "big_path"
    return "small_path"


start = DummyOperator(task_id="start", dag=dag)
branch = BranchPythonOperator(task_id="branch", python_callable=choose, dag=dag)
big = DummyOperator(task_id="big_path", dag=dag)
small = DummyOperator(task_id="small_path", dag=dag)
join = DummyOperator(task_id="join", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, dag=dag)

start >> branch >> [big, small] >> join
