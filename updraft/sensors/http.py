"""HttpSensor: pokes an HTTP endpoint until it answers (and ``response_check`` agrees)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from updraft.exceptions import UpdraftException
from updraft.hooks.http import HttpHook
from updraft.operators.python import determine_kwargs
from updraft.sensors.base import BaseSensorOperator


class HttpSensor(BaseSensorOperator):
    """Sends a request at each poke: a 2xx/3xx answer is true (or ``response_check`` says).

    Error statuses in ``response_error_codes_allowlist`` (default 404) mean "not yet";
    other 4xx/5xx statuses fail the task.
    """

    template_fields: Sequence[str] = ("endpoint", "request_params", "headers")

    def __init__(self, *, endpoint: str, http_conn_id: str = "http_default",
                 method: str = "GET", request_params: dict[str, Any] | None = None,
                 request_kwargs: dict[str, Any] | None = None,
                 headers: dict[str, Any] | None = None,
                 response_error_codes_allowlist: list[str] | None = None,
                 response_check: Callable[..., bool] | None = None,
                 extra_options: dict[str, Any] | None = None, tcp_keep_alive: bool = True,
                 tcp_keep_alive_idle: int = 120, tcp_keep_alive_count: int = 20,
                 tcp_keep_alive_interval: int = 30, deferrable: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = method
        self.request_params = request_params or {}
        self.headers = headers or {}
        self.extra_options = extra_options or {}
        self.request_kwargs = request_kwargs or {}
        self.response_error_codes_allowlist = (
            ("404",) if response_error_codes_allowlist is None
            else tuple(str(c) for c in response_error_codes_allowlist))
        self.response_check = response_check
        self.tcp_keep_alive = tcp_keep_alive

    def execute(self, context: dict):
        # As Airflow: a response_check runs in the task, so it pokes instead of deferring.
        if not self.deferrable or self.response_check is not None:
            return super().execute(context)
        if self.poke(context):
            return None
        from datetime import timedelta

        from updraft.triggers.http import HttpSensorTrigger

        self.defer(trigger=HttpSensorTrigger(
            endpoint=self.endpoint, http_conn_id=self.http_conn_id, method=self.method,
            data=self.request_params, headers=self.headers, extra_options=self.extra_options,
            poke_interval=self.poke_interval,
            response_error_codes_allowlist=list(self.response_error_codes_allowlist)),
            method_name="execute_complete", timeout=timedelta(seconds=self.timeout))

    def execute_complete(self, context: dict, event=None) -> None:
        """The endpoint answered."""
        self.log.info("%s completed successfully.", self.task_id)

    def poke(self, context: dict) -> bool:
        hook = HttpHook(method=self.method, http_conn_id=self.http_conn_id,
                        tcp_keep_alive=self.tcp_keep_alive)
        self.log.info("Poking: %s", self.endpoint)
        try:
            response = hook.run(self.endpoint, data=self.request_params, headers=self.headers,
                                extra_options=self.extra_options, **self.request_kwargs)
        except UpdraftException as exc:
            if str(exc).startswith(self.response_error_codes_allowlist):
                return False
            raise
        if self.response_check:
            kwargs = determine_kwargs(self.response_check, [response], context)
            return bool(self.response_check(response, **kwargs))
        return True


__all__ = ["HttpSensor"]
