"""Known data for the statistics tests: two sent issues, four readers, their deliveries, provider
and tracking events, unsubscribes inside and outside each issue's window, and votes old and
new; every figure the reports should find is written out in EXPECTED, so a wrong query fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from newsletter import tallies
from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.feedback.models import TrackingEvent, WebhookEvent
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.subscribers.models import ConsentEvent, Subscriber

# First issue (2026-W47, four readers): s0 sent (delivered twice over, complained, opened,
# clicked two links), s1 sent (soft then hard bounce, opened, unsubscribed after it),
# s2 failed, s3 skipped (unsubscribed before it started). Votes on its comparisons: 4.
FIRST = dict(recipients=4, sent=2, failed=1, skipped=1, pending=0, delivered=1, bounced=1, complained=1,
             unsubscribed=1, opens=2, clicks=1, votes=4)
# Second issue (2026-W48): s0 only, sent, who unsubscribes after it (so not after the first).
SECOND = dict(recipients=1, sent=1, failed=0, skipped=0, pending=0, delivered=0, bounced=0, complained=0,
              unsubscribed=1, opens=0, clicks=0, votes=0)
# The vote digest of midjourney-vs-ideogram (panel: Midjourney 4 of 4 ship, Ideogram 2 of 4).
# Votes: s0 Midjourney (10 days old), s1 Midjourney (today), s2 Ideogram (10 days old), s3 pass (today).
DIGEST = {"sample": 4, "votes_this_week": 2, "passes": 1, "tools": [
    {"slug": "midjourney", "votes": 2, "votes_this_week": 1, "community": 50, "panel": 100, "gap": -50, "change": 0},
    {"slug": "ideogram", "votes": 1, "votes_this_week": 0, "community": 25, "panel": 50, "gap": -25, "change": -25},
]}


@dataclass
class Known:
    first: int
    second: int
    comparison: int
    readers: list[int]
    now: datetime


def _issue(engine, settings, week: str, started: datetime) -> int:
    issue_id = draft_issue(engine, settings, week).issue.id
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        issue.state, issue.started_at, issue.finished_at = "sent", started, started + timedelta(minutes=5)
    return issue_id


def _events(session, deliveries: dict[str, Delivery]) -> None:
    for n, (reader, kind) in enumerate([("s0", "delivered"), ("s0", "delivered"), ("s0", "complained"),
                                        ("s1", "bounced_soft"), ("s1", "bounced_hard"), ("s2", "opened")]):
        session.add(WebhookEvent(provider="test", provider_event_id=f"e{n}", kind=kind, email=f"{reader}@example.com",
                                 delivery_id=deliveries[reader].id, issue_id=deliveries[reader].issue_id, message_key=f"d{deliveries[reader].id}"))


def _votes(session, comparison_id: int, readers: list[int], now: datetime) -> None:
    tools = dict(session.exec(select(Tool.slug, Tool.id).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                              .where(ComparisonTool.comparison_id == comparison_id)).all())
    old = now - timedelta(days=10)
    for reader, tool, when in [(0, "midjourney", old), (1, "midjourney", now), (2, "ideogram", old), (3, None, now)]:
        session.add(Vote(comparison_id=comparison_id, subscriber_id=readers[reader],
                         tool_id=tools[tool] if tool else None, created_at=when, updated_at=when))


def build(engine, settings) -> Known:
    now = utcnow()
    first = _issue(engine, settings, "2026-W47", now - timedelta(days=2))
    second = _issue(engine, settings, "2026-W48", now - timedelta(days=1))
    with session_scope(engine) as session:
        readers = [Subscriber(email=f"s{n}@example.com", status="active") for n in range(4)]
        session.add_all(readers)
        session.flush()
        ids = [r.id for r in readers]
        deliveries = {f"s{n}": Delivery(issue_id=first, subscriber_id=ids[n], state=state)
                      for n, state in enumerate(["sent", "sent", "failed", "skipped"])}
        session.add_all([*deliveries.values(), Delivery(issue_id=second, subscriber_id=ids[0], state="sent")])
        session.flush()
        _events(session, deliveries)
        for reader, kind, link in [(0, "open", -1), (1, "open", -1), (0, "click", 0), (0, "click", 1)]:
            session.add(TrackingEvent(issue_id=first, subscriber_id=ids[reader], kind=kind, link=link))
        for reader, when in [(1, now - timedelta(days=2) + timedelta(hours=1)), (3, now - timedelta(days=3)),
                             (0, now - timedelta(hours=1))]:
            session.add(ConsentEvent(subscriber_id=ids[reader], kind="unsubscribed", source="link", created_at=when))
        comparison = session.exec(select(Comparison).where(Comparison.slug == "midjourney-vs-ideogram")).one()
        _votes(session, comparison.id, ids, now)
    with session_scope(engine) as session:
        # Written straight into the tables, not through the send and event paths that keep the
        # issues' counters: counted from the rows, as after a bulk load (tallies.rebuild). That the
        # paths keep them equal to these counts is tests/reports/test_tallies.py's job.
        tallies.rebuild(session, [first, second])
    return Known(first, second, comparison.id, ids, now)
