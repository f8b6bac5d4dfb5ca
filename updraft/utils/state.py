"""States, at Airflow's import path."""

from updraft.state import DagRunState, DagRunType, TaskInstanceState

State = TaskInstanceState

__all__ = ["DagRunState", "DagRunType", "State", "TaskInstanceState"]
