"""Bytes MJML's output spends without changing what any client shows.

Gmail clips an HTML part over 102 KB (and hides the footer with the unsubscribe link), so
every byte of markup counts. Each rewrite here leaves the document a parser builds the same:
- whitespace between the tags of the <head> and inside <style> blocks (none of it is
  rendered; in the body a space between two inline tags shows, so the body keeps its own);
- `<tbody>`/`</tbody>`: an HTML parser inserts the same tbody for a <tr> directly in a <table>;
- `border="0"` on tables: no border is already the default.
Outlook's conditional comments (`<!--[if mso | IE]>…<![endif]-->`) are left exactly as they
are, since Word's engine reads them as markup of its own.
"""

from __future__ import annotations

import re

_CONDITIONAL = re.compile(r"(<!--\[if [^\]]*\]>.*?<!\[endif\]-->)", re.S)
_BETWEEN_TAGS = re.compile(r">\s+<")
_STYLE = re.compile(r"(<style[^>]*>)(.*?)(</style>)", re.S)
_CSS_SPACE = re.compile(r"\s*([{};,>])\s*")
_CSS_RUNS = re.compile(r"\s+")
_TBODY = re.compile(r"</?tbody>")
_TABLE_BORDER = re.compile(r'(<table) border="0"')


def _css(match: re.Match[str]) -> str:
    css = _CSS_SPACE.sub(r"\1", _CSS_RUNS.sub(" ", match.group(2))).strip()
    return match.group(1) + css.replace(";}", "}") + match.group(3)


def _outside_comments(html: str) -> str:
    html = _STYLE.sub(_css, html)
    html = _TBODY.sub("", html)
    return _TABLE_BORDER.sub(r"\1", html)


def compact_html(html: str) -> str:
    """The same document in fewer bytes (see the module docstring for what changes)."""
    head, body_start, body = html.partition("<body")
    html = _BETWEEN_TAGS.sub("><", head) + body_start + body
    parts = _CONDITIONAL.split(html)
    # split() with one group: even indexes are outside the conditional comments, odd ones inside.
    return "".join(part if index % 2 else _outside_comments(part) for index, part in enumerate(parts))
