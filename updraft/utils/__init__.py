"""Helpers with Airflow's module names: task_group, trigger_rule, dates, timezone, state."""
