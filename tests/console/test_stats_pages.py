"""The console's stats pages and dashboard over known records: the figures shown are exact,
charts are accessible SVG with the same numbers in a table, CSV downloads parse and are
defused, and each attention item shows exactly while its condition holds."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import update

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.issues.models import Issue, IssueItem
from newsletter.web.app import create_app
from newsletter.weeks import current_week
from tests.conftest import TEST_SECRET
from tests.console.conftest import Console
from tests.reports.known import DIGEST, FIRST, build


def cells(html: str, heading: str) -> list[str]:
    """The cells of the table row whose header cell holds `heading`."""
    row = re.search(rf"<tr><th scope=\"row\">(?:<a [^>]*>)?{re.escape(heading)}(?:</a>)?</th>(.*?)</tr>", html, re.S)
    assert row, f"no row {heading!r}"
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_stats_overview_shows_every_issue_and_charts(console):
    build(console.engine, console.settings)
    html = console.login("viewer").get("/admin/stats").text
    # Recipients, sent, failed, delivered, bounced, complained, unsubscribed, votes (opens/clicks not tracked).
    first = cells(html, "2026-W47")
    assert first[1:] == ["4", "2", "1", "1", "1 (50.0%)", "1 (50.0%)", "1", "4"]
    assert cells(html, "2026-W48")[1:] == ["1", "1", "0", "0", "0 (0.0%)", "0 (0.0%)", "1", "0"]
    charts = re.findall(r'<svg class="chart" role="img" aria-labelledby="([^"]+)"', html)
    assert len(charts) == 8  # six issue figures, joined and left per week
    for labels in charts:
        for ident in labels.split():
            assert f'id="{ident}"' in html
    assert "<desc id=\"chart-sent-desc\">Issues oldest first, labelled by ISO week. 2026-W47: 2; 2026-W48: 1</desc>" in html
    assert "<script" not in html and "var(--bar_fill" in html
    assert 'href="/admin/stats/issues.csv?last=12"' in html


def test_one_issue_and_its_vote_digest(console):
    known = build(console.engine, console.settings)
    viewer = console.login("viewer")
    html = viewer.get(f"/admin/stats/issues/{known.first}").text
    for heading, value in [("Recipients", "4"), ("Sent", "2"), ("Failed", "1"), ("Skipped", "1"),
                           ("Delivered", "1"), ("Bounced", "1"), ("Complained", "1"), ("Unsubscribed after it", "1"),
                           ("Votes on its comparisons", "4")]:
        assert cells(html, heading)[0] == value, heading
    assert "Midjourney" in html and "−" not in html
    digest = re.search(r"Midjourney</td>(.*?)</tr>", html, re.S).group(1)
    assert [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", digest)] == \
        ["2", "50%", "100%", "-50", "1", "0"]
    missing = viewer.get("/admin/stats/issues/999999")
    assert missing.status_code == 404 and "No figures for this issue" in missing.text
    assert viewer.get("/admin/stats/issues/0").status_code in (404, 422)


def test_vote_digest_page_and_paging(console):
    build(console.engine, console.settings)
    viewer = console.login("viewer")
    html = viewer.get("/admin/stats/comparisons").text
    assert "Ideogram" in html and "-25" in html and "4 votes, 1 pass; 2 this week" in html
    assert "Older comparisons" not in html  # the sample has fewer than a page


def test_csv_exports(console):
    known = build(console.engine, console.settings)
    with session_scope(console.engine) as session:
        session.get(Issue, known.first).subject = "=HYPERLINK(\"https://evil.example\")"
    viewer = console.login("viewer")
    answer = viewer.get("/admin/stats/issues.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="issue-stats.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["subject"] == "'=HYPERLINK(\"https://evil.example\")"
    assert {name: int(rows[0][name]) for name in FIRST} == FIRST
    digest = viewer.get("/admin/stats/comparisons.csv")
    assert digest.headers["content-disposition"] == 'attachment; filename="vote-digest.csv"'
    midjourney = next(r for r in csv.DictReader(io.StringIO(digest.text)) if r["tool"] == "midjourney")
    expected = DIGEST["tools"][0]
    assert (int(midjourney["votes"]), int(midjourney["community_percent"]), int(midjourney["gap_points"])) == \
        (expected["votes"], expected["community"], expected["gap"])


def kinds(html: str) -> list[str]:
    return re.findall(r'data-kind="([a-z_]+)"', html)


def test_dashboard_attention_items_follow_their_conditions(console):
    known = build(console.engine, console.settings)
    editor = console.login("editor")
    # Both issues are sent: no next issue to check; the first has a failed delivery.
    assert kinds(editor.get("/admin").text) == ["failed_deliveries"]
    with session_scope(console.engine) as session:
        session.execute(update(Delivery).where(Delivery.state == "failed").values(state="sent"))
        tallies.rebuild(session)  # the rows were written around the send: the counters follow them
    html = editor.get("/admin").text
    assert kinds(html) == [] and "Nothing needs attention." in html
    # A scheduled issue past its grace period is missed; the shipped sample postal address is a
    # pre-send check warning of that (next) issue.
    grace = timedelta(minutes=console.settings.schedule.grace_minutes)
    with session_scope(console.engine) as session:
        issue = Issue(week=current_week(console.settings.site.zone), subject="This week", state="scheduled",
                      scheduled_at=utcnow() - grace - timedelta(minutes=2))
        session.add(issue)
        session.flush()
        session.add(IssueItem(issue_id=issue.id, comparison_id=known.comparison, position=0))
    html = editor.get("/admin").text
    assert kinds(html) == ["missed_schedule", "check_warning"], re.findall(r"<li id=\"attention.*?</li>", html, re.S)
    assert "postal-address" in html
    with session_scope(console.engine) as session:
        session.execute(update(Issue).where(Issue.week == issue.week).values(scheduled_at=utcnow() + timedelta(hours=2)))
    assert kinds(editor.get("/admin").text) == ["check_warning"]


def test_dashboard_figures(console):
    known = build(console.engine, console.settings)
    html = console.login("viewer").get("/admin").text
    assert cells(html, "active") == ["4"]
    last = html[html.index("<h3>Last issue</h3>"):]
    assert "2026-W48" in last and f'href="/admin/stats/issues/{known.second}"' in last
    assert cells(last, "Sent") == ["1"] and cells(last, "Unsubscribed after it") == ["1"]
    weeks = html[html.index("<h3>Readers per week</h3>"):html.index("<h3>Last issue</h3>")]
    rows = re.findall(r'<tr><th scope="row">(\d{4}-W\d\d)</th>', weeks)
    assert len(rows) == 8 and rows[-1] == current_week(console.settings.site.zone)


def test_a_zero_under_delivered_is_explained_where_nothing_reports_deliveries(console):
    """Over SMTP and into the file outbox no one reports a delivery, so *delivered* stays 0 beside
    *sent*; the stats pages and the dashboard say why there, and only there."""
    known = build(console.engine, console.settings)
    for transport, says in [("smtp", "over SMTP, where nothing reports deliveries"),
                            ("file", "into the file outbox"), ("postmark", None)]:
        settings = console.settings.model_copy(update={
            "mail": console.settings.mail.model_copy(update={"transport": transport})})
        app = create_app(settings, engine=console.engine, secret=TEST_SECRET, with_sender=False)
        viewer = Console(app, console.engine, settings).login("viewer")
        for url in ("/admin/stats", f"/admin/stats/issues/{known.first}", "/admin"):
            html = viewer.get(url).text
            assert ("Delivered counts the deliveries a provider reports back" in html) == (says is not None), url
            assert says is None or says in html, (transport, url)
