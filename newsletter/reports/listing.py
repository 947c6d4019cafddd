"""Rows for `issue list`: issues with their item and delivery counts, in three small queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.issues.models import Issue, IssueItem


@dataclass
class IssueRow:
    id: int
    week: str
    subject: str
    state: str
    comparisons: int
    sent: int
    pending: int
    failed: int
    scheduled_at: datetime | None = None


def list_issues(engine: Engine, now: datetime | None = None, grace: timedelta = timedelta(hours=1)) -> list[IssueRow]:
    """`state` says "scheduled (missed)" for an issue whose time passed beyond the grace period."""
    from newsletter.issues.editing import missed

    now = now or utcnow()
    with session_scope(engine) as session:
        issues = session.execute(select(Issue).order_by(Issue.week.desc(), Issue.id.desc())).scalars().all()
        items = dict(session.execute(
            select(IssueItem.issue_id, func.count()).group_by(IssueItem.issue_id)).all())
        # The issues' counters (newsletter/tallies.py), not a count by state over every delivery
        # of every issue: no index holds the state (migration 0032).
        deliveries = tallies.read(session, [issue.id for issue in issues])
    rows = []
    for issue in issues:
        counts = tallies.Deliveries.of(deliveries.get(issue.id, {}))
        state = f"{issue.state} (missed)" if missed(issue, now, grace) else issue.state
        rows.append(IssueRow(
            issue.id, issue.week, issue.subject, state, items.get(issue.id, 0),
            counts.sent, counts.pending, counts.failed,
            issue.scheduled_at,
        ))
    return rows
