"""PythonOperator and its branch and short-circuit forms."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Collection, Mapping
from typing import Any

from updraft.exceptions import DagDefinitionError, NotSupportedByUpdraft
from updraft.operators.base import BaseOperator
from updraft.operators.skip import SkipMixin


def determine_kwargs(func: Callable, args: Collection, context: Mapping) -> dict[str, Any]:
    """The keyword arguments ``func`` asks for from ``context`` (all of it if it has **kwargs)."""
    signature = inspect.signature(func)
    for name in itertools.islice(signature.parameters.keys(), len(args)):
        if name in context:
            raise ValueError(f"The key {name!r} in args is a part of kwargs and therefore "
                             "reserved.")
    if any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        return dict(context)
    return {name: context[name] for name in signature.parameters if name in context}


class PythonOperator(BaseOperator):
    """Calls a Python function; its return value becomes the task's XCom."""

    template_fields = ("templates_dict", "op_args", "op_kwargs")
    template_fields_renderers = {"templates_dict": "json", "op_args": "py", "op_kwargs": "py"}
    ui_color = "#ffefeb"

    def __init__(self, *, python_callable: Callable, op_args: Collection | None = None,
                 op_kwargs: Mapping[str, Any] | None = None,
                 templates_dict: dict[str, Any] | None = None,
                 templates_exts: list[str] | None = None, show_return_value_in_logs: bool = True,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise DagDefinitionError(f"Task {self.task_id!r}: `python_callable` param must be "
                                     "callable")
        self.python_callable = python_callable
        self.op_args = list(op_args or [])
        self.op_kwargs = dict(op_kwargs or {})
        self.templates_dict = templates_dict
        if templates_exts:
            self.template_ext = tuple(templates_exts)
        self.show_return_value_in_logs = show_return_value_in_logs

    def execute(self, context) -> Any:
        merged = dict(context)
        merged.update(self.op_kwargs)
        merged["templates_dict"] = self.templates_dict
        self.op_kwargs = self.determine_kwargs(merged)
        # A generator function's yielded Metadata annotate its asset events (Airflow 3).
        self._outlet_events = context.get("outlet_events")
        result = self.execute_callable()
        if self.show_return_value_in_logs:
            self.log.info("Done. Returned value was: %s", result)
        else:
            self.log.info("Done. Returned value not shown")
        return result

    def determine_kwargs(self, context: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments the function gets from ``context`` and ``op_kwargs``."""
        return determine_kwargs(self.python_callable, self.op_args, context)

    def execute_callable(self) -> Any:
        """Call the function with the resolved arguments (a generator function is run to its
        end; each ``Metadata`` it yields annotates an asset event; an ``async def`` runs on
        an event loop of its own in the try's process, as Airflow 3 allows)."""
        if inspect.iscoroutinefunction(self.python_callable):
            return run_coroutine(self.python_callable(*self.op_args, **self.op_kwargs))
        if inspect.isgeneratorfunction(self.python_callable):
            from updraft.assets import run_generator_with_metadata

            return run_generator_with_metadata(
                self.python_callable(*self.op_args, **self.op_kwargs),
                getattr(self, "_outlet_events", None), self.log)
        return self.python_callable(*self.op_args, **self.op_kwargs)


def run_coroutine(coroutine) -> Any:
    """Run an async task body to its end on a new event loop (the try's thread has none;
    one already running here, as in a notebook, gets a helper thread)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class BranchPythonOperator(PythonOperator, SkipMixin):
    """Calls a function returning the task id(s) to follow; other direct downstreams skip."""

    inherits_from_skipmixin = True

    def execute(self, context) -> Any:
        branch = super().execute(context)
        self.skip_all_except(context, branch)
        return branch


class ShortCircuitOperator(PythonOperator, SkipMixin):
    """Calls a function; if the result is falsy, downstream tasks are skipped."""

    inherits_from_skipmixin = True

    def __init__(self, *, ignore_downstream_trigger_rules: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ignore_downstream_trigger_rules = ignore_downstream_trigger_rules

    def execute(self, context) -> Any:
        condition = super().execute(context)
        self.log.info("Condition result is %s", condition)
        if condition:
            self.log.info("Proceeding with downstream tasks...")
            return condition
        if self.ignore_downstream_trigger_rules:
            to_skip = sorted(self.get_flat_relative_ids(upstream=False))
        else:
            to_skip = sorted(self.downstream_task_ids)
        self.log.info("Skipping downstream tasks: %s", to_skip)
        self.skip(context, to_skip)
        return condition


class _NotSupportedPythonOperator(BaseOperator):
    feature = ""

    def __init__(self, **kwargs):
        raise NotSupportedByUpdraft(f"not supported by Updraft: {self.feature}")


class PythonVirtualenvOperator(_NotSupportedPythonOperator):
    feature = "PythonVirtualenvOperator (run the task in the worker's environment instead)"


class ExternalPythonOperator(_NotSupportedPythonOperator):
    feature = "ExternalPythonOperator (run the task in the worker's environment instead)"


def get_current_context() -> dict:
    """The context of the task running in this thread (for TaskFlow helpers)."""
    from updraft.runtime_context import current_context

    return current_context()
