"""Edge labels: ``a >> Label("when ready") >> b`` names the dependency in the graph view."""

from __future__ import annotations

from typing import Any


class EdgeModifier:
    """Sits between two sets of tasks in a ``>>`` chain and labels the edges it makes."""

    def __init__(self, label: str | None = None):
        self.label = label
        self._sources: list = []
        self._targets: list = []

    def __repr__(self) -> str:
        return f"Label({self.label!r})"

    def _attach_source(self, other: Any) -> "EdgeModifier":
        from updraft.operators.base import resolve_nodes

        self._sources.extend(resolve_nodes(other, as_upstream=True))
        return self

    def _attach_target(self, other: Any) -> "EdgeModifier":
        from updraft.operators.base import resolve_nodes

        self._targets.extend(resolve_nodes(other, as_upstream=False))
        return self

    def __rrshift__(self, other):
        return self._attach_source(other)

    def __rlshift__(self, other):
        return self._attach_target(other)

    def __rshift__(self, other):
        for source in self._sources:
            source.set_downstream(other, edge_modifier=self)
        return other

    def __lshift__(self, other):
        for target in self._targets:
            target.set_upstream(other, edge_modifier=self)
        return other

    def set_upstream(self, other, edge_modifier=None):
        self._attach_source(other)

    def set_downstream(self, other, edge_modifier=None):
        self.__rshift__(other)

    def add_edge_info(self, dag, upstream_id: str, downstream_id: str) -> None:
        dag.set_edge_info(upstream_id, downstream_id, {"label": self.label})


def Label(label: str) -> EdgeModifier:  # noqa: N802  (Airflow's name)
    """An edge label."""
    return EdgeModifier(label)
