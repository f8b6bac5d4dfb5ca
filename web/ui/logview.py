"""The log viewer's server side: a try's log as numbered lines, each with its level (for
the level filter), so the page works, links to a line (``#L12``) and colours levels
before any script runs. The page script adds search, the level filter, wrap and the live
tail."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Lines kept on the page; a longer log shows its end (the download has it all).
MAX_LINES = 20000
LEVELS = ("debug", "info", "warning", "error", "critical")
#: ``[time] {file:line} LEVEL - message`` (updraft.tasklog.LOG_FORMAT), else a level word
#: near the start of the line.
_FORMATTED = re.compile(r"^\[[^\]]*\] \{[^}]*\} (DEBUG|INFO|WARNING|ERROR|CRITICAL) - ")
_LOOSE = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")


@dataclass(frozen=True)
class LogLine:
    number: int
    level: str
    text: str


def line_level(text: str, previous: str) -> str:
    """The level of a log line; a line without one (a traceback, a print) continues the
    level of the line before it."""
    found = _FORMATTED.match(text) or _LOOSE.search(text[:80])
    if found is None:
        return previous
    word = found.group(1).lower()
    return {"warn": "warning", "fatal": "critical"}.get(word, word)


def log_lines(text: str, max_lines: int = MAX_LINES) -> tuple[list[LogLine], int]:
    """The last ``max_lines`` lines of ``text`` numbered from 1, and how many were left out."""
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    skipped = max(len(raw) - max_lines, 0)
    level = "info"
    for line in raw[:skipped][-200:]:  # the level a cut-off traceback continues
        level = line_level(line, level)
    out = []
    for number, line in enumerate(raw[skipped:], start=skipped + 1):
        level = line_level(line, level)
        out.append(LogLine(number, level, line))
    return out, skipped
