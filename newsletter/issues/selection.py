"""Which comparisons make a week's issue.

Rule (docs/architecture.md): comparisons published within the ISO week in the
site's time zone, not unpublished by an editor, not part of another issue that is sending or sent, ordered by
publication time then slug (so the issue reads in the order the week unfolded,
and ties never depend on insertion order), at most `[issue] max_comparisons`.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from newsletter.content.models import Comparison
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState
from newsletter.weeks import week_bounds

SENT_STATES = (IssueState.sending.value, IssueState.paused.value, IssueState.sent.value)


def select_for_week(session: Session, week: str, zone: ZoneInfo, limit: int) -> list[Comparison]:
    start, end = week_bounds(week, zone)
    already_sent = (
        select(IssueItem.comparison_id)
        .join(Issue, Issue.id == IssueItem.issue_id)
        .where(Issue.state.in_(SENT_STATES), Issue.week != week)
    )
    query = (
        select(Comparison)
        .where(Comparison.published_at >= start, Comparison.published_at < end)
        .where(Comparison.unpublished_at.is_(None))
        .where(Comparison.id.not_in(already_sent))
        .order_by(Comparison.published_at, Comparison.slug)
        .limit(limit)
    )
    return list(session.exec(query).all())
