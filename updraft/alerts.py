"""Email: ``send_email`` over SMTP, and the alert a task sends when it fails or retries.

The server comes from ``[smtp]`` (host, port, starttls, ssl, user, password, mail_from,
timeout, retry_limit), or from an ``smtp`` connection when ``conn_id`` is given (its host,
port, login, password; extra ``ssl``, ``starttls``, ``timeout``, ``retry_limit``,
``from_email`` override the configuration).
"""

from __future__ import annotations

import collections.abc
import html
import logging
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate
from typing import Any

from updraft.exceptions import UpdraftException

log = logging.getLogger(__name__)


class EmailDeliveryError(UpdraftException):
    """An email could not be handed to the SMTP server."""


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail."""

    host: str
    port: int
    starttls: bool
    ssl: bool
    user: str | None
    password: str | None
    mail_from: str
    timeout: float
    retry_limit: int
    source: str  # "[smtp] configuration" or "connection 'x'", for error messages


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def smtp_settings(conn_id: str | None = None) -> SmtpSettings:
    """The SMTP server to use: ``[smtp]``, overridden by connection ``conn_id`` if given."""
    from updraft.config import conf

    settings: dict[str, Any] = {
        "host": conf.get("smtp", "host"), "port": int(conf.get("smtp", "port")),
        "starttls": conf.getboolean("smtp", "starttls"),
        "ssl": conf.getboolean("smtp", "ssl"),
        "user": conf.get("smtp", "user") or None,
        "password": conf.get("smtp", "password") or None,
        "mail_from": conf.get("smtp", "mail_from"),
        "timeout": float(conf.get("smtp", "timeout")),
        "retry_limit": int(conf.get("smtp", "retry_limit")),
        "source": "[smtp] configuration",
    }
    if conn_id is not None:
        from updraft.models.connection import Connection

        conn = Connection.get_connection_from_secrets(conn_id)
        extra = conn.extra_dejson
        settings.update(source=f"connection {conn_id!r}", user=conn.login or None,
                        password=conn.password or None)
        if conn.host:
            settings["host"] = conn.host
        if conn.port:
            settings["port"] = int(conn.port)
        for key in ("ssl", "starttls"):
            if key in extra:
                settings[key] = _truthy(extra[key])
        # SmtpHook's name for ssl is disable_ssl (inverted).
        if "disable_ssl" in extra:
            settings["ssl"] = not _truthy(extra["disable_ssl"])
        if "disable_tls" in extra:
            settings["starttls"] = not _truthy(extra["disable_tls"])
        if "timeout" in extra:
            settings["timeout"] = float(extra["timeout"])
        if "retry_limit" in extra:
            settings["retry_limit"] = int(extra["retry_limit"])
        if extra.get("from_email"):
            settings["mail_from"] = extra["from_email"]
    return SmtpSettings(**settings)


def get_email_address_list(addresses: str | collections.abc.Iterable[str]) -> list[str]:
    """A list of addresses from a comma/semicolon separated string or an iterable."""
    if isinstance(addresses, str):
        return [a.strip() for a in re.split(r"[,;]", addresses) if a.strip()]
    if isinstance(addresses, collections.abc.Iterable):
        items = list(addresses)
        if not all(isinstance(item, str) for item in items):
            raise TypeError("The items in your iterable must be strings.")
        return [a.strip() for item in items for a in re.split(r"[,;]", item) if a.strip()]
    raise TypeError(f"Unexpected argument type: Received '{type(addresses).__name__}'.")


def build_mime_message(mail_from: str, to: str | collections.abc.Iterable[str], subject: str,
                       html_content: str, files: list[str] | None = None,
                       cc: str | collections.abc.Iterable[str] | None = None,
                       bcc: str | collections.abc.Iterable[str] | None = None,
                       mime_subtype: str = "mixed", mime_charset: str = "utf-8",
                       custom_headers: dict[str, Any] | None = None
                       ) -> tuple[MIMEMultipart, list[str]]:
    """The message (HTML body and attachments) and every recipient (to, cc and bcc)."""
    to_list = get_email_address_list(to)
    msg = MIMEMultipart(mime_subtype)
    msg["Subject"] = subject
    msg["From"] = mail_from
    msg["To"] = ", ".join(to_list)
    recipients = list(to_list)
    if cc:
        cc_list = get_email_address_list(cc)
        msg["CC"] = ", ".join(cc_list)
        recipients += cc_list
    if bcc:
        # Bcc recipients get the mail but appear in no header.
        recipients += get_email_address_list(bcc)
    msg["Date"] = formatdate(localtime=True)
    msg.attach(MIMEText(html_content, "html", mime_charset))
    for name in files or []:
        basename = os.path.basename(name)
        with open(name, "rb") as file:
            part = MIMEApplication(file.read(), Name=basename)
        part["Content-Disposition"] = f'attachment; filename="{basename}"'
        part["Content-ID"] = f"<{basename}>"
        msg.attach(part)
    for header, value in (custom_headers or {}).items():
        msg[header] = value
    return msg, recipients


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    where = f"{settings.host}:{settings.port}"
    try:
        if settings.ssl:
            return smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout,
                                    context=ssl.create_default_context())
        return smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except smtplib.SMTPServerDisconnected:
        raise
    except (OSError, smtplib.SMTPException) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        kind = "timed out" if isinstance(exc, (socket.timeout, TimeoutError)) else "failed"
        raise EmailDeliveryError(
            f"cannot reach the SMTP server at {where} (from the {settings.source}): "
            f"connection {kind}: {reason or type(exc).__name__}") from exc


def send_mime_email(e_from: str, e_to: list[str], mime_msg: MIMEMultipart,
                    conn_id: str | None = None, dryrun: bool = False) -> None:
    """Hand a built message to the SMTP server, retrying if the server hangs up."""
    settings = smtp_settings(conn_id)
    if dryrun:
        return
    if not e_to:
        raise EmailDeliveryError("the email has no recipients")
    attempts = max(settings.retry_limit, 1)
    for attempt in range(1, attempts + 1):
        log.info("Email alerting: attempt %s", attempt)
        try:
            smtp = _connect(settings)
        except smtplib.SMTPServerDisconnected as exc:
            if attempt == attempts:
                raise EmailDeliveryError(
                    f"the SMTP server at {settings.host}:{settings.port} closed the connection "
                    f"{attempts} time(s): {exc}") from exc
            continue
        try:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.user and settings.password:
                smtp.login(settings.user, settings.password)
            smtp.sendmail(e_from, e_to, mime_msg.as_string())
            log.info("Sent an alert email to %s", e_to)
        except smtplib.SMTPException as exc:
            raise EmailDeliveryError(f"the SMTP server at {settings.host}:{settings.port} "
                                     f"refused the email: {exc}") from exc
        finally:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                smtp.close()
        return


def send_email(to: str | collections.abc.Iterable[str], subject: str, html_content: str,
               files: list[str] | None = None, dryrun: bool = False,
               cc: str | collections.abc.Iterable[str] | None = None,
               bcc: str | collections.abc.Iterable[str] | None = None,
               mime_subtype: str = "mixed", mime_charset: str = "utf-8",
               conn_id: str | None = None, from_email: str | None = None,
               custom_headers: dict[str, Any] | None = None, **kwargs) -> None:
    """Send an HTML email (with optional attachments) over SMTP; EmailDeliveryError if not."""
    settings = smtp_settings(conn_id)
    mail_from = from_email or settings.mail_from
    msg, recipients = build_mime_message(mail_from=mail_from, to=to, subject=subject,
                                         html_content=html_content, files=files, cc=cc,
                                         bcc=bcc, mime_subtype=mime_subtype,
                                         mime_charset=mime_charset,
                                         custom_headers=custom_headers)
    send_mime_email(e_from=mail_from, e_to=recipients, mime_msg=msg, conn_id=conn_id,
                    dryrun=dryrun)


send_email_smtp = send_email


# -- task alerts -----------------------------------------------------------------------------

def task_alert_content(task, ti, state, exception, context) -> tuple[str, str]:
    """Subject and HTML body of the alert for ``ti`` reaching ``state`` (failed or retry)."""
    from updraft.config import conf
    from updraft.tasklog import try_log_path

    index = f" map_index={ti.map_index}" if ti.map_index >= 0 else ""
    subject = (f"Updraft alert: <TaskInstance: {ti.dag_id}.{ti.task_id} {ti.run_id}{index} "
               f"[{state}]>")
    log_path = try_log_path(conf.log_folder(), ti.dag_id, ti.run_id, ti.task_id, ti.map_index,
                            ti.try_number)
    max_tries = ti.max_tries if ti.max_tries is not None else (task.retries or 0)
    exception_html = html.escape(str(exception)).replace("\n", "<br>")
    if exception is not None:
        exception_html = f"{html.escape(type(exception).__name__)}: {exception_html}"
    body = (f"Try {ti.try_number} out of {max_tries + 1}<br>"
            f"Exception:<br>{exception_html}<br>"
            f"Log: {html.escape(str(log_path))}<br>"
            f"Host: {html.escape(ti.hostname or socket.getfqdn())}<br>"
            f"State: {state}<br>")
    return subject, body


def send_task_alert(task, ti, state, exception, context) -> None:
    """Email ``task.email`` that ``ti`` failed or will be retried."""
    subject, body = task_alert_content(task, ti, state, exception, context)
    send_email(get_email_address_list(task.email), subject, body)


__all__ = ["EmailDeliveryError", "SmtpSettings", "build_mime_message", "get_email_address_list",
           "send_email", "send_email_smtp", "send_mime_email", "send_task_alert",
           "smtp_settings", "task_alert_content"]
