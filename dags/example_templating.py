"""Jinja templating: ds, macros.ds_add and params in a BashOperator; templates_dict in Python."""

from __future__ import annotations

from datetime import datetime

from updraft import DAG
from updraft.operators.bash import BashOperator
from updraft.operators.python import PythonOperator

templated_command = """
{% for i in range(5) %}
    echo "{{ ds }}"
    echo "{{ macros.ds_add(ds, 7) }}"
    echo "{{ params.my_param }}"
{% endfor %}
"""


def show_templates(templates_dict=None, ds=None, **_):
    print(templates_dict)
    if templates_dict["today"] != ds:
        raise ValueError(f"templates_dict was not rendered: {templates_dict}")
    return templates_dict["next_week"]


with DAG(
    "example_templating",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
) as dag:
    templated = BashOperator(
        task_id="templated",
        bash_command=templated_command,
        params={"my_param": "Parameter I passed in"},
    )

    python_templates = PythonOperator(
        task_id="python_templates",
        python_callable=show_templates,
        templates_dict={"today": "{{ ds }}", "next_week": "{{ macros.ds_add(ds, 7) }}",
                        "run": "{{ run_id }}"},
    )

    templated >> python_templates
