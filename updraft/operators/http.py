"""HttpOperator (also SimpleHttpOperator): one HTTP request, its response text as the XCom."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from updraft.exceptions import UpdraftException
from updraft.hooks.http import HttpHook
from updraft.operators.base import BaseOperator
from updraft.operators.python import determine_kwargs


class HttpOperator(BaseOperator):
    """Calls ``endpoint`` on the connection's base URL.

    ``response_check(response, **context)`` returning false fails the task;
    ``response_filter(response, **context)`` makes the XCom (else the response text).
    ``pagination_function(response)`` returning request arguments fetches the next page;
    then the filter gets the list of responses. With ``deferrable=True`` the request is
    sent by a triggerer (``HttpTrigger``) while the task holds no worker slot, and
    ``execute_complete`` processes the response (with ``retry_args`` or
    ``request_kwargs`` the request runs in the try, which the trigger cannot carry).
    """

    conn_id_field = "http_conn_id"
    template_fields: Sequence[str] = ("endpoint", "data", "headers")
    template_fields_renderers: ClassVar[dict[str, str]] = {"headers": "json", "data": "py"}
    template_ext: Sequence[str] = ()
    ui_color = "#f4a460"

    def __init__(self, *, endpoint: str | None = None, method: str = "POST",
                 data: Any = None, headers: dict[str, str] | None = None,
                 pagination_function: Callable | None = None,
                 response_check: Callable[..., bool] | None = None,
                 response_filter: Callable[..., Any] | None = None,
                 extra_options: dict[str, Any] | None = None,
                 request_kwargs: dict[str, Any] | None = None,
                 http_conn_id: str = "http_default", log_response: bool = False,
                 auth_type: Any = None, tcp_keep_alive: bool = True,
                 tcp_keep_alive_idle: int = 120, tcp_keep_alive_count: int = 20,
                 tcp_keep_alive_interval: int = 30, deferrable: bool = False,
                 retry_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.http_conn_id = http_conn_id
        self.method = method
        self.endpoint = endpoint
        self.headers = headers or {}
        self.data = data or {}
        self.pagination_function = pagination_function
        self.response_check = response_check
        self.response_filter = response_filter
        self.extra_options = extra_options or {}
        self.request_kwargs = request_kwargs or {}
        self.log_response = log_response
        self.auth_type = auth_type
        self.tcp_keep_alive = tcp_keep_alive
        self.retry_args = retry_args

    @property
    def hook(self) -> HttpHook:
        """A hook for this operator's connection and method."""
        return HttpHook(self.method, http_conn_id=self.http_conn_id, auth_type=self.auth_type,
                        tcp_keep_alive=self.tcp_keep_alive)

    def _request(self, hook: HttpHook, endpoint, data, headers, extra_options):
        if self.retry_args:
            return hook.run_with_advanced_retry(self.retry_args, endpoint=endpoint, data=data,
                                                headers=headers, extra_options=extra_options,
                                                **self.request_kwargs)
        return hook.run(endpoint, data, headers, extra_options, **self.request_kwargs)

    def execute(self, context: dict) -> Any:
        if self.deferrable and not self.retry_args and not self.request_kwargs:
            self._defer_request(self.endpoint, self.data, self.headers, self.extra_options,
                                paginated=[])
        self.log.info("Calling HTTP method")
        hook = self.hook
        response = self._request(hook, self.endpoint, self.data, self.headers,
                                 self.extra_options)
        response = self.paginate_sync(hook, response)
        return self.process_response(context, response)

    # -- deferrable=True: the request waits in a triggerer, holding no worker slot ----------

    def _defer_request(self, endpoint, data, headers, extra_options, paginated: list) -> None:
        from updraft.triggers.http import HttpTrigger

        self.log.info("Deferring the HTTP request to the triggerer")
        self.defer(trigger=HttpTrigger(http_conn_id=self.http_conn_id, method=self.method,
                                       auth_type=self.auth_type, endpoint=endpoint,
                                       headers=headers, data=data,
                                       extra_options=extra_options),
                   method_name="execute_complete",
                   kwargs={"paginated_responses": paginated})

    def execute_complete(self, context: dict, event: dict | None = None,
                         paginated_responses: list[str] | None = None) -> Any:
        """The triggerer's answer: the response (or its error), as Airflow's operator."""
        from updraft.triggers.http import decode_response

        event = event or {}
        if event.get("status") != "success":
            raise UpdraftException(f"Unexpected error in the operation: "
                                   f"{event.get('message', event)}")
        response = decode_response(event["response"])
        if self.pagination_function:
            paginated = list(paginated_responses or []) + [event["response"]]
            next_params = self.pagination_function(response)
            if next_params:
                merged = self._merged_request(next_params)
                self._defer_request(merged["endpoint"], merged["data"], merged["headers"],
                                    merged["extra_options"], paginated=paginated)
            response = [decode_response(item) for item in paginated]
        return self.process_response(context, response)

    def _merged_request(self, next_params: dict[str, Any]) -> dict[str, Any]:
        merged = {"endpoint": self.endpoint, "data": self.data, "headers": self.headers,
                  "extra_options": self.extra_options}
        for key, value in next_params.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
        return merged

    def paginate_sync(self, hook: HttpHook, response):
        """Follow ``pagination_function`` until it returns nothing; one response or a list."""
        if not self.pagination_function:
            return response
        responses = [response]
        while True:
            next_params = self.pagination_function(response)
            if not next_params:
                return responses
            merged = self._merged_request(next_params)
            response = self._request(hook, merged["endpoint"], merged["data"],
                                     merged["headers"], merged["extra_options"])
            responses.append(response)

    def process_response(self, context: dict, response) -> Any:
        """Log, check and filter the response(s); return what becomes the XCom."""
        if self.log_response:
            for item in response if isinstance(response, list) else [response]:
                self.log.info(item.text)
        if self.response_check:
            kwargs = determine_kwargs(self.response_check, [response], context)
            if not self.response_check(response, **kwargs):
                raise UpdraftException("Response check returned False.")
        if self.response_filter:
            kwargs = determine_kwargs(self.response_filter, [response], context)
            return self.response_filter(response, **kwargs)
        if isinstance(response, list):
            return [item.text for item in response]
        return response.text


class SimpleHttpOperator(HttpOperator):
    """Airflow's older name of HttpOperator."""


__all__ = ["HttpOperator", "SimpleHttpOperator"]
