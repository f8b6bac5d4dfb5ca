"""BaseOperator: what every task is, and the ways tasks depend on each other.

An operator author writes ``execute(self, context)``; everything else (retries, templates,
dependencies, default_args) comes from here. Operators are plain objects: the store and the
scheduler see them only through their JSON form (``updraft.serialization``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from updraft.dag import DagContext
from updraft.exceptions import DagDefinitionError, UpdraftException
from updraft.state import TriggerRule
from updraft.taskgroup import TaskGroup, TaskGroupContext
from updraft.utils.dependency import DependencyOperators
from updraft.utils.ids import validate_key

if TYPE_CHECKING:
    from updraft.dag import DAG

WEIGHT_RULES = ("downstream", "upstream", "absolute")
DEFAULT_OWNER = "updraft"
DEFAULT_QUEUE = "default"
DEFAULT_POOL = "default_pool"


class DAGNode(DependencyOperators):
    """Dependencies and group membership shared by operators and mapped operators."""

    task_id: str
    _dag: "DAG | None"
    task_group: TaskGroup | None
    is_setup: bool = False
    is_teardown: bool = False
    _on_failure_fail_dagrun: bool = False

    def _init_relations(self) -> None:
        self.upstream_task_ids: set[str] = set()
        self.downstream_task_ids: set[str] = set()

    # -- the DAG this node belongs to ------------------------------------------------------

    @property
    def dag(self) -> "DAG":
        if self._dag is None:
            raise DagDefinitionError(f"Operator {self.task_id!r} has not been assigned to a DAG")
        return self._dag

    @dag.setter
    def dag(self, dag: "DAG | None") -> None:
        if dag is None:
            return
        if self._dag is not None and self._dag is not dag:
            raise DagDefinitionError(f"Tried to add task {self.task_id!r} to DAG "
                                     f"{dag.dag_id!r}, but it already belongs to DAG "
                                     f"{self._dag.dag_id!r}")
        self._dag = dag
        dag.add_task(self)

    @property
    def has_dag(self) -> bool:
        return self._dag is not None

    @property
    def dag_id(self) -> str:
        return self._dag.dag_id if self._dag is not None else f"adhoc_{self.owner}"

    @property
    def label(self) -> str:
        group = self.task_group
        if group is not None and group.group_id and group.prefix_group_id and \
                self.task_id.startswith(group.group_id + "."):
            return self.task_id[len(group.group_id) + 1:]
        return self.task_id

    # -- relationships ---------------------------------------------------------------------

    @property
    def upstream_list(self) -> list["DAGNode"]:
        return [self.dag.task_dict[t] for t in sorted(self.upstream_task_ids)]

    @property
    def downstream_list(self) -> list["DAGNode"]:
        return [self.dag.task_dict[t] for t in sorted(self.downstream_task_ids)]

    @property
    def roots(self) -> list["DAGNode"]:
        return [self]

    @property
    def leaves(self) -> list["DAGNode"]:
        return [self]

    def _relate(self, other: "DAGNode", upstream: bool, edge_modifier=None) -> None:
        """Make ``other`` upstream (or downstream) of self, joining their DAGs."""
        if other is self:
            raise DagDefinitionError(f"Task {self.task_id!r} cannot depend on itself")
        if self._dag is None and other._dag is None:
            raise DagDefinitionError(
                f"Tried to set relationships between tasks {self.task_id!r} and "
                f"{other.task_id!r} that do not have a DAG; create them inside a DAG")
        if self._dag is not None and other._dag is not None and self._dag is not other._dag:
            raise DagDefinitionError(
                f"Tried to set relationships between tasks in more than one DAG: "
                f"{self.task_id!r} in {self._dag.dag_id!r}, {other.task_id!r} in "
                f"{other._dag.dag_id!r}")
        if self._dag is None:
            self.dag = other._dag
        if other._dag is None:
            other.dag = self._dag
        if upstream:
            self.upstream_task_ids.add(other.task_id)
            other.downstream_task_ids.add(self.task_id)
            source, target = other, self
        else:
            self.downstream_task_ids.add(other.task_id)
            other.upstream_task_ids.add(self.task_id)
            source, target = self, other
        if edge_modifier is not None:
            edge_modifier.add_edge_info(self.dag, source.task_id, target.task_id)

    def _set_relatives(self, other, upstream: bool, edge_modifier=None) -> None:
        for node in resolve_nodes(other, as_upstream=upstream):
            self._relate(node, upstream=upstream, edge_modifier=edge_modifier)

    def set_upstream(self, other, edge_modifier=None) -> None:
        """Make ``other`` (a task, list, group or XComArg) run before this task."""
        self._set_relatives(other, upstream=True, edge_modifier=edge_modifier)

    def set_downstream(self, other, edge_modifier=None) -> None:
        """Make ``other`` (a task, list, group or XComArg) run after this task."""
        self._set_relatives(other, upstream=False, edge_modifier=edge_modifier)

    def get_flat_relative_ids(self, upstream: bool = False) -> set[str]:
        """Every task id upstream (or downstream) of this one, at any depth."""
        dag = self.dag
        result: set[str] = set()
        todo = [self]
        while todo:
            node = todo.pop()
            ids = node.upstream_task_ids if upstream else node.downstream_task_ids
            for tid in ids - result:
                result.add(tid)
                todo.append(dag.task_dict[tid])
        return result

    def get_direct_relative_ids(self, upstream: bool = False) -> set[str]:
        return set(self.upstream_task_ids if upstream else self.downstream_task_ids)

    # -- setup and teardown ----------------------------------------------------------------

    def as_setup(self):
        """Mark this task a setup task."""
        self.is_setup = True
        return self

    def as_teardown(self, *, setups=None, on_failure_fail_dagrun: bool | None = None):
        """Mark this task a teardown task, run after ``setups`` and the work between."""
        self.is_teardown = True
        self.trigger_rule = TriggerRule.ALL_DONE_SETUP_SUCCESS
        if on_failure_fail_dagrun is not None:
            self._on_failure_fail_dagrun = on_failure_fail_dagrun
        if setups is not None:
            for setup in resolve_nodes(setups, as_upstream=True):
                setup.as_setup()
                self._relate(setup, upstream=True)
        return self

    @property
    def on_failure_fail_dagrun(self) -> bool:
        return self._on_failure_fail_dagrun

    def __enter__(self):
        from updraft.setup_teardown import SetupTeardownContext

        if not self.is_setup and not self.is_teardown:
            raise UpdraftException("Only setup or teardown tasks can be used as context "
                                   "managers.")
        SetupTeardownContext.push(self)
        return self

    def __exit__(self, *exc):
        from updraft.setup_teardown import SetupTeardownContext

        SetupTeardownContext.pop(self)

    def iter_mapped_dependencies(self):
        """XComArgs this node's arguments refer to (and so depend on)."""
        return iter(())


