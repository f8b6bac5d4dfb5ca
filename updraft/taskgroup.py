"""Task groups: named sets of tasks that prefix their ids and fold into one box in the UI."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from updraft.exceptions import DagDefinitionError, DuplicateTaskIdFound
from updraft.utils.dependency import DependencyOperators
from updraft.utils.ids import GROUP_KEY_REGEX, validate_key
from updraft.utils.thread_local import PerThreadAttributes

if TYPE_CHECKING:
    from updraft.dag import DAG


class TaskGroupContext(metaclass=PerThreadAttributes):
    """The stack of task groups opened with ``with TaskGroup(...)`` (per thread)."""

    __per_thread__ = {"_stack": list}

    @classmethod
    def push(cls, group: "TaskGroup") -> None:
        cls._stack.append(group)

    @classmethod
    def pop(cls) -> None:
        if cls._stack:
            cls._stack.pop()

    @classmethod
    def get_current(cls, dag: "DAG | None" = None) -> "TaskGroup | None":
        if cls._stack and (dag is None or cls._stack[-1].dag is dag):
            return cls._stack[-1]
        return dag.task_group if dag is not None else None


class TaskGroup(DependencyOperators):
    """A group of tasks (and groups). ``group >> task`` links the group's leaves to task."""

    def __init__(
        self,
        group_id: str | None,
        prefix_group_id: bool = True,
        parent_group: "TaskGroup | None" = None,
        dag: "DAG | None" = None,
        default_args: dict | None = None,
        tooltip: str = "",
        ui_color: str = "CornflowerBlue",
        ui_fgcolor: str = "#000",
        add_suffix_on_collision: bool = False,
        group_display_name: str | None = None,
        _root: bool = False,
    ) -> None:
        from updraft.dag import DagContext

        self.children: dict[str, Any] = {}
        self.prefix_group_id = prefix_group_id
        self.tooltip = tooltip
        self.ui_color = ui_color
        self.ui_fgcolor = ui_fgcolor
        self.default_args = copy.deepcopy(default_args or {})
        self.used_group_ids: set[str | None]
        if _root:
            self._group_id = None
            self.parent_group = None
            self.dag = dag
            self.used_group_ids = {None}
            self.group_display_name = ""
            return
        validate_key("group_id", group_id, regex=GROUP_KEY_REGEX)
        parent_group = parent_group or TaskGroupContext.get_current(
            dag or DagContext.get_current_dag())
        if parent_group is None:
            raise DagDefinitionError(f"TaskGroup {group_id!r} must be created inside a DAG "
                                     "or be given dag=")
        self.parent_group = parent_group
        self.dag = parent_group.dag
        self.used_group_ids = parent_group.used_group_ids
        self._group_id = group_id
        if self.group_id in self.used_group_ids:
            if not add_suffix_on_collision:
                raise DuplicateTaskIdFound(f"group_id {self.group_id!r} has already been added "
                                           f"to the DAG {self.dag.dag_id!r}")
            base = group_id
            suffix = 1
            while self.group_id in self.used_group_ids:
                self._group_id = f"{base}__{suffix}"
                suffix += 1
        self.used_group_ids.add(self.group_id)
        self.group_display_name = group_display_name or self._group_id or ""
        parent_group.add(self)

    @classmethod
    def create_root(cls, dag: "DAG") -> "TaskGroup":
        return cls(None, dag=dag, _root=True)

    @property
    def is_root(self) -> bool:
        return self._group_id is None

    @property
    def group_id(self) -> str | None:
        if self._group_id is None:
            return None
        if self.parent_group is not None and self.parent_group.prefix_group_id and \
                self.parent_group.group_id:
            return f"{self.parent_group.group_id}.{self._group_id}"
        return self._group_id

    @property
    def label(self) -> str | None:
        return self._group_id

    def child_id(self, label: str) -> str:
        """The full id of a child called ``label`` (prefixed with the group id if asked)."""
        if self.prefix_group_id and self.group_id:
            return f"{self.group_id}.{label}"
        return label

    def add(self, node: Any) -> None:
        """Add a task or a group to this group."""
        key = node.group_id if isinstance(node, TaskGroup) else node.task_id
        if key in self.children and self.children[key] is not node:
            raise DuplicateTaskIdFound(f"{key!r} has already been added to the group "
                                       f"{self.group_id!r}")
        if not isinstance(node, TaskGroup):
            node.task_group = self
        self.children[key] = node

    def __enter__(self) -> "TaskGroup":
        TaskGroupContext.push(self)
        return self

    def __exit__(self, *exc) -> None:
        TaskGroupContext.pop()

    def __repr__(self) -> str:
        return f"<TaskGroup: {self.group_id}>"

    def iter_tasks(self):
        """Every task in this group and its subgroups."""
        for child in self.children.values():
            if isinstance(child, TaskGroup):
                yield from child.iter_tasks()
            else:
                yield child

    def get_roots(self) -> list:
        """Tasks of the group with no upstream task inside the group."""
        ids = {t.task_id for t in self.iter_tasks()}
        return [t for t in self.iter_tasks() if not (t.upstream_task_ids & ids)]

    def get_leaves(self) -> list:
        """Tasks of the group with no downstream task inside it; a teardown leaf stands for
        the last non-teardown tasks before it (Airflow's rule)."""
        tasks = list(self.iter_tasks())
        ids = {t.task_id for t in tasks}
        task_dict = self.dag.task_dict

        def has_non_teardown_downstream(task, exclude: str) -> bool:
            return any(d != exclude and d in ids and not task_dict[d].is_teardown
                       for d in task.downstream_task_ids)

        def first_non_teardown(task):
            for up_id in sorted(task.upstream_task_ids):
                if up_id not in ids:
                    continue
                upstream = task_dict[up_id]
                if upstream.is_teardown:
                    yield from first_non_teardown(upstream)
                elif task.is_teardown and upstream.is_setup:
                    continue
                elif not has_non_teardown_downstream(upstream, exclude=task.task_id):
                    yield upstream

        leaves: list = []
        for task in tasks:
            if task.downstream_task_ids.isdisjoint(ids):
                found = [task] if not task.is_teardown else list(first_non_teardown(task))
                leaves.extend(t for t in found if t not in leaves)
        return leaves

    # Dependencies between groups and tasks.

    @property
    def roots(self) -> list:
        return self.get_roots()

    @property
    def leaves(self) -> list:
        return self.get_leaves()

    def set_downstream(self, other, edge_modifier=None) -> None:
        from updraft.operators.base import resolve_nodes

        for leaf in self.get_leaves():
            for target in resolve_nodes(other, as_upstream=False):
                leaf._relate(target, upstream=False, edge_modifier=edge_modifier)

    def set_upstream(self, other, edge_modifier=None) -> None:
        from updraft.operators.base import resolve_nodes

        for root in self.get_roots():
            for source in resolve_nodes(other, as_upstream=True):
                source._relate(root, upstream=False, edge_modifier=edge_modifier)

    @property
    def upstream_task_ids(self) -> set[str]:
        ids = {t.task_id for t in self.iter_tasks()}
        return {u for t in self.get_roots() for u in t.upstream_task_ids} - ids

    @property
    def downstream_task_ids(self) -> set[str]:
        ids = {t.task_id for t in self.iter_tasks()}
        return {d for t in self.get_leaves() for d in t.downstream_task_ids} - ids

    def to_json(self) -> dict:
        """The group tree for the serialized DAG and the graph view."""
        return {
            "group_id": self.group_id,
            "label": self.label,
            "tooltip": self.tooltip,
            "ui_color": self.ui_color,
            "prefix_group_id": self.prefix_group_id,
            "children": [c.to_json() if isinstance(c, TaskGroup) else c.task_id
                         for c in self.children.values()],
        }
