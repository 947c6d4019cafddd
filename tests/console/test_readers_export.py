"""GET /api/v1/readers/export streams every reader once, as CSV or NDJSON, a keyset page at a time,
and the console's search pages (readers, suppressions) walk by "Next page" links."""

from __future__ import annotations

import csv
import io
import json
import re

from sqlalchemy import insert

from newsletter.db import session_scope
from newsletter.subscribers import search
from newsletter.subscribers.models import Subscriber, SubscriberTopic, Suppression

COUNT = 2345  # three pages of walk_readers' 1,000


def _many(engine, count: int = COUNT) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Subscriber.__table__), [
            {"email": f"r{i:05d}@example.com", "name": "=HYPERLINK(\"x\")" if i == 7 else f"Reader, \"{i}\"",
             "status": "active", "token_key": ""} for i in range(count)])


def test_export_streams_every_reader_once_as_csv_and_ndjson(console, monkeypatch):
    _many(console.engine)
    with session_scope(console.engine) as session:
        session.add(SubscriberTopic(subscriber_id=1, category="Developer Tools"))
    pages = []
    original = search.search_readers
    monkeypatch.setattr(search, "search_readers", lambda *a, **k: pages.append(1) or original(*a, **k))
    client = console.client()
    with client.stream("GET", "/api/v1/readers/export", headers=console.bearer("read")) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        chunks = list(answer.iter_text())
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(pages) == 3 and len(chunks) > 1  # page by page, not one body built in memory
    assert [row["email"] for row in rows] == [f"r{i:05d}@example.com" for i in range(COUNT)]
    assert rows[7]["name"].startswith("'=")  # a spreadsheet shows it as text, never runs it
    assert rows[0]["topics"] == "Developer Tools" and rows[2]["name"] == 'Reader, "2"'
    lines = client.get("/api/v1/readers/export", params={"format": "ndjson"}, headers=console.bearer("read"))
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    parsed = [json.loads(line) for line in lines.text.splitlines()]
    assert len({row["id"] for row in parsed}) == COUNT == len(parsed)
    bad = client.get("/api/v1/readers/export", params={"format": "xlsx"}, headers=console.bearer("read"))
    assert bad.status_code == 422 and "format" in bad.json()["error"]["fields"]


def test_the_console_search_walks_next_page_links(console):
    _many(console.engine, 120)
    viewer = console.login("viewer")
    url, seen = "/admin/readers?q=R000", []
    while url:
        page = viewer.get(url.replace("&amp;", "&"))
        assert page.status_code == 200
        seen += re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', page.text)
        found = re.search(r'<a href="(/admin/readers\?[^"]+)" rel="next">', page.text)
        url = found.group(1) if found else ""
    assert seen == [f"r{i:05d}@example.com" for i in range(100)]  # "R000" starts r00000 to r00099 only
    none = viewer.get("/admin/readers", params={"q": "nobody"})
    assert "No reader matches." in none.text
    contains = viewer.get("/admin/readers", params={"q": "\"11", "contains": "true"})
    assert re.findall(r'<a href="/admin/readers/\d+">([^<]+)</a>', contains.text) == ["r00011@example.com",
                                                                                      "r00110@example.com",
                                                                                      "r00111@example.com",
                                                                                      "r00112@example.com",
                                                                                      "r00113@example.com",
                                                                                      "r00114@example.com",
                                                                                      "r00115@example.com",
                                                                                      "r00116@example.com",
                                                                                      "r00117@example.com",
                                                                                      "r00118@example.com",
                                                                                      "r00119@example.com"]


def test_suppressions_page_and_api(console):
    with session_scope(console.engine) as session:
        for i in range(60):
            session.add(Suppression(email=f"b{i:03d}@example.com", reason="hard_bounce"))
    viewer = console.login("viewer")
    first = viewer.get("/admin/suppressions")
    assert first.status_code == 200 and "b000@example.com" in first.text and "b050@example.com" not in first.text
    following = re.search(r'<a href="(/admin/suppressions\?[^"]+)" rel="next">', first.text).group(1)
    second = viewer.get(following.replace("&amp;", "&"))
    assert "<td class=\"address\">b050@example.com" in second.text and "<td class=\"address\">b049@" not in second.text
    client, headers = console.client(), console.bearer("read")
    page = client.get("/api/v1/suppressions", params={"q": "b05", "limit": 5}, headers=headers).json()
    assert [s["email"] for s in page["items"]] == [f"b05{i}@example.com" for i in range(5)]
    rest = client.get("/api/v1/suppressions", params={"q": "b05", "cursor": page["next_cursor"]}, headers=headers).json()
    assert [s["email"] for s in rest["items"]] == [f"b05{i}@example.com" for i in range(5, 10)]
    assert rest["next_cursor"] is None