def resolve_nodes(other: Any, as_upstream: bool) -> list[DAGNode]:
    """Flatten a task, list, group or XComArg into the tasks a relationship applies to.

    ``as_upstream`` tells which side ``other`` is on: a group upstream of something acts
    through its leaves, a group downstream through its roots.
    """
    from updraft.xcom_arg import XComArg

    if isinstance(other, DAGNode):
        return [other]
    if isinstance(other, XComArg):
        return list(other.operators)
    if isinstance(other, TaskGroup):
        return list(other.get_leaves() if as_upstream else other.get_roots())
    if isinstance(other, (list, tuple, set, frozenset)):
        nodes: list[DAGNode] = []
        for item in other:
            for node in resolve_nodes(item, as_upstream):
                if node not in nodes:
                    nodes.append(node)
        return nodes
    raise TypeError(f"Relationships can only be set between operators, task groups, XComArgs "
                    f"or lists of them; got {type(other).__name__}: {other!r}")


def _merge_default_args(dag, group, explicit: dict | None) -> dict:
    merged: dict = {}
    if dag is not None:
        merged.update(dag.default_args)
    chain_groups = []
    while group is not None:
        chain_groups.append(group)
        group = group.parent_group
    for g in reversed(chain_groups):
        merged.update(g.default_args)
    merged.update(explicit or {})
    return merged


