"""PythonSensor: waits until a Python function returns true."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from updraft.exceptions import DagDefinitionError
from updraft.operators.python import determine_kwargs
from updraft.sensors.base import BaseSensorOperator, PokeReturnValue


class PythonSensor(BaseSensorOperator):
    """Calls ``python_callable`` at each poke; a true result (or PokeReturnValue) ends it.

    The function gets the context keys it names, like PythonOperator's.
    """

    template_fields: Sequence[str] = ("templates_dict", "op_args", "op_kwargs")

    def __init__(self, *, python_callable: Callable, op_args: list | None = None,
                 op_kwargs: Mapping[str, Any] | None = None,
                 templates_dict: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"Task {self.task_id!r}: `python_callable` param must be "
                                     "callable")
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict

    def poke(self, context: dict) -> PokeReturnValue:
        merged = dict(context)
        merged.update(self.op_kwargs)
        merged["templates_dict"] = self.templates_dict
        self.op_kwargs = determine_kwargs(self.python_callable, self.op_args, merged)
        self.log.info("Poking callable: %s", self.python_callable)
        result = self.python_callable(*self.op_args, **self.op_kwargs)
        if isinstance(result, PokeReturnValue):
            return result
        return PokeReturnValue(bool(result))
