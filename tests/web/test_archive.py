"""The public archive as a browser, a feed reader and a crawler read it: /issues newest first
with pages, RSS and Atom that feedparser parses without a bozo error, a JSON Feed, a sitemap,
robots.txt, and canonical/share metadata on issue and comparison pages."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser

import feedparser
import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from newsletter.content.models import Comparison
from newsletter.db import session_scope
from newsletter.issues.models import Issue, IssueItem
from newsletter.web import archive
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET

BASE = "https://verdicts.example"


class Heads(HTMLParser):
    """Every <link> and <meta> in a page, as attribute dicts."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict] = []
        self.metas: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("link", "meta"):
            (self.links if tag == "link" else self.metas).append(dict(attrs))


def heads(html: str) -> Heads:
    parser = Heads()
    parser.feed(html)
    return parser


def add_issues(engine, states: list[str]) -> list[int]:
    """One issue per state, a week apart (oldest first), each carrying the sample comparisons."""
    start = datetime(2026, 1, 8, 8, tzinfo=timezone.utc)
    with session_scope(engine) as session:
        comparison_ids = list(session.exec(select(Comparison.id).order_by(Comparison.id)))
        ids = []
        for n, state in enumerate(states):
            when = start + timedelta(weeks=n)
            issue = Issue(week=f"2026-W{n + 2:02d}", subject=f"Issue number {n + 1} & co", preheader=f"Pre {n + 1}",
                          state=state, started_at=when if state in ("sending", "sent") else None)
            session.add(issue)
            session.flush()
            for position, comparison_id in enumerate(comparison_ids):
                session.add(IssueItem(issue_id=issue.id, comparison_id=comparison_id, position=position))
            ids.append(issue.id)
    return ids


@pytest.fixture
def client(sample_engine, settings):
    app = create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False)
    return TestClient(app, base_url=BASE)


def test_the_index_lists_public_issues_newest_first_and_links_its_feeds(client, sample_engine):
    ids = add_issues(sample_engine, ["sent", "draft", "sent", "scheduled", "sending"])
    page = client.get("/issues")
    assert page.status_code == 200
    shown = [n for n in range(1, 6) if f"Issue number {n} &amp; co" in page.text]
    assert shown == [1, 3, 5]
    assert page.text.index("Issue number 5") < page.text.index("Issue number 3") < page.text.index("Issue number 1")
    assert f'href="{BASE}/issues/{ids[4]}"' in page.text and f"/issues/{ids[1]}\"" not in page.text
    alternates = {link["type"]: link["href"] for link in heads(page.text).links if link.get("rel") == "alternate"}
    assert alternates["application/rss+xml"] == f"{BASE}/issues/feed.rss"
    assert alternates["application/atom+xml"] == f"{BASE}/issues/feed.atom"
    assert "Get the next comparison in your inbox" in page.text


def test_pages_walk_every_issue_once(client, sample_engine, monkeypatch):
    monkeypatch.setattr(archive, "PAGE_SIZE", 2)
    ids = add_issues(sample_engine, ["sent"] * 5)
    seen, path = [], "/issues"
    while path:
        html = client.get(path).text
        seen += [issue_id for issue_id in reversed(ids) if f'href="{BASE}/issues/{issue_id}"' in html]
        older = re.search(r'href="([^"]+)">Older issues', html)
        path = older.group(1).removeprefix(BASE) if older else ""
        assert len(seen) <= len(ids), "the pages went round in a circle"
    assert seen == list(reversed(ids))


