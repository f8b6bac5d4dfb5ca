"""Small Airflow names that Updraft has no module for: type aliases, enums and constants that
DAG files import for portability. Each does what Airflow's does."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypedDict

#: What ``airflow.__version__`` says: the Airflow API level the compat layer follows.
AIRFLOW_VERSION = "3.0.0+updraft"
AIRFLOW_V_3_0_PLUS = True
AIRFLOW_V_3_1_PLUS = False


class WeightRule(StrEnum):
    """How a task's priority weight is computed (Airflow's ``WeightRule``)."""

    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"
    ABSOLUTE = "absolute"

    @classmethod
    def is_valid(cls, rule: str) -> bool:
        return rule in cls.all_weight_rules()

    @classmethod
    def all_weight_rules(cls) -> set[str]:
        return {rule.value for rule in cls}


class Context(TypedDict, total=False):
    """The task context handed to ``execute`` and TaskFlow functions (a plain dict)."""

    conf: Any
    dag: Any
    dag_run: Any
    data_interval_end: Any
    data_interval_start: Any
    ds: str
    ds_nodash: str
    logical_date: Any
    macros: Any
    params: dict[str, Any]
    run_id: str
    task: Any
    task_instance: Any
    ti: Any
    ts: str
    var: Any
    conn: Any


@dataclass(frozen=True)
class ParsingContext:
    """Which DAG and task the parse is for; None means all of them (Updraft always parses the
    whole file, so DAG files that use it to skip DAGs build every DAG)."""

    dag_id: str | None = None
    task_id: str | None = None


def get_parsing_context() -> ParsingContext:
    """Airflow's ``get_parsing_context()``: the file is parsed for every DAG it builds."""
    return ParsingContext()
