"""Phase one of rendering any mail, once per mail kind: Jinja → MJML → HTML, plus the text part.

The output keeps per-recipient slots (email, unsubscribe_url, preferences_url, …)
as markers; phase two (newsletter.mail.mime) fills them per message. What an
issue puts into the template is newsletter.issues.render's business.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mjml import mjml2html

from newsletter.errors import UserError
from newsletter.mail.compact import compact_html
from newsletter.mail.palette import DARK, LIGHT
from newsletter.mail.slots import SlotMarker, Slotted

RECIPIENT_SLOTS = ("email", "unsubscribe_url", "preferences_url", "vote_token", "track_token")


class MjmlError(UserError):
    pass


@dataclass(frozen=True)
class CompiledEmail:
    subject: str
    html: Slotted
    text: Slotted


def mjml_to_html(source: str, template: str) -> str:
    """Compile MJML without web fonts (no external requests) or comments, then drop the bytes
    that change nothing a client shows (newsletter.mail.compact)."""
    try:
        html = mjml2html(source, disable_comments=True, fonts={})
    except Exception as exc:  # mjml-python raises plain exceptions with the parser's text
        raise MjmlError(f"template {template}: MJML did not compile: {exc}") from None
    return compact_html(html)


def compile_email(template: str, subject: str, context: Callable[[SlotMarker], dict],
                  render: Callable[[str, dict], str]) -> CompiledEmail:
    """Render `email/<template>.mjml.j2` and `.txt.j2` once, leaving slots in place.

    `context` gets the slot marker, so it can put per-recipient values anywhere. `render` is the
    template renderer (newsletter.templating.render), handed in by the caller: the renderer reads
    this package's palette, so importing it here would make a package cycle.
    """
    marker = SlotMarker()
    values = {"light": LIGHT, "dark": DARK, **context(marker), "slot": marker}
    html_source = render(f"email/{template}.mjml.j2", values)
    html = mjml_to_html(html_source, f"email/{template}.mjml.j2")
    text = render(f"email/{template}.txt.j2", values)
    return CompiledEmail(subject, marker.split(html), marker.split(text))