class BaseOperatorMeta(type):
    """Wraps each operator's ``__init__`` so default_args fill the arguments not given."""

    def __new__(mcs, name, bases, namespace, **kwargs):
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        init = namespace.get("__init__")
        if init is not None and not getattr(init, "_updraft_wrapped", False):
            cls.__init__ = mcs._apply_defaults(init)
        return cls

    @staticmethod
    def _apply_defaults(init):
        signature = inspect.signature(init)
        names = [p.name for p in signature.parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
        required = [p.name for p in signature.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                           p.KEYWORD_ONLY)
                    and p.name not in ("self",)]
        accepts_var_kw = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())

        @functools.wraps(init)
        def wrapper(self, *args, **kwargs):
            if args:
                raise DagDefinitionError(f"Use keyword arguments when initializing operators "
                                         f"({type(self).__name__} got {args!r})")
            dag = kwargs.get("dag") or DagContext.get_current_dag()
            group = kwargs.get("task_group") or TaskGroupContext.get_current(dag)
            default_args = kwargs.pop("default_args", None)
            if not getattr(self, "_default_args_merged", False):
                default_args = _merge_default_args(dag, group, default_args)
                self._default_args_merged = True
            default_args = default_args or {}
            for name in names:
                if name not in kwargs and name in default_args and name != "task_id":
                    kwargs[name] = default_args[name]
            missing = [n for n in required if n not in kwargs]
            if missing:
                task_id = kwargs.get("task_id", "?")
                raise DagDefinitionError(f"{type(self).__name__} (task_id {task_id!r}) is "
                                         f"missing required argument(s): {', '.join(missing)}")
            if accepts_var_kw or "default_args" in names:
                kwargs["default_args"] = default_args
            init(self, **kwargs)
            # As Airflow: an XComArg in a templated field makes its task an upstream.
            if getattr(self, "_dag", None) is not None:
                self.set_xcomargs_dependencies()

        wrapper._updraft_wrapped = True  # type: ignore[attr-defined]
        wrapper._updraft_original = init  # type: ignore[attr-defined]
        return wrapper


