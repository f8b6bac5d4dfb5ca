"""Skipping downstream tasks: what branch and short-circuit operators build on."""

from __future__ import annotations

from collections.abc import Iterable

from updraft.exceptions import UpdraftException


class SkipMixin:
    """Marks downstream task instances of the current run as skipped."""

    def skip(self, context, tasks: Iterable) -> None:
        """Skip ``tasks`` (operators or task ids) in the running DAG run."""
        ids = [t if isinstance(t, str) else t.task_id for t in tasks]
        if ids:
            context["ti"].skip_downstream(ids)

    def skip_all_except(self, context, branch_task_ids) -> None:
        """Skip every direct downstream task except the chosen branches (ids or group ids)."""
        dag = self.dag
        if branch_task_ids is None:
            chosen: set[str] = set()
        elif isinstance(branch_task_ids, str):
            chosen = {branch_task_ids}
        else:
            try:
                chosen = set(branch_task_ids)
            except TypeError:
                raise UpdraftException(
                    f"'branch_task_ids' must be either None, a task ID, or an Iterable of IDs, "
                    f"but got {type(branch_task_ids).__name__!r}.") from None
        groups = dag.get_task_group_dict()
        resolved: set[str] = set()
        invalid: set[str] = set()
        for branch in chosen:
            if not isinstance(branch, str):
                raise UpdraftException(
                    f"'branch_task_ids' must contain only string task ids, got {branch!r}")
            if branch in dag.task_dict:
                resolved.add(branch)
            elif branch in groups and branch is not None:
                resolved |= {t.task_id for t in groups[branch].get_roots()}
            else:
                invalid.add(branch)
        if invalid:
            raise UpdraftException(f"'branch_task_ids' must contain only valid task_ids. "
                                   f"Invalid tasks found: {sorted(invalid)}.")
        downstream = self.downstream_task_ids
        to_skip = sorted(d for d in downstream if d not in resolved)
        context["ti"].record_branch(sorted(resolved))
        self.skip(context, to_skip)
