"""Params: typed, validated run settings; a run's conf overrides the defaults.

Trigger it with conf such as ``{"rows": 50, "mode": "full"}``; a value that breaks a schema
(``{"rows": 0}``) is refused before the run starts.
"""

from __future__ import annotations

from datetime import datetime

from updraft import DAG, Param, task

with DAG(
    "example_params",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    tags=["example"],
    params={
        "rows": Param(10, type="integer", minimum=1, maximum=1000,
                      description="How many rows to process"),
        "mode": Param("incremental", type="string", enum=["incremental", "full"]),
        "note": Param(None, type=["null", "string"], description="Optional note"),
    },
) as dag:

    @task
    def show(params=None) -> dict:
        print(f"processing {params['rows']} rows in {params['mode']} mode")
        if params["mode"] not in ("incremental", "full"):
            raise ValueError(params["mode"])
        return {"rows": params["rows"], "mode": params["mode"]}

    @task
    def templated_value(value: str) -> str:
        return value

    show() >> templated_value("{{ params.mode }}:{{ params.rows }}")
