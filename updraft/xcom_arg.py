"""XComArgs: references to a task's output that other tasks take as arguments.

``extract()`` in a TaskFlow DAG returns an XComArg; passing it to ``transform(data)`` makes
transform depend on extract and receive its return value when it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Iterator

from updraft.exceptions import UpdraftException
from updraft.utils.dependency import DependencyOperators

if TYPE_CHECKING:
    from updraft.operators.base import DAGNode

XCOM_RETURN_KEY = "return_value"


class _ArgNotSet:
    def __repr__(self) -> str:
        return "NOTSET"


NOTSET: Any = _ArgNotSet()


class XComNotFound(UpdraftException):
    """An XComArg whose XCom was never pushed."""


class XComArg(DependencyOperators):
    """Base of every reference to task output; behaves like its operator in dependencies.

    ``XComArg(operator, key="x")`` builds the plain reference, as in Airflow."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "XComArg":
        if cls is XComArg:
            if not args and "operator" not in kwargs:
                raise TypeError("XComArg() needs the operator whose XCom it refers to: "
                                "XComArg(operator, key='return_value')")
            return PlainXComArg(*args, **kwargs)
        return super().__new__(cls)

    def iter_references(self) -> Iterator[tuple["DAGNode", str]]:
        raise NotImplementedError

    @property
    def operators(self) -> list["DAGNode"]:
        seen: list = []
        for op, _key in self.iter_references():
            if op not in seen:
                seen.append(op)
        return seen

    def resolve(self, context: dict, map_index: int | None = None) -> Any:
        """The value this reference stands for, in the running task's context."""
        raise NotImplementedError

    def get_task_map_length(self, lengths: dict[str, int | None]) -> int | None:
        """How many items ``expand`` gets from this reference, given pushed lengths."""
        raise NotImplementedError

    # Dependencies behave as if on the referenced operators.
    def set_upstream(self, other, edge_modifier=None):
        for op in self.operators:
            op.set_upstream(other, edge_modifier=edge_modifier)

    def set_downstream(self, other, edge_modifier=None):
        for op in self.operators:
            op.set_downstream(other, edge_modifier=edge_modifier)

    def __iter__(self):
        raise TypeError("'XComArg' object is not iterable: its value exists only when the "
                        "task runs; use .expand() to run a task once per item")

    def map(self, func: Callable[[Any], Any]) -> "MapXComArg":
        return MapXComArg(self, [func])

    def zip(self, *others: "XComArg", fillvalue: Any = NOTSET) -> "ZipXComArg":
        return ZipXComArg([self, *others], fillvalue=fillvalue)

    def as_setup(self):
        for op in self.operators:
            op.as_setup()
        return self

    def as_teardown(self, *, setups=None, on_failure_fail_dagrun=None):
        for op in self.operators:
            op.as_teardown(setups=setups, on_failure_fail_dagrun=on_failure_fail_dagrun)
        return self

    def __enter__(self):
        return self.operators[0].__enter__() and self

    def __exit__(self, *exc):
        return self.operators[0].__exit__(*exc)

    def to_json(self) -> dict:
        raise NotImplementedError


