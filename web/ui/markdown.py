"""A small, safe Markdown renderer for DAG and task docs: all HTML in the text is escaped.

Supported: ATX headings, paragraphs, ``-``/``*``/``1.`` lists, fenced code blocks, inline code,
**bold**, *italic*, and [links](url) whose URL is http(s), mailto or relative. Anything else
shows as plain (escaped) text, which is the point: doc_md comes from DAG files and must not
be able to inject markup into the page.
"""

from __future__ import annotations

import re
from html import escape

from markupsafe import Markup

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_SAFE_URL = re.compile(r"^(https?://|mailto:|/|#|\./|\.\./|[\w\-./]+$)", re.IGNORECASE)


def _inline(text: str) -> str:
    codes: list[str] = []

    def keep_code(match: re.Match) -> str:
        codes.append(f"<code>{escape(match.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    text = _CODE.sub(keep_code, text)
    text = escape(text)

    def link(match: re.Match) -> str:
        label, url = match.group(1), match.group(2)
        if not _SAFE_URL.match(url) or url.lower().startswith(("javascript", "data", "vbscript")):
            return match.group(0)
        return f'<a href="{url}" rel="noopener noreferrer">{label}</a>'

    text = _LINK.sub(link, text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _ITALIC.sub(r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: codes[int(m.group(1))], text)


def render_markdown(source: str | None) -> Markup:
    """HTML for ``source``; every character of the input is escaped or turned into markup."""
    if not source:
        return Markup("")
    out: list[str] = []
    paragraph: list[str] = []
    list_kind: str | None = None
    lines = source.replace("\r\n", "\n").split("\n")
    i = 0

    def close_paragraph() -> None:
        if paragraph:
            out.append("<p>" + _inline(" ".join(paragraph)) + "</p>")
            paragraph.clear()

    def close_list() -> None:
        nonlocal list_kind
        if list_kind:
            out.append(f"</{list_kind}>")
            list_kind = None

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            close_paragraph()
            close_list()
            block = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            out.append("<pre><code>" + escape("\n".join(block)) + "</code></pre>")
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        bullet = re.match(r"^[-*+]\s+(.*)$", stripped)
        numbered = re.match(r"^\d+[.)]\s+(.*)$", stripped)
        if not stripped:
            close_paragraph()
            close_list()
        elif heading:
            close_paragraph()
            close_list()
            level = min(len(heading.group(1)) + 2, 6)  # page headings stay above doc headings
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or numbered:
            close_paragraph()
            kind = "ul" if bullet else "ol"
            if list_kind != kind:
                close_list()
                out.append(f"<{kind}>")
                list_kind = kind
            out.append("<li>" + _inline((bullet or numbered).group(1)) + "</li>")
        else:
            close_list()
            paragraph.append(stripped)
        i += 1
    close_paragraph()
    close_list()
    return Markup("\n".join(out))


__all__ = ["render_markdown"]
