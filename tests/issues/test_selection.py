import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select, update

from newsletter.content.importer import import_files
from newsletter.db import session_scope
from newsletter.errors import UserError
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState
from newsletter.issues.selection import select_for_week
from newsletter.weeks import parse_week, week_bounds, week_of
from tests.test_content import comparison_doc

BERLIN = ZoneInfo("Europe/Berlin")


def test_week_bounds_follow_the_site_time_zone():
    start, end = week_bounds("2026-W48", BERLIN)
    assert start == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)  # Monday 00:00 in Berlin (UTC+1)
    assert end == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)
    # Sunday 23:30 UTC is already Monday in Berlin: next week there, this week in UTC.
    moment = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert week_of(moment, BERLIN) == "2026-W49"
    assert week_of(moment, ZoneInfo("UTC")) == "2026-W48"
    with pytest.raises(UserError, match="YYYY-Www"):
        parse_week("2026-48")
    with pytest.raises(UserError, match="2025 has no week 53"):
        parse_week("2025-W53")


def _import(engine, tmp_path, docs):
    path = tmp_path / "week.json"
    path.write_text(json.dumps(docs))
    import_files(engine, [path])


def test_selection_rule(engine, settings, tmp_path):
    docs = [
        comparison_doc("c-late", published="2026-11-26T10:00:00Z"),
        comparison_doc("b-early", published="2026-11-23T08:00:00Z"),
        comparison_doc("a-early", published="2026-11-23T08:00:00Z"),
        comparison_doc("edge-next-week", published="2026-11-29T23:30:00Z"),  # Monday in Berlin
        comparison_doc("edge-this-week", published="2026-11-22T23:30:00Z"),  # Monday 00:30 Berlin
        comparison_doc("last-week", published="2026-11-18T10:00:00Z"),
    ]
    _import(engine, tmp_path, docs)
    with session_scope(engine) as session:
        picked = [c.slug for c in select_for_week(session, "2026-W48", BERLIN, 10)]
        assert picked == ["edge-this-week", "a-early", "b-early", "c-late"]
        assert [c.slug for c in select_for_week(session, "2026-W48", BERLIN, 2)] == ["edge-this-week", "a-early"]


def test_comparisons_sent_in_an_earlier_issue_are_not_picked_again(engine, settings, tmp_path):
    _import(engine, tmp_path, [comparison_doc("old", published="2026-11-18T10:00:00Z")])
    first = draft_issue(engine, settings, "2026-W47").issue
    with session_scope(engine) as session:
        session.exec(update(Issue).where(Issue.id == first.id).values(state=IssueState.sent.value))
    # The same comparison re-dated into the next week (an editor's fix) is not sent twice.
    _import(engine, tmp_path, [comparison_doc("old", published="2026-11-25T10:00:00Z"),
                               comparison_doc("new", published="2026-11-25T11:00:00Z")])
    second = draft_issue(engine, settings, "2026-W48")
    assert [c.slug for c in second.comparisons] == ["new"]


def test_draft_is_idempotent_and_refuses_an_empty_week(engine, settings, tmp_path):
    _import(engine, tmp_path, [comparison_doc("x", published="2026-11-25T10:00:00Z")])
    first = draft_issue(engine, settings, "2026-W48")
    again = draft_issue(engine, settings, "2026-W48")
    assert first.created and not again.created and again.issue.id == first.issue.id
    with session_scope(engine) as session:
        assert len(session.exec(select(Issue)).all()) == 1
    with pytest.raises(UserError, match="no comparisons"):
        draft_issue(engine, settings, "2026-W40")
