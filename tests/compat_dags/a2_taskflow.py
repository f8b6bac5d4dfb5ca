"""Airflow 2 style TaskFlow: airflow.decorators, multiple_outputs, mapping, task groups."""
from datetime import datetime

from airflow.decorators import dag, task, task_group


@dag(schedule_interval=None, start_date=datetime(2023, 1, 1), catchup=False,
     tags=["taskflow"])
def a2_taskflow():
    @task(multiple_outputs=True)
    def extract():
        return {"source": "api", "factor": 10}

    @task
    def numbers():
        return [1, 2, 3]

    @task
    def scale(n, factor):
        return n * factor

    @task
    def total(values):
        return sum(values)

    @task_group
    def report(value):
        @task
        def fmt(v):
            return f"total={v}"

        @task
        def shout(text):
            return text.upper()

        return shout(fmt(value))

    data = extract()
    scaled = scale.partial(factor=data["factor"]).expand(n=numbers())
    report(total(scaled))


a2_taskflow()