class BaseOperator(DAGNode, metaclass=BaseOperatorMeta):
    """The base of every task. Subclasses implement ``execute(context)``."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()
    template_fields_renderers: dict[str, str] = {}
    ui_color: str = "#fff"
    ui_fgcolor: str = "#000"
    custom_operator_name: str | None = None
    shallow_copy_attrs: Sequence[str] = ()
    #: Sensors set this; the runner then handles reschedules.
    is_sensor: bool = False
    #: Deferral before any of the task's code runs (Airflow's ``start_from_trigger``): the
    #: try defers at once with ``start_trigger_args`` (ADR 11).
    start_from_trigger: bool = False
    start_trigger_args: Any = None

    def __init__(
        self,
        task_id: str,
        owner: str = DEFAULT_OWNER,
        email: str | Iterable[str] | None = None,
        email_on_retry: bool = True,
        email_on_failure: bool = True,
        retries: int | None = 0,
        retry_delay: timedelta | float = timedelta(seconds=300),
        retry_exponential_backoff: bool = False,
        max_retry_delay: timedelta | float | None = None,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        depends_on_past: bool = False,
        ignore_first_depends_on_past: bool = True,
        wait_for_past_depends_before_skipping: bool = False,
        wait_for_downstream: bool = False,
        dag: "DAG | None" = None,
        params: dict | None = None,
        default_args: dict | None = None,
        priority_weight: int = 1,
        weight_rule: str = "downstream",
        queue: str = DEFAULT_QUEUE,
        pool: str | None = None,
        pool_slots: int = 1,
        sla: timedelta | None = None,
        execution_timeout: timedelta | float | None = None,
        on_execute_callback: Callable | list[Callable] | None = None,
        on_failure_callback: Callable | list[Callable] | None = None,
        on_success_callback: Callable | list[Callable] | None = None,
        on_retry_callback: Callable | list[Callable] | None = None,
        on_skipped_callback: Callable | list[Callable] | None = None,
        pre_execute: Callable | None = None,
        post_execute: Callable | None = None,
        trigger_rule: str = TriggerRule.ALL_SUCCESS,
        resources: dict | None = None,
        run_as_user: str | None = None,
        task_concurrency: int | None = None,
        max_active_tis_per_dag: int | None = None,
        max_active_tis_per_dagrun: int | None = None,
        executor_config: dict | None = None,
        do_xcom_push: bool = True,
        multiple_outputs: bool = False,
        inlets: Any = None,
        outlets: Any = None,
        task_group: TaskGroup | None = None,
        doc: str | None = None,
        doc_md: str | None = None,
        doc_json: str | None = None,
        doc_yaml: str | None = None,
        doc_rst: str | None = None,
        task_display_name: str | None = None,
        logger_name: str | None = None,
        allow_nested_operators: bool = True,
        executor: str | None = None,
        map_index_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        from updraft.params import ParamsDict

        kwargs.pop("default_args", None)
        # Old Airflow arguments that have no effect here but must not break a DAG file.
        for harmless in ("provide_context", "weight_rule_class"):
            kwargs.pop(harmless, None)
        # Deferral before any code runs (ADR 11), as Airflow's BaseOperator takes it.
        if "start_from_trigger" in kwargs:
            self.start_from_trigger = bool(kwargs.pop("start_from_trigger"))
        if "start_trigger_args" in kwargs:
            self.start_trigger_args = kwargs.pop("start_trigger_args")
        if kwargs:  # Airflow arguments Updraft lacks get a precise "not supported by Updraft"
            from updraft.compat.kwargs import check_airflow_kwargs

            check_airflow_kwargs(type(self).__name__, task_id, kwargs)
        if kwargs:
            raise DagDefinitionError(
                f"Invalid arguments were passed to {type(self).__name__} (task_id: {task_id}). "
                f"Invalid arguments were:\n**kwargs: {kwargs}")
        self._init_relations()
        self._dag = None
        dag = dag or DagContext.get_current_dag()
        group = task_group or TaskGroupContext.get_current(dag)
        validate_key("task_id", task_id)
        self.task_id = group.child_id(task_id) if group is not None else task_id
        validate_key("task_id", self.task_id)
        self.task_group = None
        self.owner = owner
        self.email = email
        self.email_on_retry = email_on_retry
        self.email_on_failure = email_on_failure
        self.retries = int(retries or 0)
        if self.retries < 0:
            raise DagDefinitionError(f"Task {task_id!r}: retries must be 0 or more, "
                                     f"got {retries}")
        self.retry_delay = _as_timedelta(retry_delay, "retry_delay", task_id)
        self.retry_exponential_backoff = retry_exponential_backoff
        self.max_retry_delay = (_as_timedelta(max_retry_delay, "max_retry_delay", task_id)
                                if max_retry_delay is not None else None)
        from updraft.schedules import coerce_datetime

        tz = dag.timezone if dag is not None else "UTC"
        self.start_date = coerce_datetime(start_date, tz) if start_date is not None else None
        self.end_date = coerce_datetime(end_date, tz) if end_date is not None else None
        self.depends_on_past = depends_on_past or wait_for_downstream
        self.ignore_first_depends_on_past = ignore_first_depends_on_past
        self.wait_for_past_depends_before_skipping = wait_for_past_depends_before_skipping
        self.wait_for_downstream = wait_for_downstream
        self.params = ParamsDict(params or {})
        self.priority_weight = int(priority_weight)
        if weight_rule not in WEIGHT_RULES:
            # A registered priority-weight strategy: kept by its registered name (ADR 3).
            from updraft.priority_weights import strategy_name

            try:
                weight_rule = strategy_name(weight_rule)
            except ValueError as exc:
                raise DagDefinitionError(f"Task {task_id!r}: {exc}") from None
        self.weight_rule = str(weight_rule)
        self.queue = queue
        self.pool = pool or DEFAULT_POOL
        self.pool_slots = int(pool_slots)
        if self.pool_slots < 1:
            raise DagDefinitionError(f"Task {task_id!r}: pool_slots must be 1 or more, "
                                     f"got {pool_slots}")
        self.sla = sla
        self.execution_timeout = (_as_timedelta(execution_timeout, "execution_timeout", task_id)
                                  if execution_timeout is not None else None)
        self.on_execute_callback = on_execute_callback
        self.on_failure_callback = on_failure_callback
        self.on_success_callback = on_success_callback
        self.on_retry_callback = on_retry_callback
        self.on_skipped_callback = on_skipped_callback
        self._pre_execute_hook = pre_execute
        self._post_execute_hook = post_execute
        if not TriggerRule.is_valid(str(trigger_rule)):
            raise DagDefinitionError(
                f"The trigger_rule must be one of {sorted(TriggerRule.all_triggers())}, "
                f"'{task_id}'; received '{trigger_rule}'.")
        self.trigger_rule = TriggerRule(str(trigger_rule))
        if self.trigger_rule == TriggerRule.NONE_FAILED_OR_SKIPPED:
            self.trigger_rule = TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS
        if self.trigger_rule == TriggerRule.DUMMY:
            self.trigger_rule = TriggerRule.ALWAYS
        self.resources = resources
        self.run_as_user = run_as_user
        self.max_active_tis_per_dag = max_active_tis_per_dag or task_concurrency
        self.max_active_tis_per_dagrun = max_active_tis_per_dagrun
        self.executor_config = executor_config or {}
        self.do_xcom_push = do_xcom_push
        self.multiple_outputs = multiple_outputs
        self.inlets = list(inlets) if isinstance(inlets, (list, tuple)) else \
            ([inlets] if inlets else [])
        self.outlets = list(outlets) if isinstance(outlets, (list, tuple)) else \
            ([outlets] if outlets else [])
        self.doc = doc
        self.doc_md = doc_md
        self.doc_json = doc_json
        self.doc_yaml = doc_yaml
        self.doc_rst = doc_rst
        self.task_display_name = task_display_name or self.task_id
        self.logger_name = logger_name
        self.allow_nested_operators = allow_nested_operators
        self.executor = executor
        self.map_index_template = map_index_template
        self._log: logging.Logger | None = None
        if group is not None and not group.is_root:
            self.task_group = group
        if dag is not None:
            if group is not None and group.dag is not None and group.dag is not dag:
                raise DagDefinitionError(f"Task {task_id!r}: its task group belongs to another "
                                         "DAG")
            self.dag = dag
        elif group is not None and not group.is_root:
            group.add(self)
        from updraft.setup_teardown import SetupTeardownContext

        SetupTeardownContext.on_task_created(self)

    # -- identity --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"<Task({self.task_type}): {self.task_id}>"

    @property
    def task_type(self) -> str:
        return type(self).__name__

    @property
    def operator_name(self) -> str:
        return self.custom_operator_name or self.task_type

    @property
    def is_mapped(self) -> bool:
        return False

    @property
    def log(self) -> logging.Logger:
        if self._log is None:
            cls = type(self)
            self._log = logging.getLogger(self.logger_name or
                                          f"updraft.task.operators.{cls.__module__}.{cls.__name__}")
        return self._log

    @property
    def output(self):
        """This task's return value, as an XComArg for other tasks."""
        from updraft.xcom_arg import PlainXComArg

        return PlainXComArg(self)

    # -- what a task does ------------------------------------------------------------------

    def execute(self, context: dict) -> Any:
        """Do the task's work; the return value is pushed as the ``return_value`` XCom."""
        raise NotImplementedError(f"{type(self).__name__} must implement execute(context)")

    def defer(self, *, trigger, method_name: str | None, kwargs: dict | None = None,
              timeout=None) -> NoReturn:
        """Give up this try's slot until ``trigger`` fires; the try then resumes in
        ``method_name(context, event=<payload>, **kwargs)`` (with the same try number).
        ``timeout`` (a timedelta) fails the task if the trigger has not fired by then."""
        from updraft.exceptions import TaskDeferred

        raise TaskDeferred(trigger=trigger, method_name=method_name, kwargs=kwargs,
                           timeout=timeout)

    def resume_execution(self, next_method: str, next_kwargs: dict | None, context: dict):
        """Continue a deferred task in ``next_method`` (``__fail__``: its trigger failed or
        timed out, so the try fails with the reason)."""
        from updraft.exceptions import (
            DEFERRAL_TIMEOUT_ERROR,
            TaskDeferralError,
            TaskDeferralTimeout,
        )

        next_kwargs = dict(next_kwargs or {})
        if next_method == "__fail__":
            error = next_kwargs.get("error", "Unknown")
            traceback = next_kwargs.get("traceback")
            if traceback:
                self.log.error("Trigger failed:\n%s", "\n".join(traceback))
            if error == DEFERRAL_TIMEOUT_ERROR or next_kwargs.get("timeout"):
                raise TaskDeferralTimeout(error)
            raise TaskDeferralError(error)
        if next_method == "__trigger_exit__":  # deferred with method_name=None
            return None
        method = getattr(self, next_method)
        return method(context=context, **next_kwargs)

    def pre_execute(self, context: dict) -> None:
        if self._pre_execute_hook is not None:
            self._pre_execute_hook(context)

    def post_execute(self, context: dict, result: Any = None) -> None:
        if self._post_execute_hook is not None:
            self._post_execute_hook(context, result)

    def on_kill(self) -> None:
        """Release what ``execute`` holds when the try is killed (timeout, cancel)."""

    def prepare_template(self) -> None:
        """Hook run after templated fields are read from files, before rendering."""

    def render_template_fields(self, context: dict, jinja_env=None) -> dict[str, Any]:
        """Render every templated field in place; return the rendered values."""
        from updraft.templating import render_template_fields

        return render_template_fields(self, context, jinja_env)

    def render_template(self, content: Any, context: dict, jinja_env=None, seen=None) -> Any:
        from updraft.templating import get_jinja_env, render_template

        env = jinja_env or get_jinja_env(self.dag)
        return render_template(content, context, env, template_ext=self.template_ext)

    def get_template_env(self):
        from updraft.templating import get_jinja_env

        return get_jinja_env(self.dag)

    def xcom_push(self, context: dict, key: str, value: Any) -> None:
        context["ti"].xcom_push(key=key, value=value)

    def xcom_pull(self, context: dict, task_ids=None, dag_id=None, key="return_value",
                  include_prior_dates=False):
        return context["ti"].xcom_pull(task_ids=task_ids, dag_id=dag_id, key=key,
                                       include_prior_dates=include_prior_dates)

    # -- dynamic task mapping --------------------------------------------------------------

    @classmethod
    def partial(cls, **kwargs) -> "OperatorPartial":  # noqa: F821  (imported on call)
        """Fix the arguments every mapped copy shares; then call ``.expand(...)``."""
        from updraft.mapping import OperatorPartial

        return OperatorPartial(cls, kwargs)

    def __deepcopy__(self, memo):
        # Each try runs on a copy (rendering and execute may change attributes); copying
        # must stay cheap: immutable values and the DAG's structure are shared.
        cls = type(self)
        result = cls.__new__(cls)
        memo[id(self)] = result
        shallow = _ALWAYS_SHALLOW.union(self.shallow_copy_attrs)
        for key, value in self.__dict__.items():
            if key in shallow or type(value) in _IMMUTABLE:
                setattr(result, key, value)
            else:
                setattr(result, key, copy.deepcopy(value, memo))
        return result

    def get_direct_relatives(self, upstream: bool = False) -> list["DAGNode"]:
        return self.upstream_list if upstream else self.downstream_list

    def set_xcomargs_dependencies(self) -> None:
        """Make this task depend on every task whose XComArg is in a templated field."""
        from updraft.xcom_arg import find_xcom_args

        for field in self.template_fields:
            for arg in find_xcom_args(getattr(self, field, None)):
                for op in arg.operators:
                    self.set_upstream(op)


