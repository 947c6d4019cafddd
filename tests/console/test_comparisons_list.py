"""Searching and filtering comparisons: the database's answer equals a plain-Python reading of
the same rows for any mix of filters (hypothesis), keyset pages never skip or repeat a row
(ties in publication time included), and the console page and the API give the same list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope
from newsletter.issues.models import Issue, IssueItem
from newsletter.reports.comparisons import Filters, Status, search
from newsletter.subscribers.models import Subscriber
from newsletter.weeks import week_of

ZONE = ZoneInfo("Europe/Berlin")
TOOL_NAMES = ["Alpha", "Beta Max", "Gamma_Ray", "Delta 50%", "epsilon", "ZETA"]
CATEGORIES = ["Developer Tools", "Research", "Video"]


@dataclass
class Made:
    slug: str
    title: str
    category: str
    published_at: datetime
    unpublished: bool
    tools: list[tuple[str, str]]  # (slug, name)
    votes: int
    issues: set[int]


def make_catalogue(engine, count: int = 23) -> list[Made]:
    """Comparisons with shared tools, equal publication times, LIKE wildcards in names, votes
    and issues, in a pattern a reader of this function can follow."""
    made: list[Made] = []
    with session_scope(engine) as session:
        readers = [Subscriber(email=f"r{i}@example.com", name="", status="active") for i in range(4)]
        issues = [Issue(week=f"2026-W{w}", subject=f"Issue {w}") for w in (45, 46, 47)]
        tools = [Tool(slug=f"tool-{i}", name=name, category="C", tagline="T", description="D", entry_price="Free")
                 for i, name in enumerate(TOOL_NAMES)]
        session.add_all(readers + issues + tools)
        session.flush()
        for i in range(count):
            hours = 19 * (i - (1 if i % 4 == 3 else 0))  # every fourth shares the time of the one before
            moment = datetime(2026, 11, 1, 22, 30, tzinfo=UTC) + timedelta(hours=hours)
            pair = [tools[i % 6], tools[(i % 6 + 1 + (i // 6) % 5) % 6]]  # two different tools
            title = f"{pair[0].name} vs {pair[1].name}" + (" 100%" if i % 7 == 0 else "")
            comparison = Comparison(slug=f"c{i:02d}-{'x' if i % 2 else 'y'}", title=title, dek="D",
                                    category=CATEGORIES[i % 3], published_at=moment,
                                    unpublished_at=moment if i % 5 == 2 else None)
            session.add(comparison)
            session.flush()
            for position, tool in enumerate(pair):
                session.add(ComparisonTool(comparison_id=comparison.id, tool_id=tool.id, position=position))
            votes = i % 5
            for reader in readers[:votes]:
                session.add(Vote(comparison_id=comparison.id, subscriber_id=reader.id, tool_id=pair[0].id))
            in_issues = {issue.id for n, issue in enumerate(issues) if (i + n) % 4 == 0}
            for issue_id in in_issues:
                session.add(IssueItem(issue_id=issue_id, comparison_id=comparison.id, position=i))
            made.append(Made(comparison.slug, title, comparison.category, moment, i % 5 == 2,
                             [(t.slug, t.name) for t in pair], votes, in_issues))
    return made


def expected(made: list[Made], f: Filters) -> list[str]:
    """The filters read in Python, newest first (ties: the later-made row, which has the higher id)."""
    def keep(m: Made) -> bool:
        needle = f.q.strip().lower()
        texts = [m.title.lower(), m.slug] + [name.lower() for _, name in m.tools] + [s for s, _ in m.tools]
        local = m.published_at.astimezone(ZONE)
        return ((not needle or any(needle in text for text in texts))
                and (not f.week or week_of(m.published_at, ZONE) == f.week)
                and (not f.published_from or local.date() >= f.published_from)
                and (not f.published_to or local.date() <= f.published_to)
                and (not f.category or m.category == f.category)
                and (f.issue is None or f.issue in m.issues)
                and m.votes >= f.min_votes
                and (f.status == Status.any or m.unpublished == (f.status == Status.unpublished)))

    ordered = sorted(enumerate(made), key=lambda pair: (pair[1].published_at, pair[0]), reverse=True)
    return [m.slug for _, m in ordered if keep(m)]


def walk(engine, filters: Filters, limit: int) -> list[str]:
    slugs, after = [], None
    with session_scope(engine) as session:
        for _ in range(100):  # a cursor that does not move on would loop forever
            rows, after = search(session, filters, ZONE, after, limit)
            slugs += [row.slug for row in rows]
            if after is None:
                return slugs
    raise AssertionError(f"pages did not end: {slugs[:20]}")


NEEDLES = st.sampled_from(["", "alpha", "BETA", "max", "gamma_", "_", "%", "50%", "100%", "vs", "c0", "-x",
                           "tool-3", "zeta", "nothing"])
FILTERS = st.builds(
    Filters, q=NEEDLES,
    week=st.sampled_from(["", "2026-W44", "2026-W45", "2026-W46", "2026-W47"]),
    published_from=st.none() | st.dates(date(2026, 11, 1), date(2026, 11, 22)),
    published_to=st.none() | st.dates(date(2026, 11, 1), date(2026, 11, 22)),
    category=st.sampled_from([""] + CATEGORIES), issue=st.none() | st.sampled_from([1, 2, 3]),
    min_votes=st.integers(0, 5), status=st.sampled_from(list(Status)))


def test_filters_agree_with_a_plain_reading_of_the_rows(engine):
    made = make_catalogue(engine)
    assert walk(engine, Filters(), 100) == expected(made, Filters())
    assert len({m.published_at for m in made}) < len(made)  # ties are really there

    @hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(filters=FILTERS, limit=st.integers(1, 7))
    def check(filters, limit):
        assert walk(engine, filters, limit) == expected(made, filters)

    check()


def test_the_api_pages_through_every_row_exactly_once(console):
    make_catalogue(console.engine, 31)
    client, seen, cursor = console.client(), [], ""
    while True:
        answer = client.get("/api/v1/comparisons", params={"limit": 4, "cursor": cursor},
                            headers=console.bearer("read"))
        assert answer.status_code == 200, answer.text
        seen += [item["slug"] for item in answer.json()["items"]]
        cursor = answer.json()["next_cursor"]
        if cursor is None:
            break
    with session_scope(console.engine) as session:
        everything = set(session.execute(Comparison.__table__.select().with_only_columns(
            Comparison.slug)).scalars())
    assert len(seen) == len(set(seen)) == len(everything) == 41 and set(seen) == everything


def test_the_api_and_the_console_list_the_same_rows_for_the_same_filters(console):
    made = make_catalogue(console.engine)
    params = {"q": "beta", "min_votes": "1", "status": "published"}
    api = console.client().get("/api/v1/comparisons", params=params, headers=console.bearer("read")).json()
    wanted = expected(made, Filters(q="beta", min_votes=1, status=Status.published))
    assert [item["slug"] for item in api["items"]] == wanted and wanted
    page = console.login("viewer").get("/admin/comparisons", params=params).text
    assert all(f'href="/admin/comparisons/{slug}"' in page for slug in wanted)
    assert page.count('<tr>\n    <td><a href="/admin/comparisons/') == len(wanted)
    first = api["items"][0]
    assert set(first) >= {"slug", "title", "tools", "votes", "issues", "is_published", "published"}


@pytest.mark.parametrize("params,field", [
    ({"week": "2026-W60"}, "week"), ({"week": "soon"}, "week"), ({"published_from": "24.11.2026"}, "published_from"),
    ({"min_votes": "-1"}, "min_votes"), ({"issue": "x"}, "issue"), ({"status": "gone"}, "status"),
    ({"q": "a\x00b"}, "q"), ({"published_from": "2026-11-20", "published_to": "2026-11-01"}, "published_to")])
def test_a_bad_filter_is_named_in_the_api_and_next_to_the_console_filter(console, params, field):
    api = console.client().get("/api/v1/comparisons", params=params, headers=console.bearer("read"))
    assert api.status_code == 422 and field in api.json()["error"]["fields"], api.text
    page = console.login("viewer").get("/admin/comparisons", params=params)
    assert page.status_code == 200 and f'id="{field}-error"' in page.text
    assert f'aria-describedby="{field}-error" aria-invalid="true"' in page.text \
        or f'aria-describedby="{field}-hint {field}-error" aria-invalid="true"' in page.text


def test_a_forged_cursor_is_a_422_in_the_api_and_the_first_page_in_the_console(console):
    from newsletter.web.console.api_base import encode_cursor

    for cursor in ("bm90LWpzb24", encode_cursor({"p": "yesterday", "id": 3}), encode_cursor({"p": 1, "id": 3}),
                   encode_cursor({"p": "2026-11-01T00:00:00", "id": 3})):
        api = console.client().get("/api/v1/comparisons", params={"cursor": cursor}, headers=console.bearer("read"))
        assert api.status_code == 422 and "cursor" in api.json()["error"]["fields"], (cursor, api.text)
    page = console.login("viewer").get("/admin/comparisons", params={"cursor": "bm90LWpzb24"})
    assert page.status_code == 200 and "Cursor vs Windsurf" in page.text
