"""HttpHook: calls an HTTP API with ``requests``, as Airflow's HttpHook does.

The base URL comes from the connection: ``host`` (a full URL, or a host name with
``schema`` http/https and ``port``). ``login``/``password`` become basic auth; the extra
JSON's keys become request headers, except the session settings Airflow reads there
(``proxies``, ``verify``, ``cert``, ``stream``, ``max_redirects``, ``trust_env``, ``timeout``,
``allow_redirects``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from updraft.exceptions import UpdraftException
from updraft.hooks.base import BaseHook
from updraft.secrets import mask_secret

_SESSION_EXTRAS = ("proxies", "proxy", "stream", "verify", "verify_ssl", "cert",
                   "max_redirects", "trust_env", "timeout", "allow_redirects",
                   "check_response")


def _url_from_endpoint(base_url: str | None, endpoint: str | None) -> str:
    if base_url and not base_url.endswith("/") and endpoint and not endpoint.startswith("/"):
        return base_url + "/" + endpoint
    return (base_url or "") + (endpoint or "")


class HttpHook(BaseHook):
    """Sends ``method`` requests to the connection's base URL plus an endpoint."""

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "http"
    hook_name = "HTTP"

    def __init__(self, method: str = "POST", http_conn_id: str = default_conn_name,
                 auth_type: Any = None, tcp_keep_alive: bool = True,
                 tcp_keep_alive_idle: int = 120, tcp_keep_alive_count: int = 20,
                 tcp_keep_alive_interval: int = 30, adapter: Any = None,
                 **kwargs: Any) -> None:
        super().__init__()
        self.http_conn_id = http_conn_id
        self.method = method.upper()
        self.base_url: str = ""
        self._auth_type = auth_type
        self.adapter = adapter
        self.tcp_keep_alive = tcp_keep_alive
        self.keep_alive_idle = tcp_keep_alive_idle
        self.keep_alive_count = tcp_keep_alive_count
        self.keep_alive_interval = tcp_keep_alive_interval

    @property
    def auth_type(self):
        from requests.auth import HTTPBasicAuth

        return self._auth_type or HTTPBasicAuth

    @auth_type.setter
    def auth_type(self, value) -> None:
        self._auth_type = value

    def _set_base_url(self, connection) -> None:
        host = connection.host or ""
        # An ``https://host`` URI has no schema field: its type says https.
        schema = connection.schema or ("https" if connection.conn_type == "https" else "http")
        if "://" in host:
            self.base_url = host
        else:
            self.base_url = f"{schema}://{host}" if host else f"{schema}://"
            if connection.port:
                self.base_url = f"{self.base_url}:{connection.port}"
        if not urlparse(self.base_url).scheme:
            raise ValueError(f"Invalid base URL: Missing scheme in {self.base_url}")

    def get_conn(self, headers: dict | None = None, extra_options: dict | None = None):
        """A ``requests.Session`` set up from the connection (auth, headers, TLS, proxies)."""
        import requests

        session = requests.Session()
        if self.http_conn_id:
            connection = self.get_connection(self.http_conn_id)
            self._set_base_url(connection)
            if connection.login:
                mask_secret(connection.password)
                session.auth = self.auth_type(connection.login, connection.password)
            elif self._auth_type:
                session.auth = self.auth_type()
            extra = connection.extra_dejson
            if extra:
                session.proxies = extra.get("proxies", extra.get("proxy", {}))
                session.stream = extra.get("stream", False)
                session.verify = extra.get("verify", extra.get("verify_ssl", True))
                session.cert = extra.get("cert")
                if "max_redirects" in extra:
                    session.max_redirects = int(extra["max_redirects"])
                session.trust_env = extra.get("trust_env", True)
                headers_from_extra = {k: v for k, v in extra.items()
                                      if k not in _SESSION_EXTRAS}
                try:
                    session.headers.update(headers_from_extra)
                except TypeError:
                    self.log.warning("Connection to %s has invalid extra field.", connection.host)
        if self.adapter is not None:
            session.mount(self.base_url or "http://", self.adapter)
        if headers:
            session.headers.update(headers)
        return session

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """The full URL of ``endpoint`` under the base URL."""
        return _url_from_endpoint(self.base_url, endpoint)

    def run(self, endpoint: str | None = None, data: dict | str | None = None,
            headers: dict | None = None, extra_options: dict | None = None,
            **request_kwargs: Any):
        """Send one request; the response, or UpdraftException for a 4xx/5xx status."""
        import requests

        extra_options = extra_options or {}
        session = self.get_conn(headers, extra_options)
        url = self.url_from_endpoint(endpoint)
        if self.method == "GET":
            request = requests.Request(self.method, url, params=data, headers=headers,
                                       **request_kwargs)
        elif self.method == "HEAD":
            request = requests.Request(self.method, url, headers=headers, **request_kwargs)
        else:
            request = requests.Request(self.method, url, data=data, headers=headers,
                                       **request_kwargs)
        prepped = session.prepare_request(request)
        self.log.debug("Sending '%s' to url: %s", self.method, url)
        return self.run_and_check(session, prepped, extra_options)

    def check_response(self, response) -> None:
        """UpdraftException ``"<status>:<reason>"`` for a 4xx/5xx response; the body is logged."""
        import requests

        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError:
            self.log.error("HTTP error: %s", response.reason)
            self.log.error(response.text)
            raise UpdraftException(f"{response.status_code}:{response.reason}") from None

    def run_and_check(self, session, prepped_request, extra_options: dict):
        """Send a prepared request with the options given; check the status unless told not."""
        import requests

        settings = session.merge_environment_settings(
            prepped_request.url, proxies=extra_options.get("proxies", {}),
            stream=extra_options.get("stream", False), verify=extra_options.get("verify"),
            cert=extra_options.get("cert"))
        send_kwargs: dict[str, Any] = {"timeout": extra_options.get("timeout"),
                                       "allow_redirects": extra_options.get("allow_redirects",
                                                                            True)}
        send_kwargs.update(settings)
        try:
            response = session.send(prepped_request, **send_kwargs)
        except requests.exceptions.ConnectionError as exc:
            self.log.warning("%s Tenacity will retry to execute the operation", exc)
            raise
        if extra_options.get("check_response", True):
            self.check_response(response)
        return response

    def run_with_advanced_retry(self, _retry_args: dict[str, Any], *args: Any, **kwargs: Any):
        """``run`` with retries: tenacity's arguments if tenacity is installed, else a loop.

        Without tenacity, ``_retry_args`` may give ``stop`` (a number of attempts, or an
        object with ``max_attempt_number``), ``wait`` (first wait in seconds, doubled after
        each failure; default 1) and ``max_wait``; every exception is retried.
        """
        try:
            import tenacity
        except ImportError:
            tenacity = None
        if tenacity is not None:
            self._retry_obj = tenacity.Retrying(**_retry_args)
            return self._retry_obj(self.run, *args, **kwargs)
        return self._simple_retry(_retry_args, self.run, *args, **kwargs)

    def _simple_retry(self, retry_args: dict[str, Any], func: Callable, *args: Any,
                      **kwargs: Any):
        stop = retry_args.get("stop", retry_args.get("max_attempts", 3))
        attempts = int(getattr(stop, "max_attempt_number", stop))
        wait = retry_args.get("wait", 1.0)
        wait = float(wait) if isinstance(wait, (int, float)) else 1.0
        max_wait = float(retry_args.get("max_wait", 60.0))
        reraise = retry_args.get("reraise", True)
        last: BaseException | None = None
        for attempt in range(1, max(attempts, 1) + 1):
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001  (retried, then re-raised)
                last = exc
                if attempt >= attempts:
                    break
                delay = min(wait * (2 ** (attempt - 1)), max_wait)
                self.log.warning("Attempt %s of %s failed (%s); retrying in %.1fs", attempt,
                                 attempts, exc, delay)
                time.sleep(delay)
        assert last is not None
        if reraise:
            raise last
        raise UpdraftException(f"gave up after {attempts} attempt(s): {last}") from last

    def test_connection(self) -> tuple[bool, str]:
        """(True, message) if a request to the base URL succeeds, else (False, the error)."""
        try:
            self.run()
            return True, "Connection successfully tested"
        except Exception as exc:  # noqa: BLE001  (the message is the answer)
            return False, str(exc)


class HttpsHook(HttpHook):
    """``https`` connections: an HttpHook whose default scheme is https."""

    conn_type = "https"


__all__ = ["HttpHook", "HttpsHook"]
