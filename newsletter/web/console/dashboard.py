"""The figures the console's dashboard shows, read in a few grouped queries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.reports.listing import IssueRow, list_issues
from newsletter.subscribers.models import Subscriber, SubscriberStatus


@dataclass
class Dashboard:
    next_issue: IssueRow | None
    next_time: str  # the next issue's send time in the site's time zone, "" when not scheduled
    last_issue: IssueRow | None
    readers: dict[str, int] = field(default_factory=dict)  # status -> count, every status listed


def dashboard(settings: Settings, engine: Engine) -> Dashboard:
    rows = list_issues(engine, utcnow(), timedelta(minutes=settings.schedule.grace_minutes))
    upcoming = [row for row in rows if row.state.startswith(("scheduled", "draft"))]
    scheduled = sorted((row for row in upcoming if row.scheduled_at), key=lambda row: row.scheduled_at)
    next_issue = scheduled[0] if scheduled else (upcoming[0] if upcoming else None)
    zone = ZoneInfo(settings.schedule.timezone or settings.site.timezone)
    next_time = ""
    if next_issue and next_issue.scheduled_at:
        next_time = next_issue.scheduled_at.astimezone(zone).strftime("%A %d %B %Y, %H:%M %Z")
    last_issue = next((row for row in rows if row.state in ("sending", "sent", "paused", "cancelled")), None)
    with session_scope(engine) as session:
        counts = dict(session.execute(select(Subscriber.status, func.count()).group_by(Subscriber.status)).all())
    readers = {status.value: counts.get(status.value, 0) for status in SubscriberStatus}
    return Dashboard(next_issue, next_time, last_issue, readers)
