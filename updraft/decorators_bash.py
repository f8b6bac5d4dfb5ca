"""``@task.bash``: the decorated function returns the bash command to run.

The returned string is rendered as a template (like ``bash_command``) and run by
BashOperator; the last line of output, through ``output_processor``, is the XCom. With
``multiple_outputs=True`` (and an ``output_processor`` that returns a dict, such as
``json.loads``) each key is an XCom of its own too, as in Airflow 3.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from updraft.decorators import DecoratedOperatorMixin, TaskDecorator
from updraft.operators.bash import BashOperator
from updraft.operators.python import determine_kwargs

SET_DURING_EXECUTION = "SET_DURING_EXECUTION"


class BashDecoratedOperator(DecoratedOperatorMixin, BashOperator):
    """The operator behind ``@task.bash``."""

    template_fields: Sequence[str] = ("op_args", "op_kwargs", "bash_command", "env", "cwd")
    template_fields_renderers: ClassVar[dict[str, str]] = {"bash_command": "bash", "env": "json", "op_args": "py",
                                 "op_kwargs": "py"}
    custom_operator_name = "@task.bash"
    shallow_copy_attrs: Sequence[str] = ("python_callable",)

    def __init__(self, *, python_callable: Callable, op_args=None, op_kwargs=None,
                 _skip_signature_check: bool = False, **kwargs: Any) -> None:
        op_args = list(op_args or [])
        op_kwargs = dict(op_kwargs or {})
        if not _skip_signature_check:
            self.check_call(python_callable, op_args, op_kwargs, kwargs.get("task_id", "?"))
        kwargs.setdefault("bash_command", SET_DURING_EXECUTION)
        kwargs.setdefault("multiple_outputs", False)
        super().__init__(**kwargs)
        self.python_callable = python_callable
        self.op_args = op_args
        self.op_kwargs = op_kwargs

    def execute(self, context: dict) -> Any:
        merged = dict(context)
        merged.update(self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, merged)
        command = self.python_callable(*self.op_args, **kwargs)
        if not isinstance(command, str) or command.strip() == "":
            raise TypeError("The returned value from the TaskFlow callable must be a non-empty "
                            "string.")
        self.bash_command = self.render_template(command, context)
        return super().execute(context)


def bash_task(python_callable: Callable | None = None, **kwargs: Any):
    """``@task.bash(env=..., cwd=..., output_processor=..., multiple_outputs=...)``."""
    multiple_outputs = bool(kwargs.pop("multiple_outputs", False))

    def wrap(func: Callable) -> TaskDecorator:
        return TaskDecorator(func, BashDecoratedOperator, multiple_outputs, kwargs)

    if python_callable is not None:
        return wrap(python_callable)
    return wrap


__all__ = ["BashDecoratedOperator", "bash_task"]
