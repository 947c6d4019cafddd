"""Each attention item holds exactly while its condition does."""

from datetime import timedelta

from sqlalchemy import update

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.reports.attention import check_warnings, failed_deliveries, missed_schedules, needs_attention
from newsletter.weeks import week_bounds
from tests.reports.known import build


def _schedule(engine, issue_id, state, at):
    with session_scope(engine) as session:
        session.execute(update(Issue).where(Issue.id == issue_id).values(state=state, scheduled_at=at))


def test_a_missed_schedule_is_one_past_its_grace(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    now = utcnow()
    grace = timedelta(minutes=settings.schedule.grace_minutes)
    _schedule(sample_engine, issue.id, "scheduled", now - grace - timedelta(minutes=1))
    [item] = missed_schedules(sample_engine, settings, now)
    assert (item.kind, item.issue_id, item.week) == ("missed_schedule", issue.id, "2026-W48")
    _schedule(sample_engine, issue.id, "scheduled", now - grace + timedelta(minutes=1))  # still in its grace
    assert missed_schedules(sample_engine, settings, now) == []
    _schedule(sample_engine, issue.id, "draft", now - grace - timedelta(days=1))  # not scheduled: nothing missed
    assert missed_schedules(sample_engine, settings, now) == []


def test_failed_deliveries_of_recent_issues(sample_engine, settings):
    known = build(sample_engine, settings)
    [item] = failed_deliveries(sample_engine)
    assert (item.kind, item.issue_id) == ("failed_deliveries", known.first) and "1 delivery failed" in item.message
    assert failed_deliveries(sample_engine, recent=1) == []  # only the second issue, which has none
    with session_scope(sample_engine) as session:
        session.execute(update(Delivery).where(Delivery.state == "failed").values(state="sent"))
        tallies.rebuild(session)  # the rows were written around the send: the counters follow them
    assert failed_deliveries(sample_engine) == []


def test_pre_send_check_warnings_of_the_next_issue(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, "2026-W46").issue
    in_w46 = week_bounds("2026-W46", settings.site.zone)[0] + timedelta(days=2)
    real = settings.model_copy(update={"site": settings.site.model_copy(
        update={"postal_address": "Verdicts GmbH, Realweg 1, 10115 Berlin"})})
    assert check_warnings(sample_engine, real, issue.id, "2026-W46", in_w46) == []
    # Three weeks on, the issue would bring old news (a failing check); without a postal address
    # on the file transport, a warning.
    later = in_w46 + timedelta(days=21)
    bare = settings.model_copy(update={"site": settings.site.model_copy(update={"postal_address": ""})})
    items = needs_attention(sample_engine, bare, (issue.id, "2026-W46"), later)
    assert sorted((i.kind, i.message.split(",")[1].split(":")[0].strip()) for i in items) == \
        [("check_fail", "check week"), ("check_warning", "check postal-address")]
    assert needs_attention(sample_engine, bare, None, later) == []
