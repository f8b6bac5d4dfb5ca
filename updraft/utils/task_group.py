"""Task groups, at Airflow's import path."""

from updraft.taskgroup import TaskGroup

__all__ = ["TaskGroup"]
