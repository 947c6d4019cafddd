"""The publication's public pages as a reader meets them: the comparison page (tools side by side,
Community % with its votes, the lens-by-tool scorecard, vote buttons, a signup form that starts
double opt-in), tool pages with their verdict history as sent and now, the issue's public web view
(no personal footer) and the sitemap. Story-shaped: one test per page, each on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from newsletter.config import load_settings
from newsletter.content.models import Comparison
from newsletter.db import session_scope
from newsletter.subscribers.models import Subscriber, TransactionalMail
from newsletter.web.app import create_app
from tests.conftest import TEST_SECRET, write_config
from tests.web.test_archive import BASE, _meta
from tests.web.verdict_story import GROQ, add_votes, two_sends

GROQ_TOOLS = ["groqcloud", "together-ai"]


@pytest.fixture
def settings(tmp_path, db_url):
    """A form may be sent at once (the signup form's minimum fill time is for bots)."""
    return load_settings(write_config(tmp_path, db_url, "[web]\nform_min_seconds = 0\n"))


@pytest.fixture
def client(sample_engine, settings):
    return TestClient(create_app(settings, engine=sample_engine, secret=TEST_SECRET, with_sender=False),
                      base_url=BASE)


def tool_cards(html: str) -> list[str]:
    """The tools' cards in page order (each up to the next card or the end of the tools section)."""
    section = html.split('<section class="tools"', 1)[1].split("</section>", 1)[0]
    return section.split('<article class="card tool">')[1:]


def text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def test_the_comparison_page_shows_tools_side_by_side_scorecard_votes_and_a_working_signup(client, sample_engine):
    page = client.get(f"/compare/{GROQ}")
    assert page.status_code == 200
    cards = tool_cards(page.text)
    assert [re.search(r'href="[^"]+/tools/([^"]+)"', card).group(1) for card in cards] == GROQ_TOOLS
    groq, together = (text(card) for card in cards)
    assert groq.startswith("Developer Tools GroqCloud Open-model inference on custom chips")
    assert "Panel ship Ship 100%" in groq and "Entry price $0.05 per 1M tokens" in groq
    assert "Panel ship Split 50%" in together and "Entry price $0.18 per 1M tokens" in together
    assert 'class="w100"' in cards[0] and 'class="w50"' in cards[1] and ".w50 { width:50%; }" in page.text
    assert groq.count("No votes yet") == 1
    # The scorecard: rows are the four lenses, columns the tools; each cell a verdict, a quote, a reviewer.
    grid = page.text.split('<table class="grid">', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>\s*<th scope=\"row\">(.*?)<span>.*?</tr>", grid, re.S)
    assert rows == ["Developer experience", "Competition", "Thesis", "Buyer"]
    cells = re.findall(r'<td data-tool="([^"]+)">(.*?)</td>', grid, re.S)
    assert [tool for tool, _ in cells] == ["GroqCloud", "Together AI"] * 4
    assert all('class="pill ' in cell and "<blockquote>" in cell and 'class="reviewer"' in cell for _, cell in cells)
    assert text(cells[3][1]).startswith("Pass “Fireworks, Groq, Baseten")  # Together AI, competition lens
    votes = re.findall(rf'href="{BASE}/vote/web/{GROQ}/([a-z-]+)"', page.text)
    assert votes == [*GROQ_TOOLS, "pass"]
    meta = _meta(page.text)
    assert meta["canonical"] == meta["og:url"] == f"{BASE}/compare/{GROQ}" and meta["twitter:card"] == "summary"
    # Community %: below [content] community_min_votes (5) a count, from there a share with its votes.
    add_votes(sample_engine, GROQ, ["groqcloud", "together-ai", None])
    groq, together = (text(card) for card in tool_cards(client.get(f"/compare/{GROQ}").text))
    assert "Community 3 votes so far" in groq and "Community 3 votes so far" in together
    add_votes(sample_engine, GROQ, ["groqcloud"] * 4 + ["together-ai"])
    groq, together = (text(card) for card in tool_cards(client.get(f"/compare/{GROQ}").text))
    assert "Community 63% of 8 votes" in groq and "Community 25% of 8 votes" in together
    # The footer call to action is the signup form: posting it starts double opt-in.
    page = client.get(f"/compare/{GROQ}")
    assert "Get the next comparison in your inbox" in page.text
    form = page.text.split('id="cta-heading"', 1)[1]
    assert f'action="{BASE}/subscribe"' in form
    token = re.search(r'name="form_token" value="([^"]+)"', form).group(1)
    answer = client.post("/subscribe", data={"form_token": token, "email": "new.reader@example.com"})
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with session_scope(sample_engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == "new.reader@example.com")).one()
        assert reader.status == "pending"
        queued = session.exec(select(TransactionalMail).where(TransactionalMail.to_email == reader.email)).all()
        assert [mail.kind for mail in queued] == ["confirm"]


def test_tool_pages_show_each_verdict_as_sent_and_now_and_web_views_link_them(client, sample_engine, settings):
    first, second = two_sends(sample_engine, settings)
    page = client.get("/tools/groqcloud")
    assert page.status_code == 200
    assert _meta(page.text)["canonical"] == f"{BASE}/tools/groqcloud"
    history = page.text.split('<table class="history">', 1)[1].split("</table>", 1)[0]
    rows = [text(row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", history.split("<tbody>", 1)[1], re.S)]
    assert rows == ["Today 50% Split", "3 December 2026 50% Split", "26 November 2026 (since changed) 100% Ship"]
    assert history.index(f"{BASE}/issues/{second}") < history.index(f"{BASE}/issues/{first}")
    assert f'href="{BASE}/compare/{GROQ}"' in page.text and "Get the next comparison in your inbox" in page.text
    assert f'href="{BASE}/tools/groqcloud"' in client.get(f"/compare/{GROQ}").text
    for issue_id in (first, second):  # the public web view: tool names link their pages, no personal footer
        html = client.get(f"/issues/{issue_id}").text
        assert f'href="{BASE}/tools/groqcloud"' in html
        links = re.findall(r'href="([^"]+)"', html)
        assert not [link for link in links if "/preferences" in link or "/unsubscribe" in link], links
        for dead in ("Manage your preferences", "Unsubscribe from", "You get Weekly Verdicts because", "a subscriber"):
            assert dead not in html
        assert "Get the next comparison in your inbox" in html and f'href="{BASE}/"' in html
        assert "17 Sample Lane" in html  # the publisher's address stays
    for unknown in ("no-such-tool", "a%00b", "Not%20A%20Slug"):  # a NUL reached PostgreSQL as a 500
        assert client.get(f"/tools/{unknown}").status_code == 404
        assert client.get(f"/compare/{unknown}").status_code == 404
    # A comparison taken down takes its tools' pages (when it was their only one) out of the sitemap.
    with session_scope(sample_engine) as session:
        taken_down = session.exec(select(Comparison).where(Comparison.slug == "elevenlabs-vs-descript")).one()
        taken_down.unpublished_at = datetime.now(timezone.utc)
    root = ET.fromstring(client.get("/sitemap.xml").content)
    locations = {url.find("{http://www.sitemaps.org/schemas/sitemap/0.9}loc").text for url in root}
    assert {f"{BASE}/tools/groqcloud", f"{BASE}/tools/together-ai", f"{BASE}/tools/notebooklm"} <= locations
    assert f"{BASE}/tools/elevenlabs" not in locations and f"{BASE}/compare/elevenlabs-vs-descript" not in locations
    assert client.get("/tools/elevenlabs").status_code == 404
