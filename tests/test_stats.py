from sqlmodel import select

from newsletter.content.models import Comparison, Vote
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.reports.stats import html_report, issue_stats
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.subscribers.signup import unsubscribe
from newsletter.feedback.rules import apply_event
from newsletter.feedback.events import EventKind, NormalizedEvent
from datetime import UTC, datetime
from tests.conftest import TEST_SECRET


def send_week(engine, settings, week):
    issue = draft_issue(engine, settings, week).issue
    start_send(engine, issue.id)
    deliver(engine, settings, make_transport(settings), TEST_SECRET, issue.id)
    return issue


def test_stats_count_each_issue_from_the_records(sample_engine, settings):
    with session_scope(sample_engine) as session:
        for n in range(4):
            upsert_active(session, f"s{n}@example.com", "", [], "import", UpsertResult())
    first = send_week(sample_engine, settings, "2026-W47")
    with session_scope(sample_engine) as session:
        deliveries = session.exec(select(Delivery).where(Delivery.issue_id == first.id).order_by(Delivery.id)).all()
        events = ["delivered", "delivered", "bounced_hard", "complained", "delivered"]  # the last: a replay
        for n, (kind, delivery) in enumerate(zip(events, deliveries + [deliveries[0]])):
            apply_event(session, settings, NormalizedEvent(
                kind=EventKind(kind), email=f"s{n % 4}@example.com", provider="test",
                provider_event_id=f"e{n}", reference=f"i{first.id}-d{delivery.id}"))
        leaver = session.exec(select(Subscriber).where(Subscriber.email == "s1@example.com")).one()
        unsubscribe(session, leaver.id, "link", datetime.now(UTC), goodbye=False, detail="one-click")
        other = session.exec(select(Comparison).where(Comparison.slug == "notebooklm-vs-consensus")).one()
        session.add(Vote(comparison_id=other.id, subscriber_id=leaver.id))  # a W48 comparison: not in W47
    with session_scope(sample_engine) as session:
        w47 = session.exec(select(Comparison).where(Comparison.slug == "midjourney-vs-ideogram")).one()
        for subscriber in session.exec(select(Subscriber).limit(2)).all():
            session.add(Vote(comparison_id=w47.id, subscriber_id=subscriber.id))
    second = send_week(sample_engine, settings, "2026-W48")

    rows = issue_stats(sample_engine)
    assert [r.id for r in rows] == [first.id, second.id]
    one = rows[0]
    assert (one.recipients, one.sent, one.delivered, one.bounced, one.complained) == (4, 4, 2, 1, 1)
    assert (one.unsubscribed, one.votes) == (1, 2)
    assert one.rate("bounced") == "25.0%"
    two = rows[1]
    # The bounced, the complainer and the leaver get no further issue.
    assert (two.recipients, two.delivered, two.unsubscribed, two.votes) == (1, 0, 0, 1)
    assert [r.id for r in issue_stats(sample_engine, issue_id=second.id)] == [second.id]
    report = html_report(rows, "Weekly Verdicts")
    assert report.count("<svg") == 6 and "2026-W47" in report and "<script" not in report
