"""Imports every route module so each registers its views on the API blueprint."""

from __future__ import annotations

from web.api import assets, dags, resources, runs, system, task_instances  # noqa: F401
