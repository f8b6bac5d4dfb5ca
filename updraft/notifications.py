"""Notifiers: callbacks that send a message when a task or a run changes state.

A notifier is an object given where a callback goes (``on_failure_callback=``,
``on_success_callback=``, ``on_retry_callback=``... of a task or a DAG). Called with the
context, it renders its ``template_fields`` with that context, then calls ``notify(context)``:
Airflow 3's ``BaseNotifier`` (served as ``airflow.sdk.BaseNotifier`` and
``airflow.notifications.basenotifier.BaseNotifier``). Fields are rendered on a copy, so one
notifier can serve every failure of a DAG.

Updraft registers two in the entry-point group ``updraft.notifiers``: ``smtp``
(:class:`SmtpNotifier`, Airflow's SMTP provider notifier) and ``nats`` (:class:`NatsNotifier`,
which publishes a JSON message on a NATS subject). ``get_notifier("nats", subject=...)``
builds any registered notifier by name.
"""

from __future__ import annotations

import copy
import html
import json
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

GROUP = "notifiers"


class BaseNotifier:
    """Base class of notifiers: write ``notify(context)``; list templated attributes in
    ``template_fields``."""

    template_fields: Sequence[str] = ()
    template_ext: Sequence[str] = ()

    def __init__(self, context: dict | None = None) -> None:
        self.context = context or {}

    def _update_context(self, context: dict) -> dict:
        """Make the notifier's own fields visible to its templates (as Airflow does)."""
        context.update((name, getattr(self, name, None)) for name in self.template_fields)
        return context

    def render_template_fields(self, context: dict, jinja_env: Any = None) -> None:
        """Render each of ``template_fields`` in place with ``context``."""
        from updraft.templating import get_jinja_env, render_template_fields

        env = jinja_env or get_jinja_env(context.get("dag"))
        render_template_fields(self, context, env)

    def notify(self, context: dict) -> None:
        """Send the notification."""
        raise NotImplementedError(f"{type(self).__name__} must implement notify(context)")

    def __call__(self, *args: Any) -> None:
        """Render and send, with the context of the callback (or Airflow 2's SLA-miss
        arguments: dag, task_list, blocking_task_list, slas, blocking_tis)."""
        if len(args) == 1:
            context = dict(args[0] or {})
        else:
            context = {"dag": args[0], "task_list": args[1], "blocking_task_list": args[2],
                       "slas": args[3] if len(args) > 3 else None,
                       "blocking_tis": args[4] if len(args) > 4 else None}
        notifier = copy.copy(self)
        notifier._update_context(context)
        notifier.render_template_fields(context)
        try:
            notifier.notify(context)
        except Exception as exc:
            log.error("Failed to send notification with %s: %s", type(self).__name__, exc)
            raise


def get_notifier(name: str, **kwargs: Any) -> BaseNotifier:
    """A new notifier of the class registered as ``name`` in ``updraft.notifiers``."""
    from updraft.plugins import registry

    return registry.load(GROUP, name)(**kwargs)


def _ti_summary(context: dict) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    exception = context.get("exception")

    def iso(value: Any) -> str | None:
        return value.isoformat() if hasattr(value, "isoformat") else value

    return {
        "dag_id": getattr(dag, "dag_id", None) or getattr(ti, "dag_id", None),
        "run_id": getattr(dag_run, "run_id", None) or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
        "state": str(getattr(ti, "state", None) or getattr(dag_run, "state", None) or ""),
        "logical_date": iso(context.get("logical_date")),
        "exception": f"{type(exception).__name__}: {exception}" if exception else None,
        "reason": context.get("reason"),
    }