@pytest.mark.parametrize("path", ["/issues/feed.rss", "/issues/feed.atom"])
def test_feeds_parse_without_errors_and_carry_full_content(client, sample_engine, path):
    add_issues(sample_engine, ["sent", "draft", "sent"])
    answer = client.get(path)
    assert answer.status_code == 200 and "xml" in answer.headers["content-type"]
    feed = feedparser.parse(answer.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert [entry.title for entry in feed.entries] == ["Issue number 3 & co", "Issue number 1 & co"]
    first = feed.entries[0]
    assert first.link.startswith(f"{BASE}/issues/") and first.published_parsed[:3] == (2026, 1, 22)
    content = first.content[0].value
    assert "The panel" in content and "Panel ship" in content and f"{BASE}/compare/" in content
    assert "<script" not in content and "<style" not in content


def test_the_json_feed_follows_version_1_1(client, sample_engine):
    add_issues(sample_engine, ["sent"])
    feed = json.loads(client.get("/issues/feed.json").text)
    assert feed["version"] == "https://jsonfeed.org/version/1.1" and feed["feed_url"] == f"{BASE}/issues/feed.json"
    (item,) = feed["items"]
    assert item["title"] == "Issue number 1 & co" and "Panel ship" in item["content_html"]
    assert datetime.fromisoformat(item["date_published"]).tzinfo is not None


def test_an_empty_archive_still_gives_valid_feeds(client):
    for path in ("/issues/feed.rss", "/issues/feed.atom"):
        feed = feedparser.parse(client.get(path).content)
        assert feed.bozo == 0 and feed.entries == []
    assert "No issue has gone out yet" in client.get("/issues").text


def test_the_sitemap_names_every_public_page(client, sample_engine):
    ids = add_issues(sample_engine, ["sent", "draft"])
    root = ET.fromstring(client.get("/sitemap.xml").content)
    namespace = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    locations = [url.find(f"{namespace}loc").text for url in root]
    with session_scope(sample_engine) as session:
        slugs = list(session.exec(select(Comparison.slug)))
    assert f"{BASE}/issues/{ids[0]}" in locations and f"{BASE}/issues/{ids[1]}" not in locations
    assert {f"{BASE}/compare/{slug}" for slug in slugs} <= set(locations) and f"{BASE}/issues" in locations
    robots = client.get("/robots.txt").text
    assert f"Sitemap: {BASE}/sitemap.xml" in robots and "Disallow: /admin" in robots


def _meta(html: str) -> dict[str, str]:
    parsed = heads(html)
    found = {meta.get("property") or meta.get("name"): meta.get("content") for meta in parsed.metas}
    found.update({"canonical": link["href"] for link in parsed.links if link.get("rel") == "canonical"})
    return found


def test_issue_and_comparison_pages_carry_share_metadata(client, sample_engine):
    (issue_id,) = add_issues(sample_engine, ["sent"])
    meta = _meta(client.get(f"/issues/{issue_id}").text)
    assert meta["canonical"] == meta["og:url"] == f"{BASE}/issues/{issue_id}"
    assert meta["og:title"] == "Issue number 1 & co" and meta["description"] == "Pre 1"
    assert meta["twitter:card"] == "summary" and meta["og:type"] == "article"
    with session_scope(sample_engine) as session:
        comparison = session.exec(select(Comparison)).first()
        slug, title = comparison.slug, comparison.title
    meta = _meta(client.get(f"/compare/{slug}").text)
    assert meta["canonical"] == f"{BASE}/compare/{slug}" and meta["og:title"] == title
    assert meta["description"].startswith(title)


class CancelledMidSend:
    """Sends its batch, while the editor cancels the issue: some readers got a cancelled issue."""

    name = "scripted"
    needs_bytes = True

    def __init__(self, engine, issue_id) -> None:
        self.engine, self.issue_id = engine, issue_id

    def send(self, messages):
        from newsletter.delivery.control import cancel_issue
        from newsletter.delivery.transports.base import Outcome, SendResult

        cancel_issue(self.engine, self.issue_id)
        return [SendResult(Outcome.sent)] * len(messages)

    def close(self) -> None:
        pass


def test_a_cancelled_issue_readers_got_still_opens_on_the_web(client, sample_engine, settings):
    """Its readers' "read it on the web" link answered 404 (outside trial); one nobody got still
    does, and neither is in the archive."""
    from newsletter.delivery.sender import deliver, start_send
    from newsletter.issues.drafting import draft_issue
    from newsletter.subscribers.service import UpsertResult, upsert_active

    with session_scope(sample_engine) as session:
        for n in range(3):
            upsert_active(session, f"r{n}@example.com", "", [], "import", UpsertResult())
    got = draft_issue(sample_engine, settings, "2026-W48").issue.id
    start_send(sample_engine, got)
    deliver(sample_engine, settings, CancelledMidSend(sample_engine, got), TEST_SECRET, got)
    nobody = add_issues(sample_engine, ["cancelled"])[0]
    with session_scope(sample_engine) as session:
        assert session.get(Issue, got).state == "cancelled"
    page = client.get(f"/issues/{got}")
    assert page.status_code == 200 and "GroqCloud" in page.text
    assert client.get(f"/issues/{nobody}").status_code == 404
    index = client.get("/issues").text
    assert f"/issues/{got}\"" not in index and f"/issues/{nobody}\"" not in index
