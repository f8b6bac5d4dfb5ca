"""The HTTP triggers: one fires when an endpoint answers with a success status (the
deferrable ``HttpSensor``), the other sends one request and hands its response back (the
deferrable ``HttpOperator``)."""

from __future__ import annotations

import asyncio
from typing import Any

from updraft.triggers.base import BaseTrigger, TriggerEvent


class HttpSensorTrigger(BaseTrigger):
    """Requests ``endpoint`` of the ``http_conn_id`` connection every ``poke_interval``
    seconds until it answers 2xx/3xx (payload ``True``); a status in
    ``response_error_codes_allowlist`` (default 404) means "not yet", any other error fails
    the trigger (and the task). The request runs in a thread, never on the loop."""

    def __init__(self, endpoint: str, http_conn_id: str = "http_default", method: str = "GET",
                 data: dict[str, Any] | str | None = None,
                 headers: dict[str, Any] | None = None,
                 extra_options: dict[str, Any] | None = None, poke_interval: float = 5.0,
                 response_error_codes_allowlist: list[str] | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.http_conn_id = http_conn_id
        self.method = method
        self.data = data
        self.headers = headers
        self.extra_options = extra_options
        self.poke_interval = float(poke_interval)
        self.response_error_codes_allowlist = list(response_error_codes_allowlist or ["404"])

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.http.HttpSensorTrigger", {
            "endpoint": self.endpoint, "http_conn_id": self.http_conn_id,
            "method": self.method, "data": self.data, "headers": self.headers,
            "extra_options": self.extra_options, "poke_interval": self.poke_interval,
            "response_error_codes_allowlist": self.response_error_codes_allowlist})

    def _answered(self) -> bool:
        from updraft.exceptions import UpdraftException
        from updraft.hooks.http import HttpHook

        hook = HttpHook(method=self.method, http_conn_id=self.http_conn_id)
        try:
            hook.run(self.endpoint, data=self.data, headers=self.headers,
                     extra_options=self.extra_options or {})
        except UpdraftException as exc:
            if str(exc).startswith(tuple(self.response_error_codes_allowlist)):
                return False
            raise
        return True

    async def run(self):
        while not await asyncio.to_thread(self._answered):
            await asyncio.sleep(self.poke_interval)
        yield TriggerEvent(True)


class HttpTrigger(BaseTrigger):
    """Sends one request to ``endpoint`` of the ``http_conn_id`` connection (in a thread,
    never on the loop) and fires once with ``{"status": "success", "response": ...}``, the
    response pickled and base64-encoded as Airflow's HttpTrigger does
    (``decode_response`` reads it back), or ``{"status": "error", "message": ...}``."""

    def __init__(self, http_conn_id: str = "http_default", auth_type: Any = None,
                 method: str = "POST", endpoint: str | None = None,
                 headers: dict[str, str] | None = None,
                 data: dict[str, Any] | str | None = None,
                 extra_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.http_conn_id = http_conn_id
        self.method = method
        self.auth_type = auth_type
        self.endpoint = endpoint
        self.headers = headers
        self.data = data
        self.extra_options = extra_options

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("updraft.triggers.http.HttpTrigger", {
            "http_conn_id": self.http_conn_id, "method": self.method,
            "auth_type": self.auth_type, "endpoint": self.endpoint, "headers": self.headers,
            "data": self.data, "extra_options": self.extra_options})

    def _request(self):
        from updraft.hooks.http import HttpHook

        hook = HttpHook(method=self.method, http_conn_id=self.http_conn_id,
                        auth_type=self.auth_type)
        return hook.run(self.endpoint, data=self.data, headers=self.headers,
                        extra_options=self.extra_options or {})

    async def run(self):
        try:
            response = await asyncio.to_thread(self._request)
        except Exception as exc:  # noqa: BLE001  (the task fails with the message)
            yield TriggerEvent({"status": "error", "message": str(exc) or type(exc).__name__})
            return
        yield TriggerEvent({"status": "success", "response": encode_response(response)})


def encode_response(response) -> str:
    """A ``requests.Response`` as text that fits an event's JSON payload."""
    import base64
    import pickle

    return base64.standard_b64encode(pickle.dumps(response)).decode("ascii")


def decode_response(text: str):
    """The ``requests.Response`` that ``encode_response`` wrote (the triggerer and the try
    run the same install, and the payload comes from Updraft's own store)."""
    import base64
    import pickle

    return pickle.loads(base64.standard_b64decode(text))  # noqa: S301


__all__ = ["HttpSensorTrigger", "HttpTrigger", "decode_response", "encode_response"]
