"""Email helpers at Airflow's path (``airflow.utils.email``); they live in ``updraft.alerts``."""

from updraft.alerts import (
    EmailDeliveryError,
    build_mime_message,
    get_email_address_list,
    send_email,
    send_email_smtp,
    send_mime_email,
)

__all__ = ["EmailDeliveryError", "build_mime_message", "get_email_address_list", "send_email",
           "send_email_smtp", "send_mime_email"]
