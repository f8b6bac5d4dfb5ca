"""Imports every route module so each registers its views on the API blueprint."""

from __future__ import annotations

from web.api import (  # noqa: F401
    assets,
    bundles,
    dags,
    resources,
    runs,
    system,
    task_instances,
)
