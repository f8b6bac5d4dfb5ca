"""EmailOperator and SmtpHook against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import Message

import pytest
import services

from updraft.config import conf
from updraft.dag import DAG
from updraft.hooks.base import BaseHook
from updraft.hooks.smtp import SmtpHook
from updraft.operators.email import EmailOperator
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

START = datetime(2024, 1, 1, tzinfo=UTC)
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def smtp_server(monkeypatch):
    """A running SMTP server, as [smtp] and as connection ``mail``."""
    collector, controller = services.start_smtp_server(monkeypatch)
    monkeypatch.setenv("UPDRAFT_CONN_MAIL",
                       f"smtp://127.0.0.1:{collector.port}/?from_email=conn%40example.com")
    conf.reload()
    yield collector
    controller.stop()


def _parts(message: Message) -> dict[str, Message]:
    return {part.get_content_type(): part for part in message.walk()}


def test_email_operator_templated_with_cc_bcc_and_attachment(smtp_server, tmp_path):
    report = tmp_path / "report_2024-03-01.csv"
    report.write_text("a,b\n1,2\n")
    with DAG("mailer", start_date=START, schedule=None) as dag:
        EmailOperator(task_id="send", to="{{ params.team }}@example.com",
                      cc=["cc1@example.com", "cc2@example.com"], bcc="hidden@example.com",
                      subject="Report for {{ ds }}",
                      html_content="<p>Rows for {{ ds }}: {{ params.rows }}</p>",
                      files=[str(tmp_path / "report_{{ ds }}.csv")], mime_charset="utf-8",
                      params={"team": "data", "rows": 2})
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS
    [(mail_from, rcpts, message)] = smtp_server.messages
    assert mail_from == "updraft@example.com"
    assert sorted(rcpts) == ["cc1@example.com", "cc2@example.com", "data@example.com",
                             "hidden@example.com"]
    assert message["Subject"] == "Report for 2024-03-01"
    assert message["To"] == "data@example.com"
    assert message["CC"] == "cc1@example.com, cc2@example.com"
    assert "hidden" not in str(message)
    html = _parts(message)["text/html"]
    assert html.get_payload(decode=True).decode() == "<p>Rows for 2024-03-01: 2</p>"
    attachment = _parts(message)["application/octet-stream"]
    assert attachment.get_filename() == "report_2024-03-01.csv"
    assert attachment.get_payload(decode=True) == b"a,b\n1,2\n"


def test_email_operator_with_connection_and_missing_server(smtp_server, monkeypatch):
    with DAG("mailer_conn", start_date=START, schedule=None) as dag:
        EmailOperator(task_id="via_conn", conn_id="mail", to="x@example.com", subject="s",
                      html_content="h")
        EmailOperator(task_id="default_conn", conn_id="smtp_default", to="y@example.com",
                      subject="s", html_content="h")
    monkeypatch.setenv("UPDRAFT_CONN_BROKEN", f"smtp://127.0.0.1:{services.free_port()}")
    with DAG("mailer_broken", start_date=START, schedule=None) as broken:
        EmailOperator(task_id="send", conn_id="broken", to="x@example.com", subject="s",
                      html_content="h")
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.SUCCESS
    senders = sorted(m[0] for m in smtp_server.messages)
    assert senders == ["conn@example.com", "updraft@example.com"]
    failed = broken.test(logical_date=LOGICAL)
    assert failed.get_task_instance("send").state == TI.FAILED


def test_smtp_hook_as_context_manager(smtp_server, tmp_path):
    hook = BaseHook.get_hook("mail")
    assert type(hook) is SmtpHook
    with SmtpHook(smtp_conn_id="mail") as client:
        client.send_email_smtp(to="a@example.com", subject="one", html_content="<b>1</b>")
        client.send_email_smtp(to=["b@example.com"], subject="two", html_content="2",
                               from_email="me@example.com")
    assert [m[2]["Subject"] for m in smtp_server.messages] == ["one", "two"]
    assert smtp_server.messages[1][0] == "me@example.com"
    assert hook.test_connection() == (True, "Connection successfully tested")