class PlainXComArg(XComArg):
    """The XCom ``key`` (default: the return value) of one operator."""

    def __init__(self, operator: "DAGNode", key: str = XCOM_RETURN_KEY):
        self.operator = operator
        self.key = key

    def __repr__(self) -> str:
        if self.key == XCOM_RETURN_KEY:
            return f"XComArg({self.operator!r})"
        return f"XComArg({self.operator!r}, {self.key!r})"

    def __str__(self) -> str:
        """A template that pulls this XCom, as Airflow's ``str(XComArg(...))`` is."""
        return (f"{{{{ task_instance.xcom_pull(task_ids='{self.operator.task_id}', "
                f"dag_id='{self.operator.dag_id}', key='{self.key}') }}}}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlainXComArg) and other.operator is self.operator and \
            other.key == self.key

    def __hash__(self) -> int:
        return hash((id(self.operator), self.key))

    def __getitem__(self, key: str) -> "PlainXComArg":
        if self.key != XCOM_RETURN_KEY:
            raise ValueError(f"XComArg {self!r} already has a key")
        return PlainXComArg(self.operator, key)

    def iter_references(self):
        yield self.operator, self.key

    def get_task_map_length(self, lengths):
        return lengths.get(self.operator.task_id)

    def resolve(self, context: dict, map_index: int | None = None) -> Any:
        ti = context["ti"]
        result = ti.xcom_pull(task_ids=self.operator.task_id, key=self.key, default=NOTSET,
                              map_indexes=map_index)
        if result is not NOTSET:
            return result
        if self.key == XCOM_RETURN_KEY or getattr(self.operator, "multiple_outputs", False):
            return None
        raise XComNotFound(f"XComArg result from {self.operator.task_id} at "
                           f"{ti.dag_id} with key={self.key!r} is not found")

    def to_json(self) -> dict:
        return {"type": "xcom", "task_id": self.operator.task_id, "key": self.key}


class MapXComArg(XComArg):
    """An XComArg whose items are transformed by functions when pulled."""

    def __init__(self, arg: XComArg, callables: Sequence[Callable]):
        self.arg = arg
        self.callables = list(callables)

    def map(self, func):
        return MapXComArg(self.arg, [*self.callables, func])

    def iter_references(self):
        yield from self.arg.iter_references()

    def get_task_map_length(self, lengths):
        return self.arg.get_task_map_length(lengths)

    def resolve(self, context, map_index=None):
        value = self.arg.resolve(context, map_index)
        return _MappedSequence(value, self.callables)

    def to_json(self) -> dict:
        return {"type": "map", "arg": self.arg.to_json()}


class _MappedSequence(Sequence):
    def __init__(self, value, callables):
        self._items = list(value.items()) if isinstance(value, dict) else list(value)
        self._callables = callables

    def __len__(self):
        return len(self._items)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._items[index]
        for func in self._callables:
            item = func(item)
        return item


class ZipXComArg(XComArg):
    """Items of several references zipped together, like ``zip()``."""

    def __init__(self, args: Sequence[Any], fillvalue: Any = NOTSET):
        self.args = list(args)
        self.fillvalue = fillvalue

    def iter_references(self):
        for arg in self.args:
            if isinstance(arg, XComArg):
                yield from arg.iter_references()

    def get_task_map_length(self, lengths):
        values = [a.get_task_map_length(lengths) if isinstance(a, XComArg) else len(a)
                  for a in self.args]
        if any(v is None for v in values):
            return None
        return max(values) if self.fillvalue is not NOTSET else min(values)

    def resolve(self, context, map_index=None):
        import itertools

        values = [list(a.resolve(context, map_index)) if isinstance(a, XComArg) else list(a)
                  for a in self.args]
        if self.fillvalue is NOTSET:
            return list(zip(*values))
        return list(itertools.zip_longest(*values, fillvalue=self.fillvalue))

    def to_json(self) -> dict:
        return {"type": "zip", "args": [a.to_json() if isinstance(a, XComArg) else a
                                        for a in self.args],
                "fillvalue": None if self.fillvalue is NOTSET else self.fillvalue,
                "longest": self.fillvalue is not NOTSET}


class DagParamArg:
    """A ``@dag`` function parameter used as a task argument: the run's param value."""

    def __init__(self, dag, name: str):
        self.dag = dag
        self.name = name

    def __repr__(self) -> str:
        return f"DagParam({self.name!r})"

    def resolve(self, context: dict, map_index: int | None = None) -> Any:
        return context["params"][self.name]

    def iter_references(self):
        return iter(())


def find_xcom_args(value: Any) -> list[XComArg]:
    """Every XComArg inside ``value`` (nested lists, tuples, sets and dict values)."""
    found: list[XComArg] = []

    def walk(item):
        if isinstance(item, XComArg):
            found.append(item)
        elif isinstance(item, (list, tuple, set, frozenset)):
            for sub in item:
                walk(sub)
        elif isinstance(item, dict):
            for sub in item.values():
                walk(sub)

    walk(value)
    return found


def resolve_xcom_args(value: Any, context: dict) -> Any:
    """``value`` with every XComArg and DagParam inside replaced by what it stands for."""
    if isinstance(value, (XComArg, DagParamArg)):
        return value.resolve(context)
    if isinstance(value, list):
        return [resolve_xcom_args(v, context) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_xcom_args(v, context) for v in value)
    if isinstance(value, (set, frozenset)):
        return type(value)(resolve_xcom_args(v, context) for v in value)
    if isinstance(value, dict):
        return {k: resolve_xcom_args(v, context) for k, v in value.items()}
    return value
