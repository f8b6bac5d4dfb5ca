"""Setup and teardown tasks used as context managers: ``with setup >> teardown: work()``."""

from __future__ import annotations

from updraft.utils.thread_local import PerThreadAttributes


class SetupTeardownContext(metaclass=PerThreadAttributes):
    """Collects the tasks created inside ``with <setup or teardown task>:`` blocks."""

    __per_thread__ = {"_stack": list}

    @classmethod
    def push(cls, task) -> None:
        cls._stack.append((task, []))

    @classmethod
    def on_task_created(cls, task) -> None:
        for _owner, created in cls._stack:
            created.append(task)

    @classmethod
    def pop(cls, task) -> None:
        if not cls._stack:
            return
        owner, created = cls._stack.pop()
        created = [t for t in created if t is not owner]
        if not created:
            return
        ids = {t.task_id for t in created}
        roots = [t for t in created if not (t.upstream_task_ids & ids)]
        leaves = [t for t in created if not (t.downstream_task_ids & ids)]
        if owner.is_teardown:
            teardowns = [owner]
            setups = [owner.dag.task_dict[u] for u in owner.upstream_task_ids
                      if owner.dag.task_dict[u].is_setup]
        else:
            setups = [owner]
            teardowns = [owner.dag.task_dict[d] for d in owner.downstream_task_ids
                         if owner.dag.task_dict[d].is_teardown]
        for setup in setups:
            for root in roots:
                setup.set_downstream(root)
        for teardown in teardowns:
            for leaf in leaves:
                leaf.set_downstream(teardown)
