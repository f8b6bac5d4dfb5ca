"""The DAG: a set of tasks, their dependencies, a schedule and settings.

A DAG is a plain object built by a DAG file; nothing here touches the store. ``DAG.test()``
runs it once, here and now, through :mod:`updraft.local_run`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
import types
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from updraft.exceptions import DagCycleException, DagDefinitionError, DuplicateTaskIdFound
from updraft.params import ParamsDict
from updraft.utils.ids import validate_key
from updraft.utils.thread_local import PerThreadAttributes

if TYPE_CHECKING:
    from updraft.operators.base import BaseOperator
    from updraft.taskgroup import TaskGroup


class _NotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _NotSet()


class DagContext(metaclass=PerThreadAttributes):
    """The stack of DAGs opened with ``with DAG(...)``; tasks join the innermost one.

    ``_stack`` and ``_created`` (every DAG created while a file is being imported, so the
    DagBag finds DAGs built inside a ``with`` block but never assigned to a module-level
    name) are per thread.
    """

    __per_thread__ = {"_stack": list, "_created": lambda: None}

    @classmethod
    def push(cls, dag: "DAG") -> None:
        cls._stack.append(dag)

    @classmethod
    def pop(cls) -> "DAG | None":
        return cls._stack.pop() if cls._stack else None

    @classmethod
    def get_current_dag(cls) -> "DAG | None":
        return cls._stack[-1] if cls._stack else None

    @classmethod
    def register(cls, dag: "DAG") -> None:
        if cls._created is not None:
            cls._created.append(dag)


def _caller_file(depth: int = 2) -> str:
    """The file of the first frame outside the updraft package (the DAG file)."""
    frame = sys._getframe(depth)
    while frame is not None:
        filename = frame.f_code.co_filename
        module = frame.f_globals.get("__name__", "")
        if not (module == "updraft" or module.startswith(("updraft.", "airflow."))) or \
                module.startswith("updraft.example"):
            return filename
        frame = frame.f_back
    return "<unknown>"


class DAG:
    """A directed acyclic graph of tasks, with Airflow's constructor arguments."""

    def __init__(
        self,
        dag_id: str,
        description: str | None = None,
        schedule: Any = NOTSET,
        schedule_interval: Any = NOTSET,
        timetable: Any = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        full_filepath: str | None = None,
        template_searchpath: str | Iterable[str] | None = None,
        template_undefined: type | None = None,
        user_defined_macros: dict | None = None,
        user_defined_filters: dict | None = None,
        default_args: dict | None = None,
        concurrency: int | None = None,
        max_active_tasks: int | None = None,
        max_active_runs: int | None = None,
        max_consecutive_failed_dag_runs: int = 0,
        dagrun_timeout: timedelta | None = None,
        sla_miss_callback: Callable | None = None,
        default_view: str | None = None,
        orientation: str = "LR",
        catchup: bool | None = None,
        on_success_callback: Callable | list[Callable] | None = None,
        on_failure_callback: Callable | list[Callable] | None = None,
        doc_md: str | None = None,
        params: dict | None = None,
        access_control: dict | None = None,
        is_paused_upon_creation: bool | None = None,
        jinja_environment_kwargs: dict | None = None,
        render_template_as_native_obj: bool = False,
        tags: Iterable[str] | None = None,
        owner_links: dict | None = None,
        auto_register: bool = True,
        fail_stop: bool = False,
        dag_display_name: str | None = None,
        asset_batch_size: int = 1,
    ) -> None:
        from updraft.config import conf
        from updraft.schedules import create_timetable, coerce_datetime, parse_timezone

        self.dag_id = validate_key("dag_id", dag_id)
        self.description = description
        self.default_args = copy.deepcopy(dict(default_args or {}))
        self.fileloc = full_filepath or _caller_file()
        self.relative_fileloc: str | None = None

        tz_source = start_date or self.default_args.get("start_date")
        tz = getattr(tz_source, "tzinfo", None)
        self.timezone = parse_timezone(tz if tz is not None else
                                       conf.get("core", "default_timezone"))
        start = start_date if start_date is not None else self.default_args.get("start_date")
        end = end_date if end_date is not None else self.default_args.get("end_date")
        self.start_date = coerce_datetime(start, self.timezone) if start is not None else None
        self.end_date = coerce_datetime(end, self.timezone) if end is not None else None
        if self.start_date is not None:
            self.default_args["start_date"] = self.start_date
        if self.end_date is not None:
            self.default_args["end_date"] = self.end_date

        if schedule is not NOTSET and schedule_interval is not NOTSET:
            raise DagDefinitionError(f"DAG {dag_id!r}: give schedule or schedule_interval, "
                                     "not both")
        if timetable is not None:
            chosen = timetable
        elif schedule is not NOTSET:
            chosen = schedule
        elif schedule_interval is not NOTSET:
            chosen = schedule_interval
        else:
            chosen = None
        self.schedule = chosen
        try:
            self.timetable = create_timetable(chosen, self.timezone)
        except ValueError as exc:
            raise DagDefinitionError(f"DAG {dag_id!r}: {exc}") from None
        self.schedule_interval = chosen

        self.template_searchpath = ([template_searchpath] if isinstance(template_searchpath, str)
                                    else list(template_searchpath or []))
        self.template_undefined = template_undefined
        self.user_defined_macros = user_defined_macros
        self.user_defined_filters = user_defined_filters
        self.jinja_environment_kwargs = jinja_environment_kwargs
        self.render_template_as_native_obj = render_template_as_native_obj

        self.max_active_tasks = (max_active_tasks or concurrency or
                                 conf.getint("core", "max_active_tasks_per_dag"))
        self.max_active_runs = max_active_runs or conf.getint("core", "max_active_runs_per_dag")
        self.max_consecutive_failed_dag_runs = max_consecutive_failed_dag_runs
        self.dagrun_timeout = dagrun_timeout
        self.sla_miss_callback = sla_miss_callback
        self.default_view = default_view
        self.orientation = orientation
        self.catchup = (conf.getboolean("scheduler", "catchup_by_default")
                        if catchup is None else bool(catchup))
        self.on_success_callback = on_success_callback
        self.on_failure_callback = on_failure_callback
        self.doc_md = doc_md
        self.access_control = access_control
        self.is_paused_upon_creation = is_paused_upon_creation
        self.tags = sorted(set(tags or []))
        for tag in self.tags:
            if not isinstance(tag, str) or len(tag) > 100:
                raise DagDefinitionError(f"DAG {dag_id!r}: tag {tag!r} must be a string of at "
                                         "most 100 characters")
        self.owner_links = owner_links or {}
        self.fail_stop = fail_stop
        self.dag_display_name = dag_display_name or dag_id
        # Asset-triggered runs (ADR 10): events are cut into batches in the order they were
        # recorded; a batch ends once the asset condition holds on it and it has at least
        # this many events. Each batch is one run; an unfinished batch waits for events.
        if not isinstance(asset_batch_size, int) or isinstance(asset_batch_size, bool) or \
                asset_batch_size < 1:
            raise DagDefinitionError(f"DAG {dag_id!r}: asset_batch_size must be a whole number "
                                     f"of at least 1, got {asset_batch_size!r}")
        self.asset_batch_size = asset_batch_size

        merged_params = dict(self.default_args.pop("params", None) or {})
        merged_params.update(params or {})
        self.params = ParamsDict(merged_params)

        self.task_dict: dict[str, BaseOperator] = {}
        self.edge_info: dict[tuple[str, str], dict] = {}
        self._task_group: TaskGroup | None = None
        self.auto_register = auto_register
        from updraft.taskgroup import TaskGroup

        self._task_group = TaskGroup.create_root(self)
        if auto_register:
            DagContext.register(self)

    # -- context manager -------------------------------------------------------------------

    def __enter__(self) -> "DAG":
        DagContext.push(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        DagContext.pop()

    def __repr__(self) -> str:
        return f"<DAG: {self.dag_id}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DAG) and other.dag_id == self.dag_id and \
            set(other.task_dict) == set(self.task_dict)

    def __hash__(self) -> int:
        return hash(self.dag_id)

    # -- tasks -----------------------------------------------------------------------------

    @property
    def task_group(self) -> "TaskGroup":
        return self._task_group

    @property
    def tasks(self) -> list["BaseOperator"]:
        return list(self.task_dict.values())

    @property
    def task_ids(self) -> list[str]:
        return list(self.task_dict)

    @property
    def roots(self) -> list["BaseOperator"]:
        return [t for t in self.tasks if not t.upstream_task_ids]

    @property
    def leaves(self) -> list["BaseOperator"]:
        return [t for t in self.tasks if not t.downstream_task_ids]

    @property
    def owner(self) -> str:
        return ", ".join(sorted({t.owner for t in self.tasks})) if self.tasks else \
            str(self.default_args.get("owner", "updraft"))

    @property
    def folder(self) -> str:
        import os

        return os.path.dirname(self.fileloc)

    @property
    def timetable_summary(self) -> str:
        return self.timetable.summary

    def has_task(self, task_id: str) -> bool:
        return task_id in self.task_dict

    def get_task(self, task_id: str) -> "BaseOperator":
        """Return the task with this id, or raise TaskNotFound."""
        from updraft.exceptions import TaskNotFound

        try:
            return self.task_dict[task_id]
        except KeyError:
            raise TaskNotFound(f"Task {task_id} not found in DAG {self.dag_id}") from None

    def add_task(self, task: "BaseOperator") -> None:
        """Add ``task`` to this DAG (done for you when a task is created inside the DAG)."""
        from updraft.taskgroup import TaskGroupContext

        if task.task_id in self.task_dict and self.task_dict[task.task_id] is not task:
            raise DuplicateTaskIdFound(f"Task id {task.task_id!r} has already been added to "
                                       f"the DAG {self.dag_id!r}")
        if task.task_id in self.task_dict:
            return
        self.task_dict[task.task_id] = task
        if task.start_date is None and self.start_date is not None:
            task.start_date = self.start_date
        if task.end_date is None and self.end_date is not None:
            task.end_date = self.end_date
        group = task.task_group or TaskGroupContext.get_current(self) or self.task_group
        group.add(task)

    def add_tasks(self, tasks: Iterable["BaseOperator"]) -> None:
        for task in tasks:
            task.dag = self

    def set_edge_info(self, upstream_task_id: str, downstream_task_id: str, info: dict) -> None:
        """Attach a label (or other info) to an edge, for the graph view."""
        self.edge_info[(upstream_task_id, downstream_task_id)] = dict(info)

    def get_edge_info(self, upstream_task_id: str, downstream_task_id: str) -> dict:
        return self.edge_info.get((upstream_task_id, downstream_task_id), {})

    # -- structure -------------------------------------------------------------------------

    def topological_sort(self) -> list["BaseOperator"]:
        """Tasks in an order where every task comes after all its upstream tasks."""
        order: list[str] = []
        indegree = {tid: len(t.upstream_task_ids & self.task_dict.keys())
                    for tid, t in self.task_dict.items()}
        ready = [tid for tid in self.task_dict if indegree[tid] == 0]
        while ready:
            tid = ready.pop(0)
            order.append(tid)
            for down in sorted(self.task_dict[tid].downstream_task_ids):
                if down in indegree:
                    indegree[down] -= 1
                    if indegree[down] == 0:
                        ready.append(down)
        if len(order) != len(self.task_dict):
            raise DagCycleException(f"Cycle detected in DAG {self.dag_id!r}: "
                                    f"{' >> '.join(self.find_cycle())}")
        return [self.task_dict[tid] for tid in order]

    def find_cycle(self) -> list[str]:
        """Return the task ids of one dependency cycle (first id repeated at the end), or []."""
        white, grey, black = 0, 1, 2
        color = dict.fromkeys(self.task_dict, white)
        parent: dict[str, str] = {}
        for start in sorted(self.task_dict):
            if color[start] != white:
                continue
            stack = [(start, iter(sorted(self.task_dict[start].downstream_task_ids)))]
            color[start] = grey
            while stack:
                node, children = stack[-1]
                for child in children:
                    if child not in color:
                        continue
                    if color[child] == grey:
                        cycle = [child]
                        cur = node
                        while cur != child:
                            cycle.append(cur)
                            cur = parent[cur]
                        cycle.append(child)
                        return list(reversed(cycle))
                    if color[child] == white:
                        parent[child] = node
                        color[child] = grey
                        stack.append((child, iter(sorted(self.task_dict[child]
                                                         .downstream_task_ids))))
                        break
                else:
                    color[node] = black
                    stack.pop()
        return []

    def check_cycle(self) -> None:
        """Raise DagCycleException naming the cycle if the dependencies have one."""
        cycle = self.find_cycle()
        if cycle:
            raise DagCycleException(f"Cycle detected in DAG {self.dag_id!r}: "
                                    f"{' >> '.join(cycle)}")

    def validate(self) -> None:
        """Check the whole DAG: cycles, dangling dependencies, dates, params defaults."""
        self.check_cycle()
        for task in self.tasks:
            for rel in task.upstream_task_ids | task.downstream_task_ids:
                if rel not in self.task_dict:
                    raise DagDefinitionError(f"Task {task.task_id!r} of DAG {self.dag_id!r} "
                                             f"depends on {rel!r}, which is not in the DAG")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise DagDefinitionError(f"DAG {self.dag_id!r}: end_date {self.end_date} is before "
                                     f"start_date {self.start_date}")
        self.params.validate_defaults(self.dag_id)

    def get_task_group_dict(self) -> dict[str, "TaskGroup"]:
        """Every task group of this DAG by group id (the root group has id None)."""
        result = {}

        def walk(group):
            result[group.group_id] = group
            for child in group.children.values():
                if hasattr(child, "children"):
                    walk(child)

        walk(self.task_group)
        return result

    def partial_subset(self, task_ids_or_regex, include_downstream: bool = False,
                       include_upstream: bool = True, include_direct_upstream: bool = False):
        """Return the ids of the tasks matching, plus their relatives as asked."""
        import re

        if isinstance(task_ids_or_regex, str):
            pattern = re.compile(task_ids_or_regex)
            matched = {t for t in self.task_dict if pattern.search(t)}
        else:
            matched = set(task_ids_or_regex)
        result = set(matched)
        for tid in matched:
            task = self.task_dict[tid]
            if include_downstream:
                result |= task.get_flat_relative_ids(upstream=False)
            if include_upstream:
                result |= task.get_flat_relative_ids(upstream=True)
            elif include_direct_upstream:
                result |= task.upstream_task_ids
        return result

    def tree_view(self) -> str:
        """The DAG as an indented text tree, roots first."""
        lines: list[str] = []

        def walk(task, depth):
            lines.append("    " * depth + f"<Task({task.task_type}): {task.task_id}>")
            for child in sorted(task.downstream_task_ids):
                walk(self.task_dict[child], depth + 1)

        for root in sorted(self.roots, key=lambda t: t.task_id):
            walk(root, 0)
        return "\n".join(lines)

    # -- running ---------------------------------------------------------------------------

    def test(self, logical_date: datetime | str | None = None, run_conf: dict | None = None,
             conf: dict | None = None, execution_date: datetime | None = None,
             use_executor: bool = False, mark_success_pattern: Any = None,
             session: Any = None, progress: Callable | None = None, **_ignored):
        """Run this DAG once, here and now, task after task; return the finished DagRun."""
        from updraft.local_run import run_dag_locally

        return run_dag_locally(self, logical_date=logical_date or execution_date,
                               conf=run_conf if run_conf is not None else conf,
                               progress=progress)

    def get_run_dates(self, start_date, end_date=None) -> list[datetime]:
        """Logical dates of the scheduled runs between two dates (inclusive)."""
        from updraft.schedules import coerce_datetime

        end = coerce_datetime(end_date, self.timezone) if end_date else coerce_datetime(
            start_date, self.timezone)
        return [info.logical_date for info in self.timetable.iter_dagrun_infos_between(
            coerce_datetime(start_date, self.timezone), end)]


def dag(dag_id: str | Callable | None = None, **dag_kwargs):
    """Decorate a function that builds tasks; calling it returns the DAG.

    Usable as ``@dag``, ``@dag()`` or ``@dag(dag_id="x", schedule=...)``. The function's
    parameters become DAG params (their defaults the param defaults).
    """
    if callable(dag_id):
        return dag()(dag_id)

    def wrapper(func: Callable) -> Callable:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def factory(*args, **kwargs) -> DAG:
            from updraft.xcom_arg import DagParamArg

            bound = signature.bind_partial(*args, **kwargs)
            params = dict(dag_kwargs.get("params") or {})
            for name, parameter in signature.parameters.items():
                if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                if name in bound.arguments:
                    params[name] = bound.arguments[name]
                elif parameter.default is not parameter.empty and name not in params:
                    params[name] = parameter.default
            options = {**dag_kwargs, "params": params}
            options.setdefault("doc_md", func.__doc__)
            options.setdefault("full_filepath", inspect.getsourcefile(func) or _caller_file())
            with DAG(dag_id or func.__name__, **options) as new_dag:
                call_args = {name: DagParamArg(new_dag, name) for name in signature.parameters
                             if signature.parameters[name].kind not in
                             (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
                func(**call_args)
            new_dag.validate()
            return new_dag

        factory.dag_id = dag_id or func.__name__  # type: ignore[attr-defined]
        return factory

    return wrapper


class _DagModule(types.ModuleType):
    """This module, callable as the ``@dag`` decorator.

    Importing ``updraft.dag`` binds the submodule to the name ``dag`` of the ``updraft``
    package, so ``from updraft import DAG, dag`` finds the module, not the decorator; making
    the module callable keeps that documented import working in any order.
    """

    def __call__(self, *args, **kwargs):
        return dag(*args, **kwargs)


sys.modules[__name__].__class__ = _DagModule