class SmtpNotifier(BaseNotifier):
    """Email through ``[smtp]`` or an SMTP connection (Airflow's
    ``airflow.providers.smtp.notifications.smtp.SmtpNotifier``)."""

    template_fields = ("from_email", "to", "subject", "html_content", "files", "cc", "bcc",
                       "mime_subtype", "mime_charset", "custom_headers")
    template_ext = (".html", ".htm")

    DEFAULT_SUBJECT = ("Updraft: DAG {{ dag.dag_id }} - Task {{ ti.task_id if ti else '-' }} "
                       "- Run ID {{ run_id }} in State {{ ti.state if ti else dag_run.state }}")

    def __init__(self, *, to: str | Sequence[str], from_email: str | None = None,
                 smtp_conn_id: str | None = None, subject: str | None = None,
                 html_content: str | None = None, files: list[str] | None = None,
                 cc: str | Sequence[str] | None = None, bcc: str | Sequence[str] | None = None,
                 mime_subtype: str = "mixed", mime_charset: str = "utf-8",
                 custom_headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__()
        # Airflow's default connection id; Updraft falls back to [smtp] when it is not defined.
        self.smtp_conn_id = smtp_conn_id
        self.from_email = from_email
        self.to = to
        self.subject = subject or self.DEFAULT_SUBJECT
        self.html_content = html_content
        self.files = files
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.custom_headers = custom_headers

    def notify(self, context: dict) -> None:
        from updraft.alerts import send_email

        body = self.html_content
        if body is None:
            summary = _ti_summary(context)
            body = "".join(f"{html.escape(k)}: {html.escape(str(v))}<br>"
                           for k, v in summary.items() if v is not None)
        send_email(self.to, str(self.subject), str(body), files=self.files, cc=self.cc,
                   bcc=self.bcc, mime_subtype=self.mime_subtype,
                   mime_charset=self.mime_charset, conn_id=self.smtp_conn_id,
                   from_email=self.from_email, custom_headers=self.custom_headers)


def _nats_connect_options() -> dict[str, Any]:
    """nats-py options for ``[nats]`` credentials and TLS (the same settings the nodes use)."""
    import ssl
    from pathlib import Path

    from updraft.config import conf

    def opt(key: str) -> str:
        return str(conf.get("nats", key) or "").strip()

    options: dict[str, Any] = {}
    if opt("user"):
        options.update(user=opt("user"), password=opt("password"))
    if opt("token"):
        options["token"] = opt("token")
    seed = opt("nkeys_seed")
    if seed:
        path = Path(seed).expanduser()
        options["nkeys_seed" if path.is_file() else "nkeys_seed_str"] = \
            str(path) if path.is_file() else seed
    if opt("creds_file"):
        options["user_credentials"] = str(Path(opt("creds_file")).expanduser())
    if opt("tls_ca") or opt("tls_cert"):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cafile=opt("tls_ca") or None)
        if opt("tls_cert"):
            context.load_cert_chain(opt("tls_cert"), opt("tls_key") or None)
        options["tls"] = context
    return options


class NatsNotifier(BaseNotifier):
    """Publish a JSON message on a NATS subject (core NATS; JetStream streams that bind the
    subject store it too).

    ``message`` (templated) is a dict or a string; by default it describes the task instance
    or run: dag_id, run_id, task_id, map_index, try_number, state, logical_date, exception.
    ``servers`` defaults to ``[nats] servers`` with its credentials.
    """

    template_fields = ("subject", "message", "headers")

    def __init__(self, *, subject: str, message: dict | str | None = None,
                 servers: str | list[str] | None = None, headers: dict[str, str] | None = None,
                 timeout: float = 5.0, **kwargs: Any) -> None:
        super().__init__()
        self.subject = subject
        self.message = message
        self.servers = servers
        self.headers = headers
        self.timeout = timeout

    def payload(self, context: dict) -> bytes:
        """The bytes published: ``message`` as JSON (a string as it is), or the summary."""
        message = self.message if self.message is not None else {"v": 1, **_ti_summary(context)}
        if isinstance(message, bytes):
            return message
        if isinstance(message, str):
            return message.encode()
        return json.dumps(message, default=str).encode()

    def notify(self, context: dict) -> None:
        import asyncio
        import threading

        from updraft.config import conf

        servers = self.servers or conf.get("nats", "servers")
        if isinstance(servers, str):
            servers = [s.strip() for s in servers.split(",") if s.strip()]
        subject, data, headers = str(self.subject), self.payload(context), self.headers

        async def publish() -> None:
            import nats

            client = await nats.connect(servers=servers, connect_timeout=self.timeout,
                                        max_reconnect_attempts=0, allow_reconnect=False,
                                        **_nats_connect_options())
            try:
                await client.publish(subject, data, headers=headers)
                await client.flush(timeout=self.timeout)
            finally:
                await client.close()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(publish())
            return
        # Called from inside an event loop: publish from a thread of its own.
        failure: list[BaseException] = []
        worker = threading.Thread(target=lambda: _run_capturing(publish, failure), daemon=True)
        worker.start()
        worker.join(self.timeout * 3)
        if failure:
            raise failure[0]


def _run_capturing(coroutine_function: Any, failure: list[BaseException]) -> None:
    import asyncio

    try:
        asyncio.run(coroutine_function())
    except BaseException as exc:  # noqa: BLE001  (re-raised by the caller)
        failure.append(exc)


__all__ = ["BaseNotifier", "NatsNotifier", "SmtpNotifier", "get_notifier"]
