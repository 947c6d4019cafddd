"""The figures the console's dashboard shows: the next issue, readers by status and per week,
the last issue's figures and what needs attention. Each is read by newsletter/reports in a
few grouped queries; this module only picks which issue is "next" and "last"."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.issues.models import Issue, IssueItem
from newsletter.reports.attention import Attention, needs_attention
from newsletter.reports.audience import WeekGrowth, growth, readers_by_status
from newsletter.reports.listing import IssueRow
from newsletter.reports.stats import IssueStats, issue_stats


@dataclass
class Dashboard:
    next_issue: IssueRow | None
    next_time: str  # the next issue's send time in the site's time zone, "" when not scheduled
    last_issue: IssueStats | None  # the issue that started sending last, with its figures
    readers: dict[str, int] = field(default_factory=dict)  # status -> count, every status listed
    weeks: list[WeekGrowth] = field(default_factory=list)  # joined and left per week, oldest first
    attention: list[Attention] = field(default_factory=list)


def upcoming_issues(engine: Engine, now: datetime, grace: timedelta) -> list[IssueRow]:
    """Drafts and scheduled issues, newest week first, like `issue list` shows them, without its
    delivery counts over every issue ever sent (those have none yet)."""
    from newsletter.issues.editing import missed

    with session_scope(engine) as session:
        issues = session.execute(select(Issue).where(Issue.state.in_(("draft", "scheduled")))
                                 .order_by(Issue.week.desc(), Issue.id.desc())).scalars().all()
        items = dict(session.execute(select(IssueItem.issue_id, func.count())
                                     .where(IssueItem.issue_id.in_([i.id for i in issues]))
                                     .group_by(IssueItem.issue_id)).all())
    return [IssueRow(i.id, i.week, i.subject, f"{i.state} (missed)" if missed(i, now, grace) else i.state,
                     items.get(i.id, 0), 0, 0, 0, i.scheduled_at) for i in issues]


def dashboard(settings: Settings, engine: Engine) -> Dashboard:
    now = utcnow()
    upcoming = upcoming_issues(engine, now, timedelta(minutes=settings.schedule.grace_minutes))
    scheduled = sorted((row for row in upcoming if row.scheduled_at), key=lambda row: row.scheduled_at)
    next_issue = scheduled[0] if scheduled else (upcoming[0] if upcoming else None)
    zone = ZoneInfo(settings.schedule.timezone or settings.site.timezone)
    next_time = ""
    if next_issue and next_issue.scheduled_at:
        next_time = next_issue.scheduled_at.astimezone(zone).strftime("%A %d %B %Y, %H:%M %Z")
    last = issue_stats(engine, limit=1)
    attention = needs_attention(engine, settings, (next_issue.id, next_issue.week) if next_issue else None, now)
    return Dashboard(next_issue, next_time, last[-1] if last else None, readers_by_status(engine),
                     growth(engine, settings.site.zone, now), attention)
