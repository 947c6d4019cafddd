"""The HTML answers every route shares: a template page, a message page, the refusals.

One place for them so a 404 from the issue view, a bad vote link and a bad unsubscribe link
look alike, and so the error handlers in app.py answer in the same page as the routes.
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from newsletter.config import SiteSettings
from newsletter.templating import render
from newsletter.tokens import LinkSubject, Purpose, read_token


def page(site: SiteSettings, template: str, status: int = 200, headers: dict | None = None,
         **values) -> HTMLResponse:
    """A templates/web/ page; the title defaults to the heading (or the site name)."""
    values.setdefault("title", values.get("heading", site.name))
    html = render(f"web/{template}", {"site": site, **values})
    return HTMLResponse(html, status_code=status, headers=headers)


def message(site: SiteSettings, heading: str, paragraphs: list[str], status: int = 200, **extra) -> HTMLResponse:
    """The one-message page (with optional button form, hidden fields and links)."""
    return page(site, "message.html", status=status, heading=heading, paragraphs=paragraphs, **extra)


def invalid_link(site: SiteSettings) -> HTMLResponse:
    """A personal link that is mistyped, expired, used, or names a reader who is gone: 400."""
    return message(site, "This link does not work",
                   ["It may be mistyped, expired or already used. Links in our mails are personal; "
                    "use the newest mail you got from us, or subscribe again."], status=400,
                   links=[("Go to the signup page", f"{site.base_url}/")])


def refused(site: SiteSettings, reason: str) -> HTMLResponse:
    """A post that another site drove through the visitor's browser, or a form from elsewhere."""
    return message(site, "This form cannot be sent from here",
                   [f"We refused it: {reason}. Nothing was stored. Open the signup page on our site "
                    "and send the form from there."], status=403,
                   links=[("Go to the signup page", f"{site.base_url}/")])


# What a personal link does in a reader's copy, said when it is followed from an editor's test copy.
_IN_A_READERS_COPY = {
    Purpose.unsubscribe: "unsubscribes its reader (one button press on the page, or one click from "
                         "their mail program)",
    Purpose.preferences: "opens its reader's preferences: topics, a pause, a new address",
    Purpose.vote: "records its reader's vote on this comparison",
}


class FromTestCopy(Exception):
    """A personal link followed from an editor's test copy (tokens.TEST_READER): the app answers
    it with `from_test_copy`, whichever route it reached, and nothing is changed."""

    def __init__(self, purpose: Purpose) -> None:
        super().__init__(purpose.value)
        self.purpose = purpose


def read_link(secret: str, purpose: Purpose, token: str) -> LinkSubject:
    """tokens.read_token for a route: raises InvalidToken, or FromTestCopy for a test copy's link."""
    subject = read_token(secret, purpose, token)
    if subject.in_test_copy:
        raise FromTestCopy(purpose)
    return subject


def from_test_copy(site: SiteSettings, purpose: Purpose) -> HTMLResponse:
    """200: the link is genuine, it just names no reader. Editors check their test copies' links."""
    return message(site, "This link is from a test copy",
                   [f"In the issue your readers get, this link {_IN_A_READERS_COPY[purpose]}.",
                    "A test copy names no reader, so nothing was changed."])
