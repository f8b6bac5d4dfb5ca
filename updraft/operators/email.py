"""EmailOperator: sends an HTML email (with attachments) over SMTP; every field templated."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from updraft.operators.base import BaseOperator


class EmailOperator(BaseOperator):
    """Sends ``subject`` and ``html_content`` to ``to`` (and ``cc``, ``bcc``) with ``files``.

    The server is ``conn_id``'s (an smtp connection) or, without one, ``[smtp]``. A missing
    ``smtp_default`` connection falls back to ``[smtp]`` as Airflow 2 did.
    """

    template_fields: Sequence[str] = ("to", "from_email", "subject", "html_content", "files",
                                      "cc", "bcc", "mime_charset")
    template_fields_renderers: ClassVar[dict[str, str]] = {"html_content": "html"}
    template_ext: Sequence[str] = (".html",)
    ui_color = "#e6faf9"

    def __init__(self, *, to: list[str] | str, subject: str, html_content: str,
                 from_email: str | None = None, files: list | None = None,
                 cc: list[str] | str | None = None, bcc: list[str] | str | None = None,
                 mime_subtype: str = "mixed", mime_charset: str = "utf-8",
                 conn_id: str | None = None, custom_headers: dict[str, Any] | None = None,
                 auth_type: str = "basic", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.to = to
        self.subject = subject
        self.html_content = html_content
        self.from_email = from_email
        self.files = files or []
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.conn_id = conn_id
        self.custom_headers = custom_headers
        self.auth_type = auth_type

    def _conn_id(self) -> str | None:
        if self.conn_id != "smtp_default":
            return self.conn_id
        from updraft.exceptions import UpdraftNotFoundException
        from updraft.models.connection import Connection

        try:
            Connection.get_connection_from_secrets(self.conn_id)
        except UpdraftNotFoundException:
            self.log.warning("Connection smtp_default is not defined: using [smtp] settings")
            return None
        return self.conn_id

    def execute(self, context: dict) -> None:
        from updraft.alerts import send_email

        send_email(self.to, self.subject, self.html_content, files=self.files, cc=self.cc,
                   bcc=self.bcc, mime_subtype=self.mime_subtype, mime_charset=self.mime_charset,
                   conn_id=self._conn_id(), from_email=self.from_email,
                   custom_headers=self.custom_headers)
        self.log.info("Sent an email to %s", self.to)


__all__ = ["EmailOperator"]
