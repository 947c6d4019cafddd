"""Keeping an issue's HTML under Gmail's clipping size, whatever the content.

Gmail clips an HTML part over 102 KB and hides the rest, footer and unsubscribe link included.
An ordinary issue is far below that and is rendered exactly as written. Content at the import
schema's limits (six comparisons of four tools, 1,200-character quotes, 120-character names) is
not: for such an issue the email carries excerpts, tighter step by step until it fits the
budget, and "Read the full verdict" leads to the whole text on the web. Nothing is cut from an
issue that fits as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from newsletter.issues.view import ComparisonView, IssueView, ToolView, verdict_line
from newsletter.mail.slots import Slotted

BUDGET_BYTES = 88 * 1024  # the checks refuse over 100 KB; Gmail clips at 102 KB
# The longest address a reader can have (RFC 5321 path limit) and a subscriber id with more
# digits than any real one: their slots make the largest copy of an issue.
LONGEST_EMAIL = "r" * 64 + "@" + ("d" * 62 + ".") * 3 + "example"
LONGEST_ID = 10**12
# Upper bounds of the other slots: links are the base URL plus a path and a token (real tokens
# are about 70 characters), tokens alone are shorter still.
SLOT_PATH_BOUND = 160


@dataclass(frozen=True)
class Caps:
    """Longest text of each field in the email (None: as written; 0: left out). `bars`: the
    panel-ship bars (the percentage stays in words). `buttons`: the vote choices as buttons
    (else as plain links: a button's table costs about 300 bytes, times every tool)."""

    quote: int | None = None
    dek: int | None = None
    tagline: int | None = None
    name: int | None = None
    title: int | None = None
    bars: bool = True
    buttons: bool = True


# Tried in order until the issue fits; the first keeps everything.
LEVELS = (
    Caps(),
    Caps(quote=500, dek=300),
    Caps(quote=240, dek=200, tagline=120),
    Caps(quote=120, dek=140, tagline=80, name=60, title=140),
    Caps(quote=0, dek=100, tagline=0, name=40, title=100, bars=False),
    Caps(quote=0, dek=100, tagline=0, name=40, title=100, bars=False, buttons=False),
)


def excerpt(text: str, limit: int | None) -> str:
    """At most `limit` characters, cut at a word and marked with an ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    if limit == 0:
        return ""
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    if not text[limit - 1].isspace() and space > limit // 2:  # the cut is inside a word: drop it
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def _tool(tool: ToolView, caps: Caps) -> ToolView:
    quote = tool.quote
    if quote is not None:
        quote = None if caps.quote == 0 else replace(quote, quote=excerpt(quote.quote, caps.quote))
    return replace(tool, name=excerpt(tool.name, caps.name), tagline=excerpt(tool.tagline, caps.tagline),
                   quote=quote)


def _comparison(comparison: ComparisonView, caps: Caps) -> ComparisonView:
    tools = [_tool(tool, caps) for tool in comparison.tools]
    line = verdict_line(tools)  # from the real shares, before a bar is hidden
    if not caps.bars:
        tools = [replace(tool, panel_ship=None) for tool in tools]
    return replace(comparison, title=excerpt(comparison.title, caps.title), dek=excerpt(comparison.dek, caps.dek),
                   tools=tools, verdict_line=line)


def shortened(view: IssueView, caps: Caps) -> IssueView:
    """The same issue with the email's excerpts."""
    if caps == Caps():
        return view
    return replace(view, comparisons=[_comparison(comparison, caps) for comparison in view.comparisons])


def largest_size(html: Slotted, base_url: str) -> int:
    """Bytes of the largest copy any reader can get: the fixed parts plus each slot at its bound."""
    bound = len(base_url) + SLOT_PATH_BOUND
    fixed = sum(len(static.encode("utf-8")) for static in html.statics)
    return fixed + sum(len(LONGEST_EMAIL) if name == "email" else bound for name in html.slots)
