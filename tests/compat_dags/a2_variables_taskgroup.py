"""Airflow 2 style: Variables (AIRFLOW_VAR_*), TaskGroup, chain, templated var access."""
import pendulum
from airflow import DAG
from airflow.models import Variable
from airflow.models.baseoperator import chain
from airflow.operators.bash import BashOperator
from airflow.operators.empty import EmptyOperator
from airflow.operators.python import PythonOperator
from airflow.utils.task_group import TaskGroup


def read_config():
    env = Variable.get("deploy_env")
    settings = Variable.get("compat_settings", deserialize_json=True)
    missing = Variable.get("not_there", default_var="fallback")
    return {"env": env, "batch": settings["batch"], "missing": missing}


with DAG(
    dag_id="a2_variables_taskgroup",
    start_date=pendulum.datetime(2023, 1, 1, tz="UTC"),
    schedule_interval=None,
    catchup=False,
) as dag:
    begin = EmptyOperator(task_id="begin")
    config = PythonOperator(task_id="read_config", python_callable=read_config)
    with TaskGroup("load", tooltip="load the tables") as load:
        for table in ("users", "orders"):
            BashOperator(task_id=f"load_{table}",
                         bash_command=f"echo {table} in {{{{ var.value.deploy_env }}}}")
    end = EmptyOperator(task_id="end")
    chain(begin, config, load, end)
