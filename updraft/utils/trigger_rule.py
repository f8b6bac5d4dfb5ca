"""Trigger rules, at Airflow's import path."""

from updraft.state import TriggerRule

__all__ = ["TriggerRule"]
