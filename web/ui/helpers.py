"""Small helpers the UI pages share: sessions, formatting, flashing command replies."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from flask import abort, flash, request

from updraft.state import FINISHED_STATES, DagRunState

TI_STATES = ("success", "running", "failed", "upstream_failed", "up_for_retry",
             "up_for_reschedule", "queued", "scheduled", "skipped", "removed", "none")
RUN_STATES = tuple(str(s) for s in DagRunState)
FINISHED_TI = FINISHED_STATES


@contextmanager
def store() -> Iterator:
    """A read-mostly session on the store; committed at the end."""
    from updraft.store.engine import session_scope

    with session_scope() as session:
        yield session


#: The cookies the display choices live in (set by the page script, read here so the
#: server renders times and the theme right the first time).
TZ_COOKIE = "updraft_tz"
THEME_COOKIE = "updraft_theme"
THEMES = ("auto", "light", "dark")
#: The zones the picker offers besides UTC and the browser's own (any IANA name works).
COMMON_ZONES = ("America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York",
                "America/Sao_Paulo", "Europe/London", "Europe/Paris", "Europe/Berlin",
                "Europe/Moscow", "Africa/Johannesburg", "Asia/Dubai", "Asia/Kolkata",
                "Asia/Singapore", "Asia/Shanghai", "Asia/Tokyo", "Australia/Sydney",
                "Pacific/Auckland")


def display_tz_name() -> str:
    """The time zone pages show times in: the ``updraft_tz`` cookie's, if it is a known
    IANA name, else UTC (also outside a request)."""
    from flask import g, has_request_context

    if not has_request_context():
        return "UTC"
    cached = getattr(g, "_updraft_tz", None)
    if cached is None:
        cached = "UTC"
        wanted = (request.cookies.get(TZ_COOKIE) or "").strip()
        if wanted and wanted != "UTC" and len(wanted) < 64:
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(wanted)
                cached = wanted
            except (ValueError, KeyError, OSError):
                pass  # an unknown or malformed name: UTC
        g._updraft_tz = cached
    return cached


def display_tz():
    """The tzinfo of ``display_tz_name``."""
    name = display_tz_name()
    if name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)


def display_theme() -> str:
    """``auto`` (follow the system), ``light`` or ``dark``, from the ``updraft_theme`` cookie."""
    from flask import has_request_context

    theme = request.cookies.get(THEME_COOKIE, "auto") if has_request_context() else "auto"
    return theme if theme in THEMES else "auto"


def fmt_dt(value: datetime | None) -> str:
    """An ISO-like timestamp to the second in the chosen zone (UTC by default), or a dash."""
    if value is None:
        return "\u2014"
    return value.astimezone(display_tz()).strftime("%Y-%m-%d %H:%M:%S")


def fmt_short_dt(value: datetime | None) -> str:
    """``12-31 23:05`` (month-day hour:minute, chosen zone) for narrow places (the grid)."""
    if value is None:
        return ""
    return value.astimezone(display_tz()).strftime("%m-%d %H:%M")


def fmt_duration(seconds: float | None) -> str:
    """1.2s, 3m 04s, 2h 05m."""
    if seconds is None:
        return "\u2014"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def age_seconds(value: datetime | None, now: datetime | None = None) -> float | None:
    if value is None:
        return None
    now = now or datetime.now(UTC)
    return (now - value).total_seconds()


def flash_outcome(outcome, success: str) -> bool:
    """Flash the scheduler's reply to a command; returns whether it succeeded."""
    if outcome.ok:
        flash(success, "success")
        return True
    code = f" ({outcome.code})" if outcome.code and outcome.code != "unavailable" else ""
    flash(f"Refused{code}: {outcome.error}", "error")
    return False


#: The largest value of the store's INTEGER columns (map indexes, try numbers, offsets).
MAX_INT = 2**31 - 1


def int_param(name: str, default: int, *, minimum: int | None = None,
              maximum: int = MAX_INT, source=None) -> int:
    """A whole-number query (or form) parameter; a 400 page naming it and the rule if it is
    not one, or is out of range (never a Python error)."""
    raw = (source if source is not None else request.args).get(name)
    if raw is None or raw.strip() == "":
        return default
    text = raw.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
        abort(400, f"{name} must be a whole number, got {raw[:40]!r}")
    value = int(text)
    if minimum is not None and value < minimum:
        abort(400, f"{name} must be at least {minimum}, got {value}")
    if value > maximum:
        abort(400, f"{name} must be at most {maximum}, got {value}")
    return value


def owner_name() -> str | None:
    from web.auth.permissions import current_user

    user = current_user()
    return user.username if user else None


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "on", "yes")


def install(app) -> None:
    """Jinja filters the templates use."""
    from web.masking import shown
    from web.ui.markdown import render_markdown

    app.jinja_env.filters.update(dt=fmt_dt, shortdt=fmt_short_dt, duration=fmt_duration, markdown=render_markdown,
                                 shown=shown)
    from web.queries import xcom_refs

    app.jinja_env.globals.update(TI_STATES=TI_STATES, RUN_STATES=RUN_STATES,
                                 xcom_refs=xcom_refs, display_tz_name=display_tz_name,
                                 display_theme=display_theme, COMMON_ZONES=COMMON_ZONES)
    app.jinja_env.filters.update(size=fmt_size)


def fmt_size(value) -> str:
    """``1.5 GiB`` for a byte count (empty for None)."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(value)
