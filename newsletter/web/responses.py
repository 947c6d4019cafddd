"""The HTML answers every route shares: a template page, a message page, the refusals.

One place for them so a 404 from the issue view, a bad vote link and a bad unsubscribe link
look alike, and so the error handlers in app.py answer in the same page as the routes.
"""

from __future__ import annotations

from fastapi.responses import HTMLResponse

from newsletter.config import SiteSettings
from newsletter.templating import render


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
