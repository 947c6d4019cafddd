import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlmodel import func, select

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.delivery.models import Delivery
from newsletter.errors import UserError
from newsletter.issues import editing
from newsletter.issues.drafting import draft_issue
from newsletter.reports.listing import list_issues
from newsletter.issues.models import Issue
from newsletter.schedule import build_scheduler, dispatch_due, send_time_for, weekly_draft
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import write_config

UTC_ = UTC


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    "zone, local, expected",
    [
        ("Europe/Berlin", "2026-03-28 08:00", "2026-03-28T07:00"),  # CET
        ("Europe/Berlin", "2026-03-30 08:00", "2026-03-30T06:00"),  # CEST
        ("Europe/Berlin", "2026-10-25 02:30", "2026-10-25T00:30"),  # repeated hour: the first one
        ("America/New_York", "2026-03-07 08:00", "2026-03-07T13:00"),  # EST
        ("America/New_York", "2026-03-09 08:00", "2026-03-09T12:00"),  # EDT
        ("America/New_York", "2026-11-01 01:30", "2026-11-01T05:30"),  # repeated hour: the first one
    ],
)
def test_local_times_across_both_dst_transitions(zone, local, expected):
    assert editing.parse_local(local, zone) == at(expected)


@pytest.mark.parametrize("zone, local", [("Europe/Berlin", "2026-03-29 02:30"), ("America/New_York", "2026-03-08 02:30")])
def test_a_time_skipped_by_dst_is_refused(zone, local):
    with pytest.raises(UserError, match="does not exist"):
        editing.parse_local(local, zone)


@pytest.mark.parametrize(
    "zone, weeks_and_utc",
    [
        ("Europe/Berlin", [("2026-W13", "2026-03-26T07:00"), ("2026-W14", "2026-04-02T06:00"),
                           ("2026-W43", "2026-10-22T06:00"), ("2026-W44", "2026-10-29T07:00")]),
        ("America/New_York", [("2026-W10", "2026-03-05T13:00"), ("2026-W11", "2026-03-12T12:00"),
                              ("2026-W44", "2026-10-29T12:00"), ("2026-W45", "2026-11-05T13:00")]),
    ],
)
def test_weekly_send_time_keeps_local_time_across_transitions(tmp_path, monkeypatch, zone, weeks_and_utc):
    monkeypatch.setenv("NEWSLETTER_SCHEDULE__TIMEZONE", zone)
    settings = load_settings(write_config(tmp_path))
    for week, expected in weeks_and_utc:
        assert send_time_for(settings, week) == at(expected)
    # APScheduler's cron trigger in the same zone fires at 08:00 local on both sides.
    trigger = CronTrigger(day_of_week="thu", hour=8, minute=0, timezone=ZoneInfo(zone))
    fire = trigger.get_next_fire_time(None, at(weeks_and_utc[0][1]) - timedelta(days=1))
    for _ in range(30):
        assert (fire.hour, fire.minute, fire.weekday()) == (8, 0, 3)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(minutes=1))


def readers(engine, n=3):
    with session_scope(engine) as session:
        for i in range(n):
            upsert_active(session, f"r{i}@example.com", "", [], "import", UpsertResult())


def deliveries(engine, issue_id):
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue_id)).one()


def test_dispatch_with_a_fake_clock(sample_engine, settings):
    readers(sample_engine)
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    when = at("2026-11-26T07:00")
    editing.schedule(sample_engine, issue.id, when, now=at("2026-11-25T00:00"))
    assert dispatch_due(sample_engine, settings, now=when - timedelta(seconds=1)) == []
    assert dispatch_due(sample_engine, settings, now=when + timedelta(seconds=1)) == [issue.id]
    assert dispatch_due(sample_engine, settings, now=when + timedelta(seconds=2)) == []  # never twice
    assert deliveries(sample_engine, issue.id) == 3


