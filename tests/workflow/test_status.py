"""A send's figures: the rate is what was sent over the last minutes, the ETA what is left at that rate."""

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import select

from newsletter import send_rate, tallies
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
        send_rate.rebuild(session, [issue_id])  # and so do the sends per 10 s the rate is read from
    status = sending.status(sample_engine, issue_id, now=now + timedelta(minutes=2))
    # started ~2 minutes before `now`: 4 sent in that window is 2 a minute; 6 left take 3 minutes
    assert (status.sent, status.pending, status.state) == (4, 6, "sending")
    assert 1.9 <= status.rate_per_minute <= 2.1 and 170 <= status.eta_seconds <= 190
    later = sending.status(sample_engine, issue_id, now=now + timedelta(minutes=30))
    assert later.rate_per_minute == 0 and later.eta_seconds is None  # nothing sent in the last 5 minutes
    sending.control_send(sample_engine, audit.Actor.cli(), issue_id, "pause")
    assert sending.status(sample_engine, issue_id, now=now + timedelta(minutes=2)).eta_seconds is None


def test_the_rate_reads_the_sends_per_10_seconds_not_the_issues_rows(sample_engine, settings):
    """The progress page asks for the figures every second: they come from the counters and the
    sends per 10 s (newsletter/send_rate.py), never from the issue's rows (no index may hold a
    row's state or sent_at, migration 0032: a count of the rows sent lately read every row of the
    issue). The rate is the one the rows give: sent in the window, per minute."""
    from sqlalchemy import event, func

    from newsletter.delivery.sender import deliver
    from newsletter.issues.models import Issue
    from tests.conftest import TEST_SECRET
    from tests.delivery.test_claims import _enqueue
    from tests.delivery.test_hot_updates import AcceptAll

    issue_id, _ids = _enqueue(sample_engine, settings, 120)
    assert deliver(sample_engine, settings, AcceptAll(), TEST_SECRET, issue_id).sent == 120
    seen: list[str] = []

    def capture(_conn, _cursor, statement, _parameters, _context, _many):
        seen.append(statement)

    now = utcnow()
    event.listen(sample_engine, "before_cursor_execute", capture)
    try:
        status = sending.status(sample_engine, issue_id, now=now)
    finally:
        event.remove(sample_engine, "before_cursor_execute", capture)
    assert not [s for s in seen if " delivery" in s.lower()], seen
    with session_scope(sample_engine) as session:
        started = session.get(Issue, issue_id).started_at
        window = max(min(sending.RATE_WINDOW, now - started), timedelta(seconds=1))
        recent = session.execute(select(func.count()).where(
            Delivery.issue_id == issue_id, Delivery.state == "sent", Delivery.sent_at >= now - window)).one()[0]
    assert status.rate_per_minute == round(recent / (window.total_seconds() / 60), 1) > 0


def test_the_ring_adds_within_a_bucket_and_a_newer_bucket_takes_the_slot(sample_engine, settings):
    """send_rate.add, the statement every recorded batch runs: the same 10 s adds up, per shard; a
    slot's older bucket gives way to a newer one (a ring of SLOTS buckets), never the reverse."""
    issue_id = draft_issue(sample_engine, settings, "2026-W48").issue.id
    start = utcnow().replace(microsecond=0)
    start -= timedelta(seconds=int(start.timestamp()) % send_rate.BUCKET_SECONDS)  # a bucket's first second
    ring = timedelta(seconds=send_rate.BUCKET_SECONDS * send_rate.SLOTS)
    with session_scope(sample_engine) as session:
        send_rate.add(session, issue_id, start, 5, shard=1)
        send_rate.add(session, issue_id, start + timedelta(seconds=3), 7, shard=1)  # same bucket: 12
        send_rate.add(session, issue_id, start, 4, shard=2)  # another shard's row: summed on reading
        send_rate.add(session, issue_id, start + timedelta(seconds=10), 3, shard=1)  # the next slot
    with session_scope(sample_engine) as session:
        window = send_rate.sent_since(session, issue_id, start, start + timedelta(seconds=19))
        assert window == 5 + 7 + 4 + 3
        assert send_rate.sent_since(session, issue_id, start + timedelta(seconds=10),
                                    start + timedelta(seconds=19)) == 3
        send_rate.add(session, issue_id, start + ring, 2, shard=1)  # the same slot, one turn later
        send_rate.add(session, issue_id, start, 100, shard=1)  # a late batch of the older bucket: dropped
    with session_scope(sample_engine) as session:
        assert send_rate.sent_since(session, issue_id, start + ring, start + ring + timedelta(seconds=9)) == 2
        assert send_rate.sent_since(session, issue_id, start, start + timedelta(seconds=9)) == 4  # shard 2's
