"""What needs an editor's attention, for the console's dashboard: each item holds exactly while
its condition does, so an empty list means nothing is wrong.

- missed schedule: an issue still `scheduled` whose time passed more than [schedule]
  grace_minutes ago (the scheduler dispatches due issues well within that; past it, the issue
  waits for an editor, as `issue list` marks it "(missed)");
- failed deliveries: any delivery in state failed among the last few issues that started;
- pre-send checks: every check of the next issue that does not pass (fail or warning), or the
  render error that stops it from being checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from newsletter import tallies
from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.issues.checks import FAIL, OK, run_checks
from newsletter.issues.editing import overrides_of
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState

RECENT_ISSUES = 4


@dataclass(frozen=True)
class Attention:
    kind: str  # missed_schedule | failed_deliveries | check_fail | check_warning
    issue_id: int
    week: str
    message: str


def missed_schedules(engine: Engine, settings: Settings, now: datetime) -> list[Attention]:
    late = now - timedelta(minutes=settings.schedule.grace_minutes)
    with session_scope(engine) as session:
        issues = session.execute(select(Issue).where(Issue.state == IssueState.scheduled.value,
                                                     Issue.scheduled_at < late).order_by(Issue.scheduled_at)).scalars()
        return [Attention("missed_schedule", i.id, i.week, f"Issue {i.week} was due at "
                          f"{i.scheduled_at.astimezone(settings.site.zone):%Y-%m-%d %H:%M %Z} and has not started: "
                          "send it now or schedule it again.") for i in issues]


def failed_deliveries(engine: Engine, recent: int = RECENT_ISSUES) -> list[Attention]:
    with session_scope(engine) as session:
        latest = session.execute(select(Issue.id, Issue.week).where(Issue.started_at.is_not(None))
                                 .order_by(Issue.started_at.desc()).limit(recent)).all()
        # The issues' counters (newsletter/tallies.py): no index holds a delivery's state (0032).
        failed = tallies.read(session, [issue_id for issue_id, _week in latest])
        rows = sorted((issue_id, week, failed[issue_id]["failed"]) for issue_id, week in latest
                      if failed.get(issue_id, {}).get("failed"))
    return [Attention("failed_deliveries", issue_id, week, f"Issue {week}: {count} "
                      f"deliver{'y' if count == 1 else 'ies'} failed after every retry.")
            for issue_id, week, count in rows]


def check_warnings(engine: Engine, settings: Settings, issue_id: int, week: str, now: datetime) -> list[Attention]:
    """The issue's checks that do not pass. A failure the editor overrode when scheduling is a
    warning that says so: the issue goes out despite it, and it blocks nothing."""
    try:
        results = run_checks(engine, settings, issue_id, now)
    except UserError as exc:
        return [Attention("check_fail", issue_id, week, f"Issue {week} does not render: {exc}")]
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        overridden = set(overrides_of(issue)) if issue is not None else set()
    items = []
    for r in results:
        if r.level == OK:
            continue
        blocks = r.level == FAIL and r.name not in overridden
        note = " (overridden when it was scheduled: it goes out despite this)" if r.name in overridden else ""
        items.append(Attention("check_fail" if blocks else "check_warning", issue_id, week,
                               f"Issue {week}, check {r.name}: {r.message}{note}"))
    return items


def needs_attention(engine: Engine, settings: Settings, next_issue: tuple[int, str] | None = None,
                    now: datetime | None = None) -> list[Attention]:
    """Every item, most urgent kind first; `next_issue` is (id, week) of the issue to check."""
    now = now or utcnow()
    items = missed_schedules(engine, settings, now) + failed_deliveries(engine)
    if next_issue is not None:
        items += check_warnings(engine, settings, next_issue[0], next_issue[1], now)
    return items
