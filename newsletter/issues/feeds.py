"""The archive as feeds: RSS 2.0 and Atom (through feedgen) and JSON Feed 1.1, each entry with
the issue's full content, so a feed reader shows the verdicts without a click.

The content is rendered from templates/web/feed_entry.html, a feed-reader-safe fragment
(no styles, no scripts, absolute links), the same words as the public web view.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from feedgen.feed import FeedGenerator

from newsletter.config import Settings
from newsletter.issues.archive import ArchiveEntry
from newsletter.issues.view import IssueView
from newsletter.templating import render

FEED_SIZE = 20
PATHS = {"rss": "/issues/feed.rss", "atom": "/issues/feed.atom", "json": "/issues/feed.json"}


def entry_html(view: IssueView) -> str:
    return render("web/feed_entry.html", {"issue": view})


def _updated(entries: list[ArchiveEntry]) -> datetime:
    return entries[0].sent_at if entries else datetime(2026, 1, 1, tzinfo=timezone.utc)


def _generator(settings: Settings, entries: list[ArchiveEntry], views: list[IssueView], self_path: str) -> FeedGenerator:
    site = settings.site
    feed = FeedGenerator()
    feed.id(f"{site.base_url}/issues")
    feed.title(site.name)
    feed.subtitle("Side-by-side AI tool verdicts, weekly")
    feed.link(href=f"{site.base_url}/issues", rel="alternate")
    feed.link(href=site.base_url + self_path, rel="self")
    feed.language(site.language)
    feed.updated(_updated(entries))
    for entry, view in zip(reversed(entries), reversed(views)):  # feedgen prepends: oldest first
        item = feed.add_entry()
        item.id(entry.url)
        item.guid(entry.url, permalink=True)
        item.title(entry.subject)
        item.link(href=entry.url)
        item.summary(entry.preheader or entry.subject)
        item.content(entry_html(view), type="CDATA" if self_path == PATHS["rss"] else "html")
        item.published(entry.sent_at)
        item.updated(entry.sent_at)
        item.author(name=site.name)
    return feed


def rss(settings: Settings, entries: list[ArchiveEntry], views: list[IssueView]) -> bytes:
    return _generator(settings, entries, views, PATHS["rss"]).rss_str(pretty=True)


def atom(settings: Settings, entries: list[ArchiveEntry], views: list[IssueView]) -> bytes:
    return _generator(settings, entries, views, PATHS["atom"]).atom_str(pretty=True)


def json_feed(settings: Settings, entries: list[ArchiveEntry], views: list[IssueView]) -> str:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    site = settings.site
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1",
        "title": site.name,
        "home_page_url": f"{site.base_url}/issues",
        "feed_url": site.base_url + PATHS["json"],
        "language": site.language,
        "items": [{"id": entry.url, "url": entry.url, "title": entry.subject,
                   "summary": entry.preheader or entry.subject, "content_html": entry_html(view),
                   "date_published": entry.sent_at.isoformat()} for entry, view in zip(entries, views)],
    }, ensure_ascii=False, indent=1)
