"""TaskFlow: ``@task`` turns a function into a task, ``@dag`` a function into a DAG.

Calling a decorated function inside a DAG creates the task and returns an XComArg; passing
that XComArg to another task makes it a dependency and hands over the return value.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from updraft.dag import DagContext, dag
from updraft.exceptions import DagDefinitionError, NotSupportedByUpdraft
from updraft.operators.python import (
    BranchPythonOperator,
    PythonOperator,
    ShortCircuitOperator,
)
from updraft.taskgroup import TaskGroup, TaskGroupContext
from updraft.xcom_arg import PlainXComArg, XComArg

KNOWN_CONTEXT_KEYS = frozenset({
    "conf", "dag", "dag_run", "data_interval_end", "data_interval_start", "ds", "ds_nodash",
    "execution_date", "expanded_ti_count", "inlets", "logical_date", "macros",
    "map_index_template", "outlets", "params", "prev_data_interval_start_success",
    "prev_data_interval_end_success", "prev_start_date_success", "prev_end_date_success",
    "run_id", "task", "task_instance", "task_instance_key_str", "test_mode", "templates_dict",
    "ti", "ts", "ts_nodash", "ts_nodash_with_tz", "var", "conn", "triggering_asset_events",
    "next_ds", "prev_ds", "next_execution_date", "prev_execution_date", "yesterday_ds",
    "tomorrow_ds", "dask_client", "outlet_events", "inlet_events",
})


def unique_task_id(task_id: str, dag_obj=None, group: TaskGroup | None = None) -> str:
    """``task_id``, or ``task_id__N`` if that id is already taken in the DAG."""
    dag_obj = dag_obj or DagContext.get_current_dag()
    if dag_obj is None:
        return task_id
    group = group or TaskGroupContext.get_current(dag_obj)
    full = group.child_id(task_id) if group is not None else task_id
    if full not in dag_obj.task_dict:
        return task_id
    core = re.split(r"__\d+$", task_id)[0]
    full_core = re.split(r"__\d+$", full)[0]
    suffixes = [int(m.group(1)) for tid in dag_obj.task_dict
                if (m := re.match(rf"^{re.escape(full_core)}__(\d+)$", tid))]
    return f"{core}__{max(suffixes, default=0) + 1}"


def _infer_multiple_outputs(func: Callable) -> bool:
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001  (unresolvable forward references: assume no)
        return False
    returns = hints.get("return")
    if returns is None:
        return False
    origin = getattr(returns, "__origin__", returns)
    return isinstance(origin, type) and issubclass(origin, Mapping)


class DecoratedOperatorMixin:
    """Checks the call against the function's signature, like Airflow's DecoratedOperator."""

    custom_operator_name = "@task"

    @staticmethod
    def check_call(func: Callable, op_args, op_kwargs, task_id: str) -> None:
        signature = inspect.signature(func)
        for param in signature.parameters.values():
            if param.name in KNOWN_CONTEXT_KEYS and param.default not in (None, param.empty):
                raise DagDefinitionError(f"Context key parameter {param.name} can't have a "
                                         "default other than None")
        params = [p.replace(default=None) if p.name in KNOWN_CONTEXT_KEYS else p
                  for p in signature.parameters.values()]
        try:
            signature = signature.replace(parameters=params)
        except ValueError as exc:
            raise DagDefinitionError(
                f"Task {task_id!r}: the function signature broke while assigning defaults to "
                f"context key parameters ({exc}); give those parameters a default of None or "
                "move them after the others") from None
        try:
            signature.bind(*op_args, **op_kwargs)
        except TypeError as exc:
            raise DagDefinitionError(f"Task {task_id!r}: {exc}") from None


class PythonDecoratedOperator(DecoratedOperatorMixin, PythonOperator):
    """The operator behind ``@task``."""

    template_fields = ("templates_dict", "op_args", "op_kwargs")

    def __init__(self, *, python_callable: Callable, op_args=None, op_kwargs=None,
                 _skip_signature_check: bool = False, **kwargs) -> None:
        op_args = list(op_args or [])
        op_kwargs = dict(op_kwargs or {})
        if not _skip_signature_check:
            self.check_call(python_callable, op_args, op_kwargs, kwargs.get("task_id", "?"))
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs,
                         **kwargs)


class BranchPythonDecoratedOperator(DecoratedOperatorMixin, BranchPythonOperator):
    """The operator behind ``@task.branch``."""

    custom_operator_name = "@task.branch"
    template_fields = ("templates_dict", "op_args", "op_kwargs")


class ShortCircuitDecoratedOperator(DecoratedOperatorMixin, ShortCircuitOperator):
    """The operator behind ``@task.short_circuit``."""

    custom_operator_name = "@task.short_circuit"
    template_fields = ("templates_dict", "op_args", "op_kwargs")


class TaskDecorator:
    """A function wrapped by ``@task`` (or a variant); calling it adds a task to the DAG."""

    def __init__(self, function: Callable, operator_class: type, multiple_outputs: bool | None,
                 kwargs: dict, setup_teardown: dict | None = None):
        if not callable(function):
            raise DagDefinitionError(f"@task needs a function, got {type(function).__name__}")
        self.function = function
        self.operator_class = operator_class
        self.multiple_outputs = (_infer_multiple_outputs(function) if multiple_outputs is None
                                 else multiple_outputs)
        self.kwargs = dict(kwargs)
        self.setup_teardown = setup_teardown or {}
        functools.update_wrapper(self, function)

    def _operator_kwargs(self, task_id: str | None = None) -> dict:
        kwargs = dict(self.kwargs)
        kwargs.setdefault("multiple_outputs", self.multiple_outputs)
        task_id = task_id or kwargs.pop("task_id", None) or self.function.__name__
        kwargs.pop("task_id", None)
        kwargs["task_id"] = unique_task_id(task_id, kwargs.get("dag"), kwargs.get("task_group"))
        if self.function.__doc__ and "doc_md" not in kwargs:
            kwargs["doc_md"] = inspect.cleandoc(self.function.__doc__)
        return kwargs

    def _apply_setup_teardown(self, op) -> None:
        if self.setup_teardown.get("setup"):
            op.as_setup()
        if self.setup_teardown.get("teardown"):
            op.as_teardown(on_failure_fail_dagrun=self.setup_teardown.get(
                "on_failure_fail_dagrun", False))

    def __call__(self, *args, **kwargs) -> XComArg:
        from updraft.xcom_arg import find_xcom_args

        in_mapped_group = _mapped_group_call(self.function, args, kwargs)
        if in_mapped_group is not None:
            fixed, mapped = in_mapped_group
            result = self.partial(**fixed).expand(**mapped)
            _MAPPED_GROUPS[-1].add(id(result.operator))
            return result
        op = self.operator_class(python_callable=self.function, op_args=args, op_kwargs=kwargs,
                                 **self._operator_kwargs())
        for arg in find_xcom_args([list(args), kwargs]):
            for upstream in arg.operators:
                op.set_upstream(upstream)
        self._apply_setup_teardown(op)
        return PlainXComArg(op)

    def override(self, **kwargs) -> "TaskDecorator":
        """A copy with some operator arguments changed (``task_id``, ``retries``, ...)."""
        merged = {**self.kwargs, **kwargs}
        multiple = merged.pop("multiple_outputs", self.multiple_outputs)
        return TaskDecorator(self.function, self.operator_class, multiple, merged,
                             self.setup_teardown)

    def partial(self, **kwargs) -> "TaskPartial":
        """Fix some function arguments; then ``.expand(...)`` over the others."""
        return TaskPartial(self, kwargs)

    def expand(self, **mapped_kwargs) -> XComArg:
        """Run the function once per item."""
        return TaskPartial(self, {}).expand(**mapped_kwargs)

    def expand_kwargs(self, kwargs) -> XComArg:
        """Run the function once per dict of arguments."""
        return TaskPartial(self, {}).expand_kwargs(kwargs)


class TaskPartial:
    """``@task`` function with some arguments fixed, waiting for ``expand``."""

    def __init__(self, decorator: TaskDecorator, op_kwargs: dict):
        self.decorator = decorator
        self.op_kwargs = op_kwargs

    def _partial(self):
        from updraft.mapping import OperatorPartial

        sig = inspect.signature(self.decorator.function)
        names = {p.name for p in sig.parameters.values()
                 if p.kind not in (p.VAR_POSITIONAL,)}
        if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
            names = None
        kwargs = self.decorator._operator_kwargs()
        kwargs.update(python_callable=self.decorator.function, op_kwargs=dict(self.op_kwargs),
                      _skip_signature_check=True)
        return OperatorPartial(self.decorator.operator_class, kwargs, mapped_field="op_kwargs",
                               mappable_names=names)

    def expand(self, **mapped_kwargs) -> XComArg:
        mapped = self._partial().expand(**mapped_kwargs)
        self.decorator._apply_setup_teardown(mapped)
        return PlainXComArg(mapped)

    def expand_kwargs(self, kwargs) -> XComArg:
        mapped = self._partial().expand_kwargs(kwargs)
        return PlainXComArg(mapped)


def _make_decorator(operator_class: type, **defaults):
    def decorator(python_callable: Callable | None = None, multiple_outputs: bool | None = None,
                  **kwargs):
        options = {**defaults, **kwargs}
        setup_teardown = options.pop("_setup_teardown", None)

        def wrap(func: Callable) -> TaskDecorator:
            return TaskDecorator(func, operator_class, multiple_outputs, options, setup_teardown)

        if python_callable is not None:
            return wrap(python_callable)
        return wrap

    return decorator


def _not_supported(name: str, advice: str):
    def decorator(*args, **kwargs):
        raise NotSupportedByUpdraft(f"not supported by Updraft: @task.{name} ({advice})")

    return decorator


class TaskDecoratorCollection:
    """``task`` itself: ``@task``, ``@task.python``, ``@task.branch``, ``@task.bash``..."""

    python = staticmethod(_make_decorator(PythonDecoratedOperator))
    branch = staticmethod(_make_decorator(BranchPythonDecoratedOperator))
    short_circuit = staticmethod(_make_decorator(ShortCircuitDecoratedOperator))
    virtualenv = staticmethod(_not_supported("virtualenv", "install the packages on the "
                                             "workers and use @task"))
    external_python = staticmethod(_not_supported("external_python", "use @task"))
    branch_virtualenv = staticmethod(_not_supported("branch_virtualenv", "use @task.branch"))
    branch_external_python = staticmethod(_not_supported("branch_external_python",
                                                         "use @task.branch"))
    docker = staticmethod(_not_supported("docker", "run docker from @task.bash"))
    kubernetes = staticmethod(_not_supported("kubernetes", "no Kubernetes pod operator"))
    pyspark = staticmethod(_not_supported("pyspark", "use @task with pyspark installed"))

    def __call__(self, python_callable: Callable | None = None,
                 multiple_outputs: bool | None = None, **kwargs):
        return self.python(python_callable, multiple_outputs=multiple_outputs, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "bash":
            from updraft.decorators_bash import bash_task

            return bash_task
        if name == "sensor":
            from updraft.sensors.decorator import sensor_task

            return sensor_task
        if name == "dask":
            # A TaskFlow task connected to the try's Dask cluster (updraft.dask_support).
            from updraft.dask_support import DaskDecoratedOperator

            return _make_decorator(DaskDecoratedOperator)
        raise NotSupportedByUpdraft(f"not supported by Updraft: @task.{name}")


task = TaskDecoratorCollection()


def setup(python_callable: Callable | None = None, **kwargs):
    """``@setup``: a TaskFlow task marked as a setup task."""
    decorator = _make_decorator(PythonDecoratedOperator, _setup_teardown={"setup": True})
    return decorator(python_callable, **kwargs)


def teardown(python_callable: Callable | None = None, *, on_failure_fail_dagrun: bool = False,
             **kwargs):
    """``@teardown``: a TaskFlow task marked as a teardown task."""
    decorator = _make_decorator(PythonDecoratedOperator, _setup_teardown={
        "teardown": True, "on_failure_fail_dagrun": on_failure_fail_dagrun})
    return decorator(python_callable, **kwargs)


#: While a mapped task group is built: the ids of its mapped tasks (innermost group last).
_MAPPED_GROUPS: list[set[int]] = []


class MappedArgument:
    """A ``@task_group`` function's argument while the group is mapped: each TaskFlow task
    given it runs once per item of ``source``."""

    def __init__(self, source: Any, name: str) -> None:
        self.source = source
        self.name = name

    def __repr__(self) -> str:
        return f"MappedArgument({self.name!r})"


def _mapped_group_call(function: Callable, args: tuple, kwargs: dict):
    """Inside a mapped task group: (fixed, mapped) arguments of a TaskFlow call whose
    arguments are the group's mapped argument or the output of a task mapped with the group
    (item i of a task feeds item i of the next, as in Airflow); None for a plain call."""
    if not _MAPPED_GROUPS:
        return None
    from updraft.xcom_arg import PlainXComArg

    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs).arguments
    except TypeError:
        return None
    fixed, mapped = {}, {}
    for name, value in bound.items():
        if isinstance(value, MappedArgument):
            mapped[name] = value.source
        elif isinstance(value, PlainXComArg) and id(value.operator) in _MAPPED_GROUPS[-1]:
            mapped[name] = value
        else:
            fixed[name] = value
    if not mapped:
        return None
    if len(mapped) > 1:
        from updraft.exceptions import NotSupportedByUpdraft

        raise NotSupportedByUpdraft(
            f"not supported by Updraft: task {function.__name__!r} in a mapped task group "
            f"takes more than one mapped value ({', '.join(mapped)}); pass one and fix the "
            "others")
    return fixed, mapped


def _expand_group(factory: Callable, fixed: dict, mapped: dict):
    from updraft.exceptions import DagDefinitionError, NotSupportedByUpdraft
    from updraft.xcom_arg import XComArg

    if len(mapped) != 1:
        if not mapped:
            raise DagDefinitionError("expand() needs at least one keyword argument")
        raise NotSupportedByUpdraft(
            "not supported by Updraft: mapping a task group over more than one argument (a "
            f"cross product of {', '.join(mapped)}); map it over one list of dicts instead")
    (name, source), = mapped.items()
    if not isinstance(source, (list, tuple, dict, XComArg)):
        raise DagDefinitionError(f"Cannot map task group over argument {name!r}: expand() "
                                 f"takes lists, dicts or XComArgs, got "
                                 f"{type(source).__name__}")
    _MAPPED_GROUPS.append(set())
    try:
        return factory(**fixed, **{name: MappedArgument(source, name)})
    finally:
        _MAPPED_GROUPS.pop()


def task_group(python_callable: Callable | None = None, **group_kwargs):
    """``@task_group``: calling the function builds its tasks inside a TaskGroup;
    ``.expand(x=[...])`` (or ``.partial(...).expand(...)``) maps it: each TaskFlow task given
    ``x`` runs once per item, and a task given such a task's output runs once per item of it
    (item i feeds item i)."""

    def wrap(func: Callable):
        @functools.wraps(func)
        def factory(*args, **kwargs):
            options = dict(group_kwargs)
            group_id = options.pop("group_id", None) or func.__name__
            options.setdefault("tooltip", inspect.cleandoc(func.__doc__) if func.__doc__ else "")
            current = DagContext.get_current_dag()
            if current is not None:
                used = TaskGroupContext.get_current(current).used_group_ids
                parent = TaskGroupContext.get_current(current)
                candidate = parent.child_id(group_id) if parent else group_id
                if candidate in used:
                    options.setdefault("add_suffix_on_collision", True)
            with TaskGroup(group_id, **options) as group:
                result = func(*args, **kwargs)
            return group if result is None else result

        factory.override = lambda **kw: task_group(func, **{**group_kwargs, **kw})  # type: ignore
        factory.expand = lambda **mapped: _expand_group(factory, {}, mapped)  # type: ignore
        factory.partial = lambda **fixed: types.SimpleNamespace(  # type: ignore
            expand=lambda **mapped: _expand_group(factory, fixed, mapped))
        return factory

    if python_callable is not None:
        return wrap(python_callable)
    return wrap


__all__ = ["dag", "task", "setup", "teardown", "task_group", "TaskDecorator",
           "PythonDecoratedOperator"]
