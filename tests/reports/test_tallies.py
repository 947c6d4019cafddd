"""The issues' counters (newsletter/tallies.py) equal a count over the raw rows after a real send:
skipped, failed and sent deliveries, provider events (replays, repeats, a soft then a hard
bounce, a complaint), opens and clicks (repeats, two links), unsubscribes, a reader forgotten
afterwards and a second issue cancelled mid-queue; on SQLite and PostgreSQL.

The direct counts below are written out here, independently of newsletter/tallies.py (the
queries the statistics ran before the counters), and the expected figures are spelled out too,
so a wrong definition fails as well as a missed increment."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import distinct, func, select
from sqlmodel import Session

from newsletter import tallies
from newsletter.db import session_scope
from newsletter.delivery.control import cancel_issue
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.feedback.events import EventKind, NormalizedEvent
from newsletter.feedback.models import TrackingEvent, WebhookEvent
from newsletter.feedback.rules import apply_event
from newsletter.issues.drafting import draft_issue
from newsletter.reports.stats import issue_stats
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.forgotten import forget
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.subscribers.signup import unsubscribe
from newsletter.web.tracking import record
from tests.conftest import TEST_SECRET

COUNTED = ["recipients", "sent", "failed", "skipped", "pending", "delivered", "bounced", "complained", "opens",
           "clicks"]


class RefusingTransport:
    """The receiving side (a transport double): r6 is refused for good, everyone else accepted."""

    name = "refusing"

    def send(self, messages):
        return [SendResult(Outcome.failed, error="550 no such user", hard_bounce=True)
                if message.recipient.startswith("r6@") else SendResult(Outcome.sent) for message in messages]

    def close(self):
        pass


def direct(session: Session, issue_id: int) -> dict[str, int]:
    """Every counted figure of one issue, counted over the rows."""
    states = dict(session.execute(select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id)
                                  .group_by(Delivery.state)).all())
    figures = {"recipients": sum(states.values()), **{s: states.get(s, 0) for s in ("sent", "failed", "skipped")}}
    figures["pending"] = sum(states.get(s, 0) for s in ("queued", "sending", "retry"))
    for figure, kinds in [("delivered", ["delivered"]), ("complained", ["complained"]),
                          ("bounced", ["bounced_hard", "bounced_soft"])]:
        figures[figure] = session.execute(select(func.count(distinct(WebhookEvent.delivery_id))).where(
            WebhookEvent.issue_id == issue_id, WebhookEvent.kind.in_(kinds))).scalar_one()
    for figure, kind in [("opens", "open"), ("clicks", "click")]:
        figures[figure] = session.execute(select(func.count(distinct(TrackingEvent.subscriber_id))).where(
            TrackingEvent.issue_id == issue_id, TrackingEvent.kind == kind)).scalar_one()
    return figures


def fast(engine, issue_id: int) -> dict[str, int]:
    row = issue_stats(engine, issue_id=issue_id)[0]
    return {name: getattr(row, name) for name in COUNTED}


def events(engine, settings, issue_id: int) -> None:
    with session_scope(engine) as session:
        by_reader = {email.split("@")[0]: (d, s) for d, s, email in session.execute(
            select(Delivery.id, Delivery.subscriber_id, Subscriber.email).join(Subscriber)
            .where(Delivery.issue_id == issue_id)).all()}
    provider = [("r0", "delivered", "e1"), ("r0", "delivered", "e1"), ("r0", "delivered", "e2"),  # a replay, a repeat
                ("r1", "delivered", "e3"), ("r1", "complained", "e4"), ("r2", "delivered", "e5"),
                ("r3", "bounced_soft", "e6"), ("r3", "bounced_hard", "e7"), ("r4", "delivered", "e8")]
    for reader, kind, event_id in provider:
        with session_scope(engine) as session:
            apply_event(session, settings, NormalizedEvent(
                kind=EventKind(kind), email=f"{reader}@example.com", provider="test", provider_event_id=event_id,
                reference=f"i{issue_id}-d{by_reader[reader][0]}"))
    tracked = [("r0", "open", -1), ("r0", "open", -1), ("r1", "open", -1), ("r0", "click", 0), ("r0", "click", 1),
               ("r2", "click", 0), ("r2", "click", 0)]
    for reader, kind, link in tracked:
        with session_scope(engine) as session:
            record(session, issue_id, by_reader[reader][1], kind, link)
    with session_scope(engine) as session:
        unsubscribe(session, by_reader["r2"][1], "link", datetime.now(UTC), goodbye=False, detail="one-click")


def test_counters_equal_a_count_over_the_rows(sample_engine, settings):
    engine = sample_engine
    with session_scope(engine) as session:
        for n in range(8):
            upsert_active(session, f"r{n}@example.com", "", [], "import", UpsertResult())
    issue = draft_issue(engine, settings, "2026-W47").issue.id
    start_send(engine, issue)
    with session_scope(engine) as session:  # leaves between enqueue and send: skipped at the claim
        leaver = session.execute(select(Subscriber.id).where(Subscriber.email == "r7@example.com")).scalar_one()
        unsubscribe(session, leaver, "link", datetime.now(UTC), goodbye=False, detail="one-click")
    deliver(engine, settings, RefusingTransport(), TEST_SECRET, issue)
    events(engine, settings, issue)
    with session_scope(engine) as session:
        assert direct(session, issue) == dict(recipients=8, sent=6, failed=1, skipped=1, pending=0, delivered=4,
                                              bounced=1, complained=1, opens=2, clicks=2)
        assert tallies.raw_counts(session, issue) == {k: v for k, v in direct(session, issue).items() if k != "pending"}
    assert fast(engine, issue) == direct_now(engine, issue)
    assert issue_stats(engine, issue_id=issue)[0].unsubscribed == 2

    forget(engine, "r0@example.com")  # deliveries and tracking go, its provider events lose the delivery
    assert fast(engine, issue) == direct_now(engine, issue)
    assert (fast(engine, issue)["recipients"], fast(engine, issue)["delivered"], fast(engine, issue)["clicks"]) \
        == (7, 3, 1)

    second = draft_issue(engine, settings, "2026-W48").issue.id
    start_send(engine, second)
    cancel_issue(engine, second)  # every queued delivery skipped
    assert fast(engine, second) == direct_now(engine, second)
    assert fast(engine, second)["skipped"] == fast(engine, second)["recipients"] > 0

    with session_scope(engine) as session:  # a recount changes nothing
        tallies.rebuild(session)
    assert fast(engine, issue) == direct_now(engine, issue) and fast(engine, second) == direct_now(engine, second)


def direct_now(engine, issue_id: int) -> dict[str, int]:
    with session_scope(engine) as session:
        return direct(session, issue_id)
