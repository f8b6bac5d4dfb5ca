"""BaseBranchOperator: subclass it and return the task id(s) to follow from
``choose_branch(context)``; every other direct downstream task is skipped."""

from __future__ import annotations

from typing import Any

from updraft.operators.base import BaseOperator
from updraft.operators.skip import SkipMixin


class BaseBranchOperator(BaseOperator, SkipMixin):
    """A task that picks which of its direct downstream tasks run."""

    inherits_from_skipmixin = True

    def choose_branch(self, context: dict) -> str | list[str] | None:
        """Return the task id, or ids (or group ids), to follow."""
        raise NotImplementedError(f"{type(self).__name__} must implement choose_branch(context)")

    def execute(self, context: dict) -> Any:
        branches = self.choose_branch(context)
        self.skip_all_except(context, branches)
        return branches


BranchMixIn = BaseBranchOperator
