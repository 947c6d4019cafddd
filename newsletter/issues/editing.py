"""The editor's changes to an issue, each one guarded and atomic.

Content (subject, preheader, intro, comparisons and their order) can change
while an issue is a draft or scheduled; once sending has started it cannot.
Scheduling needs a non-empty issue and a time in the future.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from newsletter.content.models import Comparison
from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState, transition
from newsletter.text import has_control_chars

EDITABLE = (IssueState.draft.value, IssueState.scheduled.value)


def _issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise UserError(f"issue {issue_id} does not exist (see `newsletter issue list`)")
    return issue


def _editable(session: Session, issue_id: int) -> Issue:
    issue = _issue(session, issue_id)
    if issue.state not in EDITABLE:
        raise UserError(f"issue {issue_id} is {issue.state}: its content can no longer change")
    return issue


def _comparison(session: Session, ref: str) -> Comparison:
    query = select(Comparison).where(Comparison.slug == ref)
    if ref.isdigit():
        query = select(Comparison).where((Comparison.slug == ref) | (Comparison.id == int(ref)))
    comparison = session.exec(query).first()
    if comparison is None:
        raise UserError(f"comparison {ref!r} does not exist (use its slug or id)")
    return comparison


def _items(session: Session, issue_id: int) -> list[IssueItem]:
    return list(session.exec(select(IssueItem).where(IssueItem.issue_id == issue_id)
                             .order_by(IssueItem.position)).all())


def _renumber(session: Session, items: list[IssueItem]) -> None:
    """Write positions 0..n-1 in two steps so the unique (issue, position) never collides."""
    for offset, item in enumerate(items):
        item.position = 10_000 + offset
        session.add(item)
    session.flush()
    for position, item in enumerate(items):
        item.position = position
        session.add(item)
    session.flush()


def edit(engine: Engine, issue_id: int, subject: str | None = None, preheader: str | None = None,
         intro: str | None = None) -> Issue:
    with session_scope(engine) as session:
        issue = _editable(session, issue_id)
        for name, value, limit in (("subject", subject, 200), ("preheader", preheader, 200)):
            if value is None:
                continue
            value = value.strip()
            if has_control_chars(value):
                raise UserError(f"--{name}: control characters (like line breaks) are not allowed")
            if not value and name == "subject":
                raise UserError("--subject: must not be empty")
            if len(value) > limit:
                raise UserError(f"--{name}: at most {limit} characters")
            setattr(issue, name, value)
        if intro is not None:
            if has_control_chars(intro.replace("\n", " ")):
                raise UserError("--intro-file: control characters are not allowed")
            if len(intro) > 5000:
                raise UserError("--intro-file: at most 5000 characters")
            issue.intro = intro.strip()
        session.add(issue)
        return issue


def add(engine: Engine, issue_id: int, ref: str) -> None:
    with session_scope(engine) as session:
        _editable(session, issue_id)
        comparison = _comparison(session, ref)
        if not comparison.is_published:
            raise UserError(f"{comparison.slug} is unpublished: republish it before adding it to an issue")
        items = _items(session, issue_id)
        if any(item.comparison_id == comparison.id for item in items):
            raise UserError(f"{comparison.slug} is already in issue {issue_id}")
        session.add(IssueItem(issue_id=issue_id, comparison_id=comparison.id, position=len(items)))


def remove(engine: Engine, issue_id: int, ref: str) -> None:
    with session_scope(engine) as session:
        _editable(session, issue_id)
        comparison = _comparison(session, ref)
        items = _items(session, issue_id)
        keep = [item for item in items if item.comparison_id != comparison.id]
        if len(keep) == len(items):
            raise UserError(f"{comparison.slug} is not in issue {issue_id}")
        session.delete(next(item for item in items if item.comparison_id == comparison.id))
        session.flush()
        _renumber(session, keep)


def move(engine: Engine, issue_id: int, ref: str, position: int) -> None:
    """Move to a 1-based position (as `issue show` numbers them)."""
    with session_scope(engine) as session:
        _editable(session, issue_id)
        comparison = _comparison(session, ref)
        items = _items(session, issue_id)
        current = next((item for item in items if item.comparison_id == comparison.id), None)
        if current is None:
            raise UserError(f"{comparison.slug} is not in issue {issue_id}")
        if not 1 <= position <= len(items):
            raise UserError(f"POSITION: choose 1 to {len(items)}")
        items.remove(current)
        items.insert(position - 1, current)
        _renumber(session, items)


def parse_local(value: str, zone_name: str) -> datetime:
    """"YYYY-MM-DD HH:MM" in a zone → aware UTC. A time skipped by a DST change is refused;
    a repeated one (autumn) means its first occurrence."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"--tz: unknown time zone {zone_name!r}")
    try:
        naive = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise UserError(f"--at: {value!r} is not \"YYYY-MM-DD HH:MM\"")
    local = naive.replace(tzinfo=zone, fold=0)
    round_trip = local.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != naive:
        raise UserError(f"--at: {value} does not exist in {zone_name} (the clocks skip it for daylight saving)")
    return local.astimezone(UTC)


def schedule(engine: Engine, issue_id: int, when: datetime, now: datetime | None = None) -> Issue:
    now = now or utcnow()
    if when <= now:
        raise UserError("--at: that time is in the past")
    with session_scope(engine) as session:
        issue = _issue(session, issue_id)
        count = session.exec(select(func.count()).where(IssueItem.issue_id == issue_id)).one()
        if count == 0:
            raise UserError(f"issue {issue_id} has no comparisons: add some before scheduling")
        moved = transition(session, issue_id, IssueState.scheduled, scheduled_at=when)
        if not moved:
            raise UserError(f"issue {issue_id} is {issue.state}: only a draft or scheduled issue can be scheduled")
        session.refresh(issue)
        return issue


def unschedule(engine: Engine, issue_id: int) -> Issue:
    with session_scope(engine) as session:
        issue = _issue(session, issue_id)
        moved = transition(session, issue_id, IssueState.draft, scheduled_at=None)
        if not moved:
            raise UserError(f"issue {issue_id} is {issue.state}, not scheduled")
        session.refresh(issue)
        return issue


def missed(issue: Issue, now: datetime, grace: timedelta) -> bool:
    """Scheduled, but its time passed longer ago than the grace period: it waits for an editor."""
    return (issue.state == IssueState.scheduled.value and issue.scheduled_at is not None
            and issue.scheduled_at < now - grace)


def describe(engine: Engine, settings, issue_id: int) -> dict:
    """What `issue show` prints: times in the site's zone."""
    with session_scope(engine) as session:
        issue = _issue(session, issue_id)
        rows = session.exec(
            select(Comparison.slug, Comparison.category, Comparison.published_at)
            .join(IssueItem, IssueItem.comparison_id == Comparison.id)
            .where(IssueItem.issue_id == issue_id).order_by(IssueItem.position)
        ).all()
    zone = settings.site.zone
    return {
        "id": issue.id, "week": issue.week, "state": issue.state, "subject": issue.subject,
        "preheader": issue.preheader, "intro": issue.intro,
        "scheduled": issue.scheduled_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if issue.scheduled_at else "",
        "comparisons": [(slug, category, published.astimezone(zone).strftime("%Y-%m-%d %H:%M"))
                        for slug, category, published in rows],
    }
