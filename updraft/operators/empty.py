"""EmptyOperator: a task that does nothing, for joins and structure."""

from __future__ import annotations

from updraft.operators.base import BaseOperator


class EmptyOperator(BaseOperator):
    """Does nothing; the scheduler marks it done without sending it to a worker."""

    ui_color = "#e8f7e4"
    inherits_from_empty_operator = True

    def execute(self, context):
        return None


DummyOperator = EmptyOperator
