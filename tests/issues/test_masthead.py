"""The issue as a reader meets it (issue 17, points 2 and 7): the masthead's date in words and its
"In this issue" list (built from the view being rendered, so a reader's subset lists only what
they get), vote buttons, the signup call to action beside the personal footer, Community % with
its votes and only a count below [content] community_min_votes, the editor's Markdown in both
parts, and records frozen before any of these fields existed still rendering."""

from __future__ import annotations

import re
from dataclasses import asdict, replace
from datetime import UTC, date, datetime

from sqlmodel import select

from newsletter.config import load_settings
from newsletter.content.models import Comparison, ComparisonTool, Vote
from newsletter.db import make_engine, session_scope
from newsletter.issues import editing
from newsletter.issues.dateline import date_in_words, issue_date
from newsletter.issues.drafting import draft_issue
from newsletter.delivery.sender import start_send
from newsletter.issues.frozen import _thaw, issue_view
from newsletter.issues.models import Issue
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view, community_text
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import write_config
from tests.db_templates import migrate_fresh, sample_content

VALUES = {"email": "reader@example.com", "unsubscribe_url": "https://verdicts.example/unsubscribe/TOKEN",
          "preferences_url": "https://verdicts.example/preferences/TOKEN", "vote_token": "VOTE", "track_token": ""}


def parts(view) -> tuple[str, str]:
    compiled = compile_issue(view)
    return compiled.html.fill(VALUES), compiled.text.fill(VALUES)


def sample(tmp_path):
    settings = load_settings(write_config(tmp_path))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    return settings, engine


