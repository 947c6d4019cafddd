"""Phase one of rendering an issue: its view into the issue template, once per issue.

The generic compile (Jinja → MJML → HTML, text part, recipient slots) is
newsletter.mail.compile; this module adds what is about issues: the footer, the
tracked links and the size budget (newsletter.issues.fit).
"""

from __future__ import annotations

from dataclasses import asdict

from newsletter.issues.fit import BUDGET_BYTES, LEVELS, largest_size, shortened
from newsletter.issues.note import note_html, note_text
from newsletter.issues.view import IssueView, SiteView
from newsletter.mail.compile import CompiledEmail, compile_email
from newsletter.mail.slots import SlotMarker
from newsletter.templating import render


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
        values = {**asdict(view), **footer(view.site, slot, view.web_url), "open_pixel": "",
                  # the editor's note is Markdown: both parts from one safe rendering (issues/note.py)
                  "intro_html": note_html(view.intro), "intro_text": note_text(view.intro)}
        base = view.site.base_url
        if view.track_clicks:  # the n-th comparison link; the redirect looks the target up in the issue
            for index, comparison in enumerate(values["comparisons"]):
                comparison["url"] = f"{base}/c/{slot('track_token')}/{view.id}/{index}"
        if view.track_opens:
            values["open_pixel"] = f"{base}/o/{slot('track_token')}/{view.id}.gif"
        return values

    return compile_email("issue", view.subject, context, render)
