"""``>>`` and ``<<`` for everything that can depend on something: tasks, groups, XComArgs."""

from __future__ import annotations


class DependencyOperators:
    """Bitshift operators in terms of ``set_upstream``/``set_downstream``; an edge label
    between two sides (``a >> Label("why") >> b``) is handed on to the label."""

    def __rshift__(self, other):
        from updraft.utils.edgemodifier import EdgeModifier

        if isinstance(other, EdgeModifier):
            return other._attach_source(self)
        self.set_downstream(other)
        return other

    def __lshift__(self, other):
        from updraft.utils.edgemodifier import EdgeModifier

        if isinstance(other, EdgeModifier):
            return other._attach_target(self)
        self.set_upstream(other)
        return other

    def __rrshift__(self, other):
        self.__lshift__(other)
        return self

    def __rlshift__(self, other):
        self.__rshift__(other)
        return self
