"""A send's figures: the rate is what was sent over the last minutes, the ETA what is left at that rate."""

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import select

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.editors import audit
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.workflow import sending


def test_rate_and_eta_follow_the_recent_sends(sample_engine, settings):
    with session_scope(sample_engine) as session:
        for number in range(10):
            upsert_active(session, f"r{number}@example.com", "", [], "import", UpsertResult())
    issue_id = draft_issue(sample_engine, settings, "2026-W48").issue.id
    now = utcnow()
    assert sending.send_now(sample_engine, settings, audit.Actor.cli(), issue_id, ignore_checks=True).enqueued == 10
    with session_scope(sample_engine) as session:
        ids = list(session.exec(select(Delivery.id).where(Delivery.issue_id == issue_id).order_by(Delivery.id)))
        session.execute(update(Delivery).where(Delivery.id.in_(ids[:4])).values(
            state="sent", sent_at=now + timedelta(minutes=1)))
        tallies.rebuild(session, [issue_id])  # written around the send: the counters follow the rows
    status = sending.status(sample_engine, issue_id, now=now + timedelta(minutes=2))
    # started ~2 minutes before `now`: 4 sent in that window is 2 a minute; 6 left take 3 minutes
    assert (status.sent, status.pending, status.state) == (4, 6, "sending")
    assert 1.9 <= status.rate_per_minute <= 2.1 and 170 <= status.eta_seconds <= 190
    later = sending.status(sample_engine, issue_id, now=now + timedelta(minutes=30))
    assert later.rate_per_minute == 0 and later.eta_seconds is None  # nothing sent in the last 5 minutes
    sending.control_send(sample_engine, audit.Actor.cli(), issue_id, "pause")
    assert sending.status(sample_engine, issue_id, now=now + timedelta(minutes=2)).eta_seconds is None