def test_an_issue_missed_beyond_grace_waits_for_an_editor(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    when = at("2026-11-26T07:00")
    editing.schedule(sample_engine, issue.id, when, now=at("2026-11-25T00:00"))
    late = when + timedelta(minutes=settings.schedule.grace_minutes + 1)
    assert dispatch_due(sample_engine, settings, now=late) == []
    row = next(r for r in list_issues(sample_engine, now=late, grace=timedelta(minutes=60)) if r.id == issue.id)
    assert row.state == "scheduled (missed)"
    within = when + timedelta(minutes=settings.schedule.grace_minutes - 1)
    assert dispatch_due(sample_engine, settings, now=within) == [issue.id]


def test_weekly_draft_with_auto_send_schedules_the_send_time(sample_engine, tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SCHEDULE__AUTO_SEND", "true")
    settings = load_settings(write_config(tmp_path, db_url))
    issue = weekly_draft(sample_engine, settings, now=at("2026-11-23T08:00"))  # Monday 09:00 in Berlin
    assert issue.week == "2026-W48" and issue.state == "scheduled"
    assert issue.scheduled_at == at("2026-11-26T07:00")  # Thursday 08:00 in Berlin
    assert weekly_draft(sample_engine, settings, now=at("2026-11-23T08:01")).id == issue.id  # no second issue


def test_editor_guards(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    now = at("2026-11-25T00:00")
    with pytest.raises(UserError, match="in the past"):
        editing.schedule(sample_engine, issue.id, now - timedelta(minutes=1), now=now)
    for item in ["groqcloud-vs-together-ai", "elevenlabs-vs-descript", "notebooklm-vs-consensus",
                 "claude-haiku-open-weights-vs-hugging-face-inference-providers-v2",
                 "databricks-ai-bi-genie-vs-snowflake-cortex-analyst"]:
        editing.remove(sample_engine, issue.id, item)
    with pytest.raises(UserError, match="no comparisons"):
        editing.schedule(sample_engine, issue.id, now + timedelta(days=1), now=now)
    editing.add(sample_engine, issue.id, "notebooklm-vs-consensus")
    editing.add(sample_engine, issue.id, "cursor-vs-windsurf")
    editing.move(sample_engine, issue.id, "cursor-vs-windsurf", 1)
    with session_scope(sample_engine) as session:
        from newsletter.issues.models import IssueItem
        from newsletter.content.models import Comparison

        order = session.exec(select(Comparison.slug).join(IssueItem, IssueItem.comparison_id == Comparison.id)
                             .where(IssueItem.issue_id == issue.id).order_by(IssueItem.position)).all()
    assert order == ["cursor-vs-windsurf", "notebooklm-vs-consensus"]
    with pytest.raises(UserError, match="already in"):
        editing.add(sample_engine, issue.id, "cursor-vs-windsurf")
    with pytest.raises(UserError, match="choose 1 to 2"):
        editing.move(sample_engine, issue.id, "cursor-vs-windsurf", 5)
    with pytest.raises(UserError, match="control characters"):
        editing.edit(sample_engine, issue.id, subject="Hi\r\nBcc: x@example.com")
    editing.edit(sample_engine, issue.id, subject="A special issue", intro="Hello readers.\n\nTwo picks.")
    from newsletter.delivery.sender import start_send

    start_send(sample_engine, issue.id)
    with pytest.raises(UserError, match="can no longer change"):
        editing.edit(sample_engine, issue.id, subject="Too late")
    with pytest.raises(UserError, match="can no longer change"):
        editing.add(sample_engine, issue.id, "elevenlabs-vs-descript")


def test_two_schedulers_at_once_send_once(sample_engine, settings, db_url, monkeypatch, caplog):
    """Two real APScheduler instances, each with its own engine (connection pool), tick fast.
    Enqueue alone would hide a double dispatch (its unique key), so count the starts too."""
    import logging

    caplog.set_level(logging.INFO, logger="newsletter.schedule")
    monkeypatch.setattr(settings.schedule, "tick_seconds", 0.1)
    readers(sample_engine, 5)
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    editing.schedule(sample_engine, issue.id, datetime.now(UTC) + timedelta(seconds=1))
    engines = [make_engine(settings.database.url) for _ in range(2)]
    schedulers = [build_scheduler(engine, settings) for engine in engines]
    for scheduler in schedulers:
        scheduler.start()
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            with session_scope(sample_engine) as session:
                if session.get(Issue, issue.id).state == "sending":
                    break
            time.sleep(0.1)
        time.sleep(0.5)  # let both tick a few more times after the start
    finally:
        for scheduler in schedulers:
            scheduler.shutdown()
        for engine in engines:
            engine.dispose()
    with session_scope(sample_engine) as session:
        assert session.get(Issue, issue.id).state == "sending"
    assert deliveries(sample_engine, issue.id) == 5
    starts = [r for r in caplog.records if r.name == "newsletter.schedule" and "sending to" in r.getMessage()]
    assert len(starts) == 1, [r.getMessage() for r in starts]
