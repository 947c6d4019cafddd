"""The editor's note: Markdown (paragraphs, emphasis, links) made safe for both parts of a mail.

Why markdown-it-py: it is CommonMark-compliant, maintained by the executablebooks project, and
already installed (rich depends on it), so the dependency costs nothing new. Its "zero" preset
with html off means raw HTML in a note is escaped text, never markup; `validateLink` is
narrowed to http, https and mailto, so a `javascript:`, `data:` or relative link stays literal
text instead of becoming an href. Both parts come from the same token stream, so the HTML
and the plain-text part always say the same thing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from newsletter.mail.palette import LIGHT

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
PARAGRAPH_STYLE = "margin:0 0 12px;"
# A link target as Markdown writes one: after "](" or inside "<…>", up to its scheme's colon.
SCRIPT_SCHEMES = re.compile(r"(?i)(javascript:|vbscript:)")
LINK_TARGET = re.compile(r"(?:\]\(\s*<?|<)\s*([A-Za-z][A-Za-z0-9+.\-]*):")


def safe_link(url: str) -> bool:
    """Only absolute http(s) links with a host, or mailto with an address, may become links."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    scheme = parts.scheme.lower()
    if scheme == "mailto":
        return "@" in parts.path
    return scheme in ("http", "https") and bool(parts.hostname)


def note_problem(source: str) -> str | None:
    """Why an editor's note should not be saved, or None. Rendering is safe either way (an
    unsafe link stays literal text); refusing it at once tells the editor their link is dead."""
    for scheme in SCRIPT_SCHEMES.findall(source):
        return f"{scheme.lower()} is not allowed anywhere in the note (links may be http, https or mailto)"
    for match in LINK_TARGET.finditer(source):
        scheme = match.group(1).lower()
        if scheme not in LINK_SCHEMES:
            return f"links may be http, https or mailto only, not {scheme}:"
    return None


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    """Imported here, when a note is first rendered: markdown-it's import (40-odd regular
    expressions) was on the way of every command that loads the issue modules, `issue send` too."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False})
    md.enable(["emphasis", "link", "autolink", "escape", "newline"])
    md.validateLink = safe_link  # type: ignore[method-assign]
    return md


def warm_up() -> None:
    """The parser made now (render.warm_up: a worker before it waits, the parent before it forks
    its workers), not at the first issue with a note."""
    _parser()


def _tokens(source: str) -> list[Token]:
    return _parser().parse(source.replace("\r\n", "\n"))


def note_html(source: str) -> str:
    """The note as HTML for the mail body: <p>, <em>, <strong>, <a href>, <br> and escaped text,
    nothing else (the parser emits no other tags with html off and these rules only)."""
    if not source.strip():
        return ""
    tokens = _tokens(source)
    for token in tokens:
        if token.type == "paragraph_open":
            token.attrSet("style", PARAGRAPH_STYLE)
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("style", f"color:{LIGHT['accent']};")
    md = _parser()
    return md.renderer.render(tokens, md.options, {}).strip()


def _inline_text(children: list[Token]) -> str:
    """One paragraph as plain text: emphasis as *word*, a link as `label <url>`."""
    out: list[str] = []
    hrefs: list[tuple[str, int]] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind in ("em_open", "em_close", "strong_open", "strong_close"):
            out.append("*")
        elif kind == "link_open":
            hrefs.append((str(child.attrGet("href") or ""), len(out)))
        elif kind == "link_close" and hrefs:
            href, start = hrefs.pop()
            label = "".join(out[start:])
            shown = href.removeprefix("mailto:") if href.startswith("mailto:") else href
            if label.strip() not in (href, shown):
                out.append(f" <{href}>")
    return "".join(out).strip()


def note_text(source: str) -> str:
    """The note as plain text: paragraphs split by a blank line, each link's address spelled out."""
    if not source.strip():
        return ""
    paragraphs = [_inline_text(token.children or []) for token in _tokens(source) if token.type == "inline"]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)
