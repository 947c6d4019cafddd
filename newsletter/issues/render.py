"""Phase one of rendering, once per issue: Jinja → MJML → HTML, plus the text part.

The output keeps per-recipient slots (email, unsubscribe_url, preferences_url)
as markers; phase two (newsletter.mail.mime) fills them per message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from mjml import mjml2html

from newsletter.errors import UserError
from newsletter.mail.compact import compact_html
from newsletter.issues.fit import BUDGET_BYTES, LEVELS, largest_size, shortened
from newsletter.mail.palette import DARK, LIGHT
from newsletter.issues.view import IssueView, SiteView
from newsletter.mail.slots import SlotMarker, Slotted
from newsletter.templating import render

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


def compile_email(template: str, subject: str, context: Callable[[SlotMarker], dict]) -> CompiledEmail:
    """Render `email/<template>.mjml.j2` and `.txt.j2` once, leaving slots in place.

    `context` gets the slot marker, so it can put per-recipient values anywhere.
    """
    marker = SlotMarker()
    values = {"light": LIGHT, "dark": DARK, **context(marker), "slot": marker}
    html_source = render(f"email/{template}.mjml.j2", values)
    html = mjml_to_html(html_source, f"email/{template}.mjml.j2")
    text = render(f"email/{template}.txt.j2", values)
    return CompiledEmail(subject, marker.split(html), marker.split(text))


def footer(site: SiteView, slot: SlotMarker, web_url: str | None) -> dict:
    """Why you get this, and the links every issue carries (CAN-SPAM, RFC 8058)."""
    links = []
    if web_url:
        links.append(("Read this issue on the web", web_url))
    links.append(("Manage your preferences", slot("preferences_url")))
    links.append((f"Unsubscribe from {site.name}", slot("unsubscribe_url")))
    reason = f"You get {site.name} because {slot('email')} subscribed at {site.base_url}."
    return {"footer_reason": reason, "footer_links": links}


def compile_issue(view: IssueView) -> CompiledEmail:
    """The issue with the recipient slots, ready for per-recipient filling. An issue whose largest
    copy would pass the size budget gets the email's excerpts (newsletter.issues.fit)."""
    for caps in LEVELS:
        compiled = _compile_issue(shortened(view, caps))
        if largest_size(compiled.html, view.site.base_url) <= BUDGET_BYTES:
            break
    return compiled


def _compile_issue(view: IssueView) -> CompiledEmail:
    def context(slot: SlotMarker) -> dict:
        values = {**asdict(view), **footer(view.site, slot, view.web_url), "open_pixel": ""}
        base = view.site.base_url
        if view.track_clicks:  # the n-th comparison link; the redirect looks the target up in the issue
            for index, comparison in enumerate(values["comparisons"]):
                comparison["url"] = f"{base}/c/{slot('track_token')}/{view.id}/{index}"
        if view.track_opens:
            values["open_pixel"] = f"{base}/o/{slot('track_token')}/{view.id}.gif"
        return values

    return compile_email("issue", view.subject, context)
