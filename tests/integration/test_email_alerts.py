"""Email against a real SMTP server (aiosmtpd on 127.0.0.1): task alerts on retry and failure,
``send_email`` with attachments, cc and bcc, a connection, and a clear error when no server
listens."""

from __future__ import annotations

import socket
from datetime import datetime, timezone
from email.message import Message

import pytest
import services

from updraft.alerts import EmailDeliveryError, get_email_address_list, send_email
from updraft.config import conf
from updraft.dag import DAG
from updraft.operators.python import PythonOperator
from updraft.state import DagRunState
from updraft.state import TaskInstanceState as TI

START = datetime(2024, 1, 1, tzinfo=timezone.utc)  # noqa: UP017
LOGICAL = datetime(2024, 3, 1, 12, tzinfo=timezone.utc)  # noqa: UP017


@pytest.fixture
def smtp_server(monkeypatch):
    """A running SMTP server, configured as [smtp] through the environment."""
    collector, controller = services.start_smtp_server(monkeypatch)
    yield collector
    controller.stop()


def _html_body(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            return part.get_payload(decode=True).decode(part.get_content_charset())
    raise AssertionError("no HTML part")


def test_failing_task_emails_on_retry_then_on_failure(smtp_server):
    def explode():
        raise ValueError("kaboom <b>")

    with DAG("alerting", start_date=START, schedule=None) as dag:
        PythonOperator(task_id="boom", python_callable=explode, retries=1, retry_delay=0,
                       email="ops@example.com; oncall@example.com")
        PythonOperator(task_id="quiet", python_callable=explode, email="ops@example.com",
                       email_on_failure=False)
        PythonOperator(task_id="no_email", python_callable=explode)
    run = dag.test(logical_date=LOGICAL)
    assert run.state == DagRunState.FAILED
    ti = run.get_task_instance("boom")
    assert ti.state == TI.FAILED and ti.try_number == 2

    assert len(smtp_server.messages) == 2
    retry, failure = (message for _, _, message in smtp_server.messages)
    run_id = run.run_id
    ti_label = f"<TaskInstance: alerting.boom {run_id}"
    assert retry["Subject"] == f"Updraft alert: {ti_label} [up_for_retry]>"
    assert failure["Subject"] == f"Updraft alert: {ti_label} [failed]>"
    for sender, rcpts, message in smtp_server.messages:
        assert sender == "updraft@example.com"
        assert rcpts == ["ops@example.com", "oncall@example.com"]
        assert message["To"] == "ops@example.com, oncall@example.com"
        assert message["From"] == "updraft@example.com"
    retry_body, failure_body = _html_body(retry), _html_body(failure)
    assert "Try 1 out of 2" in retry_body
    assert "Try 2 out of 2" in failure_body
    assert "ValueError: kaboom &lt;b&gt;" in failure_body
    assert f"run_id={run_id}/task_id=boom/attempt=2.log" in failure_body
    assert f"Host: {socket.getfqdn()}" in failure_body


def test_send_email_with_attachment_cc_and_bcc(smtp_server, tmp_path):
    report = tmp_path / "report.csv"
    report.write_bytes(b"a,b\n1,2\n")
    send_email(to=["alice@example.com"], subject="Daily report",
               html_content="<p>See attached: é</p>", files=[str(report)],
               cc="carol@example.com, dave@example.com", bcc="boss@example.com",
               from_email="reports@example.com")
    assert len(smtp_server.messages) == 1
    sender, rcpts, message = smtp_server.messages[0]
    assert sender == "reports@example.com"
    assert rcpts == ["alice@example.com", "carol@example.com", "dave@example.com",
                     "boss@example.com"]
    assert message["Subject"] == "Daily report"
    assert message["CC"] == "carol@example.com, dave@example.com"
    assert message["Bcc"] is None and "boss@example.com" not in message.as_string()
    assert _html_body(message) == "<p>See attached: é</p>"
    attachments = [p for p in message.walk() if p.get_filename()]
    assert [a.get_filename() for a in attachments] == ["report.csv"]
    assert attachments[0].get_payload(decode=True) == b"a,b\n1,2\n"
    assert attachments[0]["Content-ID"] == "<report.csv>"


def test_send_email_through_a_connection(smtp_server, monkeypatch):
    # [smtp] points nowhere; the connection names the real server.
    monkeypatch.setenv("UPDRAFT__SMTP__PORT", str(services.free_port()))
    conf.reload()
    monkeypatch.setenv("UPDRAFT_CONN_SMTP_ALERTS",
                       f"smtp://127.0.0.1:{smtp_server.port}?from_email=alerts%40example.com")
    send_email("x@example.com;y@example.com", "via conn", "<p>hi</p>", conn_id="smtp_alerts")
    sender, rcpts, _ = smtp_server.messages[0]
    assert sender == "alerts@example.com"
    assert rcpts == ["x@example.com", "y@example.com"]


def test_clear_error_when_no_server_listens(monkeypatch):
    port = services.free_port()
    monkeypatch.setenv("UPDRAFT__SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("UPDRAFT__SMTP__PORT", str(port))
    monkeypatch.setenv("UPDRAFT__SMTP__TIMEOUT", "5")
    conf.reload()
    with pytest.raises(EmailDeliveryError) as info:
        send_email("a@example.com", "s", "<p>b</p>")
    message = str(info.value)
    assert message.startswith(f"cannot reach the SMTP server at 127.0.0.1:{port} "
                              "(from the [smtp] configuration): connection failed:")
    assert "refused" in message.lower()


def test_alert_failure_does_not_change_the_task_outcome(monkeypatch):
    monkeypatch.setenv("UPDRAFT__SMTP__HOST", "127.0.0.1")
    monkeypatch.setenv("UPDRAFT__SMTP__PORT", str(services.free_port()))
    conf.reload()

    def explode():
        raise ValueError("kaboom")

    with DAG("alert_unreachable", start_date=START, schedule=None) as dag:
        PythonOperator(task_id="boom", python_callable=explode, email="ops@example.com")
        PythonOperator(task_id="fine", python_callable=lambda: 1, email="ops@example.com")
    run = dag.test(logical_date=LOGICAL)
    assert run.get_task_instance("boom").state == TI.FAILED
    assert run.get_task_instance("fine").state == TI.SUCCESS


def test_email_address_lists():
    assert get_email_address_list("a@x.com, b@x.com;c@x.com") == ["a@x.com", "b@x.com",
                                                                   "c@x.com"]
    assert get_email_address_list(("a@x.com", "b@x.com")) == ["a@x.com", "b@x.com"]
    with pytest.raises(TypeError, match="The items in your iterable must be strings."):
        get_email_address_list([1])
    with pytest.raises(TypeError, match="Unexpected argument type: Received 'int'."):
        get_email_address_list(5)


def test_airflow_path_reexports_send_email():
    from updraft.utils import email as email_utils

    assert email_utils.send_email is send_email
