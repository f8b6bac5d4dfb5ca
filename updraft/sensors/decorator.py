"""``@task.sensor``: a function that returns a bool (or a PokeReturnValue) becomes a sensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from updraft.decorators import DecoratedOperatorMixin, TaskDecorator
from updraft.sensors.python import PythonSensor


class DecoratedSensorOperator(DecoratedOperatorMixin, PythonSensor):
    """The operator behind ``@task.sensor``: pokes the decorated function."""

    template_fields: Sequence[str] = ("op_args", "op_kwargs")
    template_fields_renderers: ClassVar[dict[str, str]] = {"op_args": "py", "op_kwargs": "py"}
    custom_operator_name = "@task.sensor"
    shallow_copy_attrs: Sequence[str] = ("python_callable",)

    def __init__(self, *, python_callable: Callable, op_args=None, op_kwargs=None,
                 _skip_signature_check: bool = False, **kwargs) -> None:
        op_args = list(op_args or [])
        op_kwargs = dict(op_kwargs or {})
        if not _skip_signature_check:
            self.check_call(python_callable, op_args, op_kwargs, kwargs.get("task_id", "?"))
        # A sensor pushes its PokeReturnValue's xcom_value as is, never split into keys.
        kwargs["multiple_outputs"] = False
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs,
                         **kwargs)


def sensor_task(python_callable: Callable | None = None, **kwargs):
    """``@task.sensor(poke_interval=..., timeout=..., mode=...)``."""
    kwargs.pop("multiple_outputs", None)

    def wrap(func: Callable) -> TaskDecorator:
        return TaskDecorator(func, DecoratedSensorOperator, False, kwargs)

    if python_callable is not None:
        return wrap(python_callable)
    return wrap


__all__ = ["DecoratedSensorOperator", "sensor_task"]
