"""SqlSensor: waits until a query's first row says so (Airflow's common-sql sensor)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from updraft.exceptions import UpdraftException
from updraft.hooks.base import BaseHook
from updraft.hooks.sql import SqlHook
from updraft.sensors.base import BaseSensorOperator


class SqlSensor(BaseSensorOperator):
    """Runs ``sql`` at each poke; true when the selected cell of the first row is truthy.

    ``success`` / ``failure`` are callables given that cell: ``failure`` returning true
    fails the task, ``success`` decides instead of truthiness. No rows is false, or an error
    with ``fail_on_empty``.
    """

    template_fields: Sequence[str] = ("sql", "hook_params", "parameters")
    template_ext: Sequence[str] = (".hql", ".sql")
    ui_color = "#7c7287"

    def __init__(self, *, conn_id: str, sql: str,
                 parameters: Iterable | Mapping[str, Any] | None = None,
                 success: Callable[[Any], bool] | None = None,
                 failure: Callable[[Any], bool] | None = None,
                 selector: Callable[[tuple], Any] = itemgetter(0), fail_on_empty: bool = False,
                 hook_params: dict | None = None, deferrable: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.conn_id = conn_id
        self.sql = sql
        self.parameters = parameters
        self.success = success
        self.failure = failure
        self.selector = selector
        self.fail_on_empty = fail_on_empty
        self.hook_params = hook_params

    def _get_hook(self) -> SqlHook:
        hook = BaseHook.get_connection(self.conn_id).get_hook(hook_params=self.hook_params)
        if not isinstance(hook, SqlHook):
            raise UpdraftException(
                f"The connection type is not supported by {type(self).__name__}. The associated "
                f"hook should be a subclass of `DbApiHook`. Got {type(hook).__name__}")
        return hook

    def execute(self, context: dict):
        # Callables cannot travel to a triggerer: with success/failure/a selector of its
        # own the sensor pokes in its task instead of deferring.
        plain = self.success is None and self.failure is None and \
            repr(self.selector) == "operator.itemgetter(0)"
        if not self.deferrable or not plain:
            return super().execute(context)
        if self.poke(context):
            return None
        from datetime import timedelta

        from updraft.triggers.sql import SqlSensorTrigger

        self.defer(trigger=SqlSensorTrigger(
            conn_id=self.conn_id, sql=self.sql, parameters=self.parameters,
            hook_params=self.hook_params, fail_on_empty=self.fail_on_empty,
            poke_interval=self.poke_interval),
            method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: dict, event=None) -> None:
        """The query's first row said so."""
        self.log.info("Success criteria met: %s", event)

    def poke(self, context: dict) -> bool:
        hook = self._get_hook()
        self.log.info("Poking: %s (with parameters %s)", self.sql, self.parameters)
        records = hook.get_records(self.sql, self.parameters)
        if not records:
            if self.fail_on_empty:
                raise UpdraftException("No rows returned, raising as per fail_on_empty flag")
            return False
        condition = self.selector(records[0])
        if self.failure is not None:
            if not callable(self.failure):
                raise UpdraftException(f"self.failure is present, but not callable -> "
                                       f"{self.failure}")
            if self.failure(condition):
                raise UpdraftException(f"Failure criteria met. self.failure({condition}) "
                                       "returned True")
        if self.success is not None:
            if not callable(self.success):
                raise UpdraftException(f"self.success is present, but not callable -> "
                                       f"{self.success}")
            return bool(self.success(condition))
        return bool(condition)


__all__ = ["SqlSensor"]