def test_the_masthead_dates_the_issue_in_words_on_the_sites_calendar(tmp_path):
    settings, engine = sample(tmp_path)
    issue = draft_issue(engine, settings, "2026-W48").issue
    # An unscheduled draft: the week's send day ([schedule] send_day = thu by default) ...
    assert issue_date(settings, replace_issue(issue, week="2099-W10")).isoformat() == "2099-03-05"
    # ... or, once that day has passed, today: it can only go out from now on (outside trial: a
    # late week's test copy was dated last Thursday, its readers' copies today).
    today = datetime.now(settings.site.zone).date()
    assert issue_date(settings, issue) == max(date(2026, 11, 26), today)
    shown = issue_date(settings, issue).isoformat()
    # Scheduled: that day. Sent: the day the send started, in the site's zone (Europe/Berlin):
    # 23:30 UTC on Friday is already Saturday there.
    scheduled = replace_issue(issue, scheduled_at=datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    assert issue_date(settings, scheduled).isoformat() == "2026-11-25"
    sent = replace_issue(issue, scheduled_at=None, started_at=datetime(2026, 11, 27, 23, 30))  # naive UTC (SQLite)
    assert issue_date(settings, sent).isoformat() == "2026-11-28"
    assert date_in_words("2026-12-03", "en-GB") == "Thursday, 3 December 2026"
    assert date_in_words("2026-12-03", "de") == "Donnerstag, 3. Dezember 2026"
    assert date_in_words("2026-12-03", "xx-YY") == "Thursday, December 3, 2026"
    with session_scope(engine) as session:
        view = build_issue_view(session, settings, session.get(Issue, issue.id))
    html, text = parts(view)
    words = date_in_words(shown, "en")
    assert words in html and f"\n{words}\n" in text
    german = replace(view, site=replace(view.site, language="de"))
    assert date_in_words(shown, "de") in parts(german)[0] and "Dezember" in date_in_words("2026-12-03", "de")
    engine.dispose()


def replace_issue(issue: Issue, **changes) -> Issue:
    return Issue(**{**issue.model_dump(), **changes})


def test_in_this_issue_follows_the_rendered_view_and_every_entry_leads_to_its_card(tmp_path):
    settings, engine = sample(tmp_path)
    issue = draft_issue(engine, settings, "2026-W48").issue
    with session_scope(engine) as session:
        view = build_issue_view(session, settings, issue)
    for subset in (view.comparisons, view.comparisons[3:0:-1]):  # the whole issue, then a reader's variant
        html, text = parts(replace(view, comparisons=list(subset)))
        listed = re.findall(r'<li[^>]*><a href="#(c\d+)"[^>]*>([^<]*)</a></li>', html)
        assert [title for _anchor, title in listed] == [c.title for c in subset]
        cards = re.findall(r'<h2 id="(c\d+)"[^>]*>([^<]*)</h2>', html)
        assert listed == cards  # each entry's anchor is the heading of that comparison's card
        contents = text.split("IN THIS ISSUE\n", 1)[1].split("\n\n", 1)[0]
        assert contents.splitlines() == [f"{n}. {c.title}" for n, c in enumerate(subset, 1)]
    single, single_text = parts(replace(view, comparisons=view.comparisons[:1]))
    assert "In this issue" not in single and "IN THIS ISSUE" not in single_text  # a list of one says nothing
    engine.dispose()


def test_votes_are_buttons_and_the_footer_carries_the_sites_call_to_action(tmp_path):
    settings, engine = sample(tmp_path)
    issue = draft_issue(engine, settings, "2026-W48").issue
    editing.edit(engine, issue.id, intro="Two *new* tools this week; [the method](https://verdicts.example/method).")
    with session_scope(engine) as session:
        view = build_issue_view(session, settings, session.get(Issue, issue.id))
    html, text = parts(view)
    first = view.comparisons[0]
    buttons = re.findall(r'<table role="presentation"[^>]*class="wv-vote (wv-button(?:-alt)?)"[^>]*>'
                         r'<tr><td[^>]*><a href="([^"]+)"[^>]*>([^<]+)</a></td></tr></table>', html)
    assert buttons[:3] == [
        ("wv-button", f"https://verdicts.example/vote/VOTE/{first.slug}/groqcloud", "Ship GroqCloud"),
        ("wv-button", f"https://verdicts.example/vote/VOTE/{first.slug}/together-ai", "Ship Together AI"),
        ("wv-button-alt", f"https://verdicts.example/vote/VOTE/{first.slug}/pass", "Pass on both")]
    assert len(buttons) == sum(len(c.tools) + 1 for c in view.comparisons)
    assert f"Pass on both:\nhttps://verdicts.example/vote/VOTE/{first.slug}/pass" in text  # the text part mirrors it
    # The call to action, then the personal footer (its own block: a public web view can drop it).
    cta = '<a href="https://verdicts.example/" style="color:#8a1c22;">Get the next comparison in your inbox</a>'
    assert cta in html and html.index(cta) < html.index("Manage your preferences")
    assert "Get the next comparison in your inbox:\nhttps://verdicts.example/\n" in text
    assert text.index("Get the next comparison") < text.index("Manage your preferences")
    # The editor's note: emphasis and safe links in both parts; a script link (the editor refuses
    # it, a note stored otherwise is rendered all the same) stays literal text, never an href.
    assert "<em>new</em>" in html and '<a href="https://verdicts.example/method"' in html
    assert "Two *new* tools this week; the method <https://verdicts.example/method>" in text.replace("\n", " ")
    trap, trap_text = parts(replace(view, intro="[a trap](javascript:alert(1)) <b>bold</b>"))
    assert 'href="javascript' not in trap and "<b>bold" not in trap and "&lt;b&gt;bold" in trap
    assert "[a trap](javascript:alert(1)) <b>bold</b>" in trap_text
    engine.dispose()


def test_community_shows_its_votes_and_only_a_count_below_the_minimum(tmp_path):
    settings, engine = sample(tmp_path)  # [content] community_min_votes = 5 by default
    issue = draft_issue(engine, settings, "2026-W48").issue
    with session_scope(engine) as session:
        comparison = session.exec(select(Comparison).where(Comparison.slug == "groqcloud-vs-together-ai")).one()
        tools = session.exec(select(ComparisonTool.tool_id).where(ComparisonTool.comparison_id == comparison.id)
                             .order_by(ComparisonTool.position)).all()
        readers = [upsert_active(session, f"r{n}@example.com", "", [], "import", UpsertResult()) for n in range(6)]
        session.flush()
        picks = [tools[0], tools[0], None]  # three votes: GroqCloud twice, a pass once
        for reader, pick in zip(readers, picks):
            session.add(Vote(comparison_id=comparison.id, subscriber_id=reader.id, tool_id=pick))
    with session_scope(engine) as session:
        few = build_issue_view(session, settings, session.get(Issue, issue.id))
    groq = few.comparisons[0]
    assert not groq.community_shown and groq.community_votes == 3 and [t.votes for t in groq.tools] == [2, 0]
    html, text = parts(few)
    assert html.count("<strong>Community:</strong> 3 votes so far") == 2 and "Community 3 votes so far" in text
    assert "67%" not in html and "67%" not in text
    with session_scope(engine) as session:
        for reader, pick in zip(readers[3:], [tools[1], tools[0], tools[0]]):
            session.add(Vote(comparison_id=comparison.id, subscriber_id=reader.id, tool_id=pick))
    with session_scope(engine) as session:
        enough = build_issue_view(session, settings, session.get(Issue, issue.id))
    html, text = parts(enough)
    assert "<strong>Community:</strong> 67% of 6 votes" in html and "<strong>Community:</strong> 17% of 6 votes" in html
    assert "Community 67% of 6 votes" in text
    assert community_text(None, 0, 5) == "no votes yet" and community_text(100, 1, 5) == "1 vote so far"
    engine.dispose()


def test_a_record_frozen_before_these_fields_still_renders(tmp_path):
    settings, engine = sample(tmp_path)
    issue = draft_issue(engine, settings, "2026-W48").issue
    with session_scope(engine) as session:
        data = asdict(build_issue_view(session, settings, issue))
    data.pop("site")
    data.pop("issue_date")
    for comparison in data["comparisons"]:
        comparison.pop("community_shown")
        for tool in comparison["tools"]:
            tool.pop("votes")
    old = _thaw(data, settings)
    assert old.issue_date == "" and old.comparisons[0].community_shown and old.comparisons[0].tools[0].votes == 0
    html, text = parts(old)
    assert "In this issue" in html and "Ship GroqCloud" in html and "Thursday" not in html  # no date, no error
    # Sent on a Tuesday (not the Thursday send day): the frozen view, and every later showing of
    # it, is dated the day the send started.
    start_send(engine, issue.id, now=datetime(2026, 11, 24, 10, 0, tzinfo=UTC), settings=settings)
    with session_scope(engine) as session:
        frozen = issue_view(session, settings, session.get(Issue, issue.id))
    assert frozen.issue_date == "2026-11-24" and "Tuesday, November 24, 2026" in parts(frozen)[0]
    engine.dispose()
