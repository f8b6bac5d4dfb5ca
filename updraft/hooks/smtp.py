"""SmtpHook: an SMTP client from an ``smtp`` (or Airflow ``email``) connection.

Settings are read by ``updraft.alerts.smtp_settings``: the connection's host, port, login
and password, extras ``ssl``/``disable_ssl``, ``starttls``/``disable_tls``, ``timeout``,
``retry_limit``, ``from_email``, over the ``[smtp]`` configuration. Used as a context
manager the hook keeps one logged-in client for several emails.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable
from typing import Any

from updraft.alerts import (
    EmailDeliveryError,
    _connect,
    build_mime_message,
    send_mime_email,
    smtp_settings,
)
from updraft.hooks.base import BaseHook


class SmtpHook(BaseHook):
    """Sends email through the SMTP server of connection ``smtp_conn_id``."""

    conn_name_attr = "smtp_conn_id"
    default_conn_name = "smtp_default"
    conn_type = "smtp"
    hook_name = "SMTP"

    def __init__(self, smtp_conn_id: str = default_conn_name, auth_type: str = "basic",
                 **kwargs: Any) -> None:
        super().__init__()
        if auth_type != "basic":
            from updraft.exceptions import NotSupportedByUpdraft

            raise NotSupportedByUpdraft(f"not supported by Updraft: SmtpHook auth_type="
                                        f"{auth_type!r} (only basic login)")
        self.smtp_conn_id = smtp_conn_id
        self.smtp_client: smtplib.SMTP | None = None

    def get_conn(self) -> SmtpHook:
        """Connect and log in (once); returns the hook, as Airflow's does."""
        if self.smtp_client is None:
            settings = smtp_settings(self.smtp_conn_id)
            client = _connect(settings)
            try:
                if settings.starttls:
                    client.starttls(context=ssl.create_default_context())
                if settings.user and settings.password:
                    client.login(settings.user, settings.password)
            except smtplib.SMTPException as exc:
                client.close()
                raise EmailDeliveryError(f"the SMTP server at {settings.host}:{settings.port} "
                                         f"refused the login: {exc}") from exc
            self.smtp_client = client
        return self

    def __enter__(self) -> SmtpHook:  # noqa: PYI034  (Airflow's hook returns get_conn())
        return self.get_conn()

    def __exit__(self, *exc_info: object) -> None:
        client, self.smtp_client = self.smtp_client, None
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def send_email_smtp(self, *, to: str | Iterable[str], subject: str, html_content: str,
                        from_email: str | None = None, files: list[str] | None = None,
                        dryrun: bool = False, cc: str | Iterable[str] | None = None,
                        bcc: str | Iterable[str] | None = None, mime_subtype: str = "mixed",
                        mime_charset: str = "utf-8", custom_headers: dict[str, Any] | None = None,
                        **kwargs: Any) -> None:
        """Send an HTML email with optional attachments, cc and bcc."""
        settings = smtp_settings(self.smtp_conn_id)
        mail_from = from_email or settings.mail_from
        msg, recipients = build_mime_message(mail_from=mail_from, to=to, subject=subject,
                                             html_content=html_content, files=files, cc=cc,
                                             bcc=bcc, mime_subtype=mime_subtype,
                                             mime_charset=mime_charset,
                                             custom_headers=custom_headers)
        if dryrun:
            return
        if self.smtp_client is None:
            send_mime_email(mail_from, recipients, msg, conn_id=self.smtp_conn_id)
            return
        try:
            self.smtp_client.sendmail(mail_from, recipients, msg.as_string())
        except smtplib.SMTPException as exc:
            raise EmailDeliveryError(f"the SMTP server at {settings.host}:{settings.port} "
                                     f"refused the email: {exc}") from exc

    def test_connection(self) -> tuple[bool, str]:
        """(True, message) if the server accepts a connection and login."""
        try:
            with self:
                pass
            return True, "Connection successfully tested"
        except Exception as exc:  # noqa: BLE001  (the message is the answer)
            return False, str(exc)


class EmailHook(SmtpHook):
    """Airflow's smtp provider calls the connection type ``email``."""

    conn_type = "email"


__all__ = ["EmailHook", "SmtpHook"]
