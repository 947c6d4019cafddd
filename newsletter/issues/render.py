"""Phase one of rendering an issue: its view into the issue template, once per issue.

The generic compile (Jinja → MJML → HTML, text part, recipient slots) is
newsletter.mail.compile; this module adds what is about issues: the footer, the
tracked links and the size budget (newsletter.issues.fit).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict

from newsletter.config import Settings, operator_templates
from newsletter.issues.dateline import date_in_words
from newsletter.issues.fit import BUDGET_BYTES, LEVELS, largest_size, shortened
from newsletter.issues.note import note_html, note_text
from newsletter.issues.note import warm_up as warm_up_note
from newsletter.issues.view import IssueView, SiteView
from newsletter.mail.compile import CompiledEmail, compile_email
from newsletter.mail.compose import build_template
from newsletter.mail.mime import MessageTemplate
from newsletter.mail.slots import SlotMarker
from newsletter.templating import environment, render


def footer(site: SiteView, slot: SlotMarker, web_url: str | None, public: bool = False) -> dict:
    """Why you get this, and the links every issue carries (CAN-SPAM, RFC 8058). The public web
    view (`public`) is nobody's copy: no address, no preference or unsubscribe link that would lead
    nowhere, but the call to action; `web_view` tells the templates to show it (the issue template
    includes email/partials/web_footer.mjml.j2 instead of the footer, and links tool names)."""
    if public:
        return {"web_view": True, "footer_links": [("Subscribe", f"{site.base_url}/")],
                "footer_reason": f"Get the next comparison in your inbox: {site.name} comes once a week."}
    links = []
    if web_url:
        links.append(("Read this issue on the web", web_url))
    links.append(("Manage your preferences", slot("preferences_url")))
    links.append((f"Unsubscribe from {site.name}", slot("unsubscribe_url")))
    reason = f"You get {site.name} because {slot('email')} subscribed at {site.base_url}."
    return {"web_view": False, "footer_reason": reason, "footer_links": links}


def compile_issue(view: IssueView, public: bool = False) -> CompiledEmail:
    """The issue with the recipient slots, ready for per-recipient filling. An issue whose largest
    copy would pass the size budget gets the email's excerpts (newsletter.issues.fit). `public`
    makes the web view's copy (see `footer`)."""
    for caps in LEVELS:
        compiled = _compile_issue(shortened(view, caps), caps.buttons, public)
        if largest_size(compiled.html, view.site.base_url) <= BUDGET_BYTES:
            break
    return compiled


def _compile_issue(view: IssueView, vote_buttons: bool = True, public: bool = False) -> CompiledEmail:
    def context(slot: SlotMarker) -> dict:
        values = {**asdict(view), **footer(view.site, slot, view.web_url, public), "open_pixel": "",
                  # the editor's note is Markdown: both parts from one safe rendering (issues/note.py)
                  "intro_html": note_html(view.intro), "intro_text": note_text(view.intro),
                  "issue_date_words": date_in_words(view.issue_date, view.site.language),
                  "vote_buttons": vote_buttons}
        base = view.site.base_url
        if view.track_clicks:  # the n-th comparison link; the redirect looks the target up in the issue
            # A reader's variant names each comparison by its index in the whole issue.
            positions = view.positions or range(len(values["comparisons"]))
            for index, comparison in zip(positions, values["comparisons"]):
                comparison["url"] = f"{base}/c/{slot('track_token')}/{view.id}/{index}"
        if view.track_opens:
            values["open_pixel"] = f"{base}/o/{slot('track_token')}/{view.id}.gif"
        return values

    return compile_email("issue", view.subject, context, render)


# --- one compile per issue and process --------------------------------------------------------------

_templates: OrderedDict[bytes, MessageTemplate] = OrderedDict()
_templates_lock = threading.Lock()
# Views a process keeps compiled: a few sends at once, each with its readers' variants (one per
# distinct set of comparisons and changed verdicts, issues/variants.py), and their test sends.
KEPT = 64
compiles = 0  # issue compiles this process made (tests and bench/render.py count them)


def issue_template(settings: Settings, view: IssueView) -> MessageTemplate:
    """The issue's message template (compile_issue + build_template), compiled once per process for
    the same view, settings and template folders. Every pass of every worker used to compile the
    issue again (Jinja → MJML → HTML: tens of ms warm, far more the first time in a process), so a
    worker woken for a send it had seen paid it again. The key is the whole view, what readers see
    (live vote shares included): when a figure changes the issue is compiled again, as before."""
    key = hashlib.sha256(repr((settings, operator_templates(), view)).encode()).digest()
    with _templates_lock:
        template = _templates.get(key)
        if template is not None:
            _templates.move_to_end(key)
            return template
    template = build_template(settings, compile_issue(view))
    global compiles
    with _templates_lock:
        compiles += 1
        _templates[key] = template
        while len(_templates) > KEPT:
            _templates.popitem(last=False)
    return template


def warm_up() -> None:
    """Parse the issue templates now (a worker calls it when it starts), so that the first send it
    is woken for does not wait for Jinja to read and compile them."""
    for name in ("email/issue.mjml.j2", "email/issue.txt.j2"):
        environment().get_template(name)
    warm_up_note()