_ALWAYS_SHALLOW = frozenset({"_dag", "task_group", "_log", "upstream_task_ids",
                             "downstream_task_ids"})
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, datetime, timedelta,
                        frozenset})


def _as_timedelta(value: Any, name: str, task_id: str) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)):
        return timedelta(seconds=value)
    raise DagDefinitionError(f"Task {task_id!r}: {name} must be a timedelta or a number of "
                             f"seconds, got {type(value).__name__}")


def chain(*tasks) -> None:
    """Set each item downstream of the previous; lists of equal length pair up one-to-one."""
    for up, down in zip(tasks, tasks[1:]):
        up_is_list = isinstance(up, (list, tuple))
        down_is_list = isinstance(down, (list, tuple))
        if not up_is_list and not down_is_list:
            up.set_downstream(down)
        elif up_is_list and not down_is_list:
            for item in up:
                item.set_downstream(down)
        elif not up_is_list and down_is_list:
            up.set_downstream(list(down))
        else:
            if len(up) != len(down):
                raise DagDefinitionError(f"chain() got lists of different lengths: {len(up)} "
                                         f"and {len(down)}")
            for a, b in zip(up, down):
                a.set_downstream(b)


def cross_downstream(from_tasks, to_tasks) -> None:
    """Set every task of ``to_tasks`` downstream of every task of ``from_tasks``."""
    for task in from_tasks:
        task.set_downstream(list(to_tasks) if isinstance(to_tasks, (list, tuple)) else to_tasks)


def chain_linear(*elements) -> None:
    """Like chain, but every item of a list is linked to every item of the next."""
    for up, down in zip(elements, elements[1:]):
        ups = up if isinstance(up, (list, tuple)) else [up]
        downs = down if isinstance(down, (list, tuple)) else [down]
        for a in ups:
            for b in downs:
                a.set_downstream(b)
