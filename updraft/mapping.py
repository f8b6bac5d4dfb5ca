"""Dynamic task mapping: ``Op.partial(...).expand(x=[...])`` runs one copy per item.

A MappedOperator is one node of the DAG; when its upstream tasks are done, the runner counts
the items (literals or upstream XComs) and creates one task instance per map index. Each
index runs an ordinary operator built by ``unmap`` from the partial and mapped arguments.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from updraft.dag import DagContext
from updraft.exceptions import DagDefinitionError, UnmappableXComTypePushed
from updraft.operators.base import BaseOperator, DAGNode, _merge_default_args
from updraft.setup_teardown import SetupTeardownContext
from updraft.taskgroup import TaskGroupContext
from updraft.xcom_arg import XComArg, find_xcom_args

MAX_MAP_LENGTH = 1024


@contextlib.contextmanager
def detached():
    """Build operators without adding them to the DAG or group being defined."""
    saved = (DagContext._stack, TaskGroupContext._stack, SetupTeardownContext._stack,
             DagContext._created)
    DagContext._stack, TaskGroupContext._stack, SetupTeardownContext._stack = [], [], []
    DagContext._created = None
    try:
        yield
    finally:
        (DagContext._stack, TaskGroupContext._stack, SetupTeardownContext._stack,
         DagContext._created) = saved


def _init_parameters(cls) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        init = getattr(init, "_updraft_original", init)
        for p in inspect.signature(init).parameters.values():
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                names.add(p.name)
    return names


_BASE_PARAMS = None


def base_operator_parameters() -> set[str]:
    global _BASE_PARAMS
    if _BASE_PARAMS is None:
        _BASE_PARAMS = _init_parameters(BaseOperator)
    return _BASE_PARAMS


def _check_mappable(name: str, value: Any) -> None:
    if isinstance(value, (XComArg, list, tuple, dict)):
        return
    raise DagDefinitionError(f"Cannot map over argument {name!r}: expand() takes lists, dicts "
                             f"or XComArgs, got {type(value).__name__}")


class OperatorPartial:
    """The result of ``Operator.partial(...)``: call ``expand`` or ``expand_kwargs`` on it."""

    def __init__(self, operator_class: type, kwargs: dict, mapped_field: str | None = None,
                 mappable_names: set[str] | None = None):
        if "task_id" not in kwargs:
            raise DagDefinitionError(f"{operator_class.__name__}.partial() needs task_id")
        self.operator_class = operator_class
        self.kwargs = dict(kwargs)
        self.mapped_field = mapped_field
        self.mappable_names = mappable_names
        self._expanded = False

    def _validate_names(self, names: Sequence[str]) -> None:
        allowed = self.mappable_names if self.mappable_names is not None else \
            _init_parameters(self.operator_class)
        for name in names:
            if name not in allowed:
                raise DagDefinitionError(f"{self.operator_class.__name__}.expand() got an "
                                         f"unexpected keyword argument {name!r}")
            if name in self.kwargs or (self.mapped_field and name in
                                       (self.kwargs.get(self.mapped_field) or {})):
                raise DagDefinitionError(f"{self.operator_class.__name__}: argument {name!r} "
                                         "given to both partial() and expand()")

    def expand(self, **mapped_kwargs: Any) -> "MappedOperator":
        """One task instance per item (the cross product if several arguments are mapped)."""
        if not mapped_kwargs:
            raise DagDefinitionError("expand() needs at least one keyword argument")
        self._validate_names(list(mapped_kwargs))
        for name, value in mapped_kwargs.items():
            _check_mappable(name, value)
        return MappedOperator(self, expand_input=dict(mapped_kwargs), kind="dict_of_lists")

    def expand_kwargs(self, kwargs: Any) -> "MappedOperator":
        """One task instance per dict of arguments in a list (or an XComArg of such a list)."""
        if not isinstance(kwargs, (list, tuple, XComArg)):
            raise DagDefinitionError("expand_kwargs() takes a list of dicts or an XComArg, "
                                     f"got {type(kwargs).__name__}")
        if isinstance(kwargs, (list, tuple)):
            for item in kwargs:
                if isinstance(item, dict):
                    self._validate_names(list(item))
                elif not isinstance(item, XComArg):
                    raise DagDefinitionError("expand_kwargs() list items must be dicts, got "
                                             f"{type(item).__name__}")
        return MappedOperator(self, expand_input=kwargs, kind="list_of_dicts")


class MappedOperator(DAGNode):
    """A task that runs once per mapped item. Reads like its operator for everything else."""

    def __init__(self, partial: OperatorPartial, expand_input: Any, kind: str):
        self._init_relations()
        self._dag = None
        self.operator_class = partial.operator_class
        self.mapped_field = partial.mapped_field
        self.expand_input = expand_input
        self.expand_kind = kind
        dag = partial.kwargs.get("dag") or DagContext.get_current_dag()
        group = partial.kwargs.get("task_group") or TaskGroupContext.get_current(dag)
        defaults = _merge_default_args(dag, group, partial.kwargs.get("default_args"))
        kwargs = {k: v for k, v in partial.kwargs.items()
                  if k not in ("dag", "task_group", "default_args")}
        accepted = _init_parameters(self.operator_class)
        for name, value in defaults.items():
            if name in accepted and name not in kwargs and name != "task_id":
                kwargs[name] = value
        self.partial_kwargs = kwargs
        base_kwargs = {k: v for k, v in kwargs.items() if k in base_operator_parameters()}
        with detached():
            self._base = BaseOperator(**base_kwargs)
        self.task_id = group.child_id(kwargs["task_id"]) if group is not None else \
            kwargs["task_id"]
        self.task_group = None
        for name in ("template_fields", "template_ext", "ui_color", "ui_fgcolor",
                     "custom_operator_name", "is_sensor"):
            setattr(self, name, getattr(self.operator_class, name, None))
        self.trigger_rule = self._base.trigger_rule
        self.is_setup = False
        self.is_teardown = False
        if group is not None and not group.is_root:
            self.task_group = group
        if dag is not None:
            self.dag = dag
        elif group is not None and not group.is_root:
            group.add(self)
        for arg in self._xcom_args():
            for op in arg.operators:
                self.set_upstream(op)
        SetupTeardownContext.on_task_created(self)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_base",):
            raise AttributeError(name)
        return getattr(self._base, name)

    def __repr__(self) -> str:
        return f"<Mapped({self.operator_class.__name__}): {self.task_id}>"

    @property
    def is_mapped(self) -> bool:
        return True

    @property
    def task_type(self) -> str:
        return self.operator_class.__name__

    @property
    def operator_name(self) -> str:
        return self.custom_operator_name or self.task_type

    @property
    def output(self):
        from updraft.xcom_arg import PlainXComArg

        return PlainXComArg(self)

    def _xcom_args(self) -> list[XComArg]:
        found = find_xcom_args(self.expand_input) if not isinstance(self.expand_input,
                                                                    XComArg) \
            else [self.expand_input]
        return found + find_xcom_args(self.partial_kwargs)

    def iter_mapped_dependencies(self):
        return iter(self._xcom_args())

    # -- expansion -------------------------------------------------------------------------

    def mapped_task_ids(self) -> set[str]:
        """Ids of the tasks whose XCom lengths decide how many copies run."""
        refs = [self.expand_input] if isinstance(self.expand_input, XComArg) else \
            find_xcom_args(self.expand_input)
        return {op.task_id for arg in refs for op, _ in arg.iter_references()}

    def get_map_length(self, xcom_lengths: Mapping[str, int | None]) -> int | None:
        """How many copies run, given the pushed lengths of upstream XComs; None if unknown."""
        if self.expand_kind == "list_of_dicts":
            if isinstance(self.expand_input, XComArg):
                return self.expand_input.get_task_map_length(xcom_lengths)
            return len(self.expand_input)
        total = 1
        for value in self.expand_input.values():
            length = value.get_task_map_length(xcom_lengths) if isinstance(value, XComArg) \
                else len(value)
            if length is None:
                return None
            total *= length
        if total > MAX_MAP_LENGTH:
            raise UnmappableXComTypePushed(f"Task {self.task_id!r} would expand to {total} "
                                           f"copies; the limit is {MAX_MAP_LENGTH}")
        return total

    def resolve_expansion_kwargs(self, context: dict, map_index: int) -> dict[str, Any]:
        """The mapped arguments of copy ``map_index``, with XComArgs resolved."""
        from updraft.xcom_arg import resolve_xcom_args

        if self.expand_kind == "list_of_dicts":
            value = self.expand_input
            items = value.resolve(context) if isinstance(value, XComArg) else value
            item = items[map_index]
            if isinstance(item, XComArg):
                item = item.resolve(context)
            if not isinstance(item, dict):
                raise UnmappableXComTypePushed(f"expand_kwargs() of task {self.task_id!r} "
                                               f"needs dicts, got {type(item).__name__}")
            return resolve_xcom_args(item, context)
        values: dict[str, list] = {}
        for name, value in self.expand_input.items():
            resolved = value.resolve(context) if isinstance(value, XComArg) else value
            if resolved is None:
                resolved = []
            if isinstance(resolved, dict):
                resolved = list(resolved.items())
            elif isinstance(resolved, (str, bytes)) or not hasattr(resolved, "__len__"):
                raise UnmappableXComTypePushed(
                    f"Task {self.task_id!r} expands over {name!r}, which resolved to a "
                    f"{type(resolved).__name__}; only lists and dicts can be mapped over")
            values[name] = resolved
        names = list(values)
        combos = itertools.product(*(range(len(values[n])) for n in names))
        indexes = next(itertools.islice(combos, map_index, None))
        return {name: resolve_xcom_args(values[name][i], context)
                for name, i in zip(names, indexes)}

    def unmap(self, mapped_kwargs: dict[str, Any]) -> BaseOperator:
        """Build the plain operator that runs one copy."""
        kwargs = dict(self.partial_kwargs)
        if self.mapped_field:
            field = dict(kwargs.get(self.mapped_field) or {})
            field.update(mapped_kwargs)
            kwargs[self.mapped_field] = field
        else:
            kwargs.update(mapped_kwargs)
        kwargs["task_id"] = self.task_id
        with detached():
            op = self.operator_class(**kwargs)
        op._dag = self._dag
        op.task_group = self.task_group
        op.upstream_task_ids = set(self.upstream_task_ids)
        op.downstream_task_ids = set(self.downstream_task_ids)
        op.is_setup = self.is_setup
        op.is_teardown = self.is_teardown
        op.trigger_rule = self.trigger_rule
        return op


__all__ = ["MappedOperator", "OperatorPartial", "detached", "MAX_MAP_LENGTH"]
