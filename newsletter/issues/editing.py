"""The editor's changes to an issue, each one guarded and atomic.

Content (subject, preheader, intro, comparisons and their order) can change
while an issue is a draft or scheduled; once sending has started it cannot.
Scheduling needs a non-empty issue and a time in the future.

Each change has a session-level form (`*_in`), so a caller that writes the audit log (the
console and the API, through newsletter.workflow) does it in the same transaction, and an
engine-level form that the CLI calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine, func
from sqlmodel import Session, select

from newsletter.content.models import Comparison
from newsletter.db import session_scope, utcnow
from newsletter.issues.errors import InvalidTransition, IssueError, IssueNotFound, NotEditable
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.note import note_problem
from newsletter.issues.states import IssueState, transition
from newsletter.text import has_control_chars

EDITABLE = (IssueState.draft.value, IssueState.scheduled.value)
MAX_INTRO = 5000


def get_issue(session: Session, issue_id: int) -> Issue:
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise IssueNotFound(f"issue {issue_id} does not exist (see `newsletter issue list`)")
    return issue


def editable_issue(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id)
    if issue.state not in EDITABLE:
        raise NotEditable(f"issue {issue_id} is {issue.state}: its content can no longer change")
    return issue


def _comparison(session: Session, ref: str) -> Comparison:
    query = select(Comparison).where(Comparison.slug == ref)
    if ref.isdigit():
        query = select(Comparison).where((Comparison.slug == ref) | (Comparison.id == int(ref)))
    comparison = session.exec(query).first()
    if comparison is None:
        raise IssueError(f"comparison {ref!r} does not exist (use its slug or id)", "comparisons")
    return comparison


def items_of(session: Session, issue_id: int) -> list[IssueItem]:
    return list(session.exec(select(IssueItem).where(IssueItem.issue_id == issue_id)
                             .order_by(IssueItem.position)).all())


def slugs_of(session: Session, issue_id: int) -> list[str]:
    """The issue's comparisons in order, by slug (what the API and the audit log name)."""
    return list(session.exec(select(Comparison.slug).join(IssueItem, IssueItem.comparison_id == Comparison.id)
                             .where(IssueItem.issue_id == issue_id).order_by(IssueItem.position)).all())


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


def _clean_line(name: str, value: str) -> str:
    value = value.strip()
    if has_control_chars(value):
        raise IssueError(f"{name}: control characters (like line breaks) are not allowed", name)
    if not value and name == "subject":
        raise IssueError("subject: must not be empty", name)
    if len(value) > 200:
        raise IssueError(f"{name}: at most 200 characters", name)
    return value


def _clean_intro(intro: str) -> str:
    intro = intro.replace("\r\n", "\n")
    if has_control_chars(intro.replace("\n", " ")):
        raise IssueError("intro: control characters are not allowed", "intro")
    if len(intro) > MAX_INTRO:
        raise IssueError(f"intro: at most {MAX_INTRO} characters", "intro")
    problem = note_problem(intro)
    if problem:
        raise IssueError(f"intro: {problem}", "intro")
    return intro.strip()


def edit_in(session: Session, issue_id: int, subject: str | None = None, preheader: str | None = None,
            intro: str | None = None, follow_reader: bool | None = None) -> Issue:
    """Every value is checked before any is set: a refused edit changes nothing. `follow_reader`:
    the subject and preheader follow each reader's first comparison (issues/variants.py)."""
    issue = editable_issue(session, issue_id)
    values = {name: _clean_line(name, value) for name, value in (("subject", subject), ("preheader", preheader))
              if value is not None}
    if intro is not None:
        values["intro"] = _clean_intro(intro)
    if follow_reader is not None:
        values["subject_follows_reader"] = bool(follow_reader)
    for name, value in values.items():
        setattr(issue, name, value)
    session.add(issue)
    session.flush()
    return issue


def edit(engine: Engine, issue_id: int, subject: str | None = None, preheader: str | None = None,
         intro: str | None = None, follow_reader: bool | None = None) -> Issue:
    with session_scope(engine) as session:
        return edit_in(session, issue_id, subject, preheader, intro, follow_reader)


def _published(comparison):
    """An unpublished comparison never goes into an issue (selection skips it too)."""
    if not comparison.is_published:
        raise IssueError(f"{comparison.slug} is unpublished: republish it before adding it to an issue",
                         "comparisons")
    return comparison


def add_in(session: Session, issue_id: int, ref: str) -> None:
    editable_issue(session, issue_id)
    comparison = _published(_comparison(session, ref))
    items = items_of(session, issue_id)
    if any(item.comparison_id == comparison.id for item in items):
        raise IssueError(f"{comparison.slug} is already in issue {issue_id}", "comparisons")
    session.add(IssueItem(issue_id=issue_id, comparison_id=comparison.id, position=len(items)))
    session.flush()


def remove_in(session: Session, issue_id: int, ref: str) -> None:
    editable_issue(session, issue_id)
    comparison = _comparison(session, ref)
    items = items_of(session, issue_id)
    keep = [item for item in items if item.comparison_id != comparison.id]
    if len(keep) == len(items):
        raise IssueError(f"{comparison.slug} is not in issue {issue_id}", "comparisons")
    session.delete(next(item for item in items if item.comparison_id == comparison.id))
    session.flush()
    _renumber(session, keep)


def move_in(session: Session, issue_id: int, ref: str, position: int) -> None:
    """Move to a 1-based position (as `issue show` numbers them)."""
    editable_issue(session, issue_id)
    comparison = _comparison(session, ref)
    items = items_of(session, issue_id)
    current = next((item for item in items if item.comparison_id == comparison.id), None)
    if current is None:
        raise IssueError(f"{comparison.slug} is not in issue {issue_id}", "comparisons")
    if not 1 <= position <= len(items):
        raise IssueError(f"POSITION: choose 1 to {len(items)}", "position")
    items.remove(current)
    items.insert(position - 1, current)
    _renumber(session, items)


def set_comparisons_in(session: Session, issue_id: int, refs: list[str]) -> None:
    """The issue carries exactly `refs`, in that order (added, removed and reordered at once)."""
    editable_issue(session, issue_id)
    if len(set(refs)) != len(refs):
        raise IssueError("comparisons: a comparison may appear only once", "comparisons")
    wanted = [_comparison(session, ref) for ref in refs]
    carried = {item.comparison_id for item in items_of(session, issue_id)}
    for comparison in wanted:
        if comparison.id not in carried:  # one already in the draft may stay; a new one must be published
            _published(comparison)
    for item in items_of(session, issue_id):
        session.delete(item)
    session.flush()
    for position, comparison in enumerate(wanted):
        session.add(IssueItem(issue_id=issue_id, comparison_id=comparison.id, position=position))
    session.flush()


def add(engine: Engine, issue_id: int, ref: str) -> None:
    with session_scope(engine) as session:
        add_in(session, issue_id, ref)


def remove(engine: Engine, issue_id: int, ref: str) -> None:
    with session_scope(engine) as session:
        remove_in(session, issue_id, ref)


def move(engine: Engine, issue_id: int, ref: str, position: int) -> None:
    with session_scope(engine) as session:
        move_in(session, issue_id, ref, position)


def parse_local(value: str, zone_name: str) -> datetime:
    """"YYYY-MM-DD HH:MM" in a zone → aware UTC. A time skipped by a DST change is refused;
    a repeated one (autumn) means its first occurrence."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise IssueError(f"--tz: unknown time zone {zone_name!r}", "tz")
    try:
        naive = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M")
    except ValueError:
        raise IssueError(f"--at: {value!r} is not \"YYYY-MM-DD HH:MM\"", "at")
    local = naive.replace(tzinfo=zone, fold=0)
    round_trip = local.astimezone(UTC).astimezone(zone)
    if round_trip.replace(tzinfo=None) != naive:
        raise IssueError(f"--at: {value} does not exist in {zone_name} (the clocks skip it for daylight saving)",
                         "at")
    return local.astimezone(UTC)


def check_future(when: datetime, now: datetime | None = None) -> None:
    if when <= (now or utcnow()):
        raise IssueError("--at: that time is in the past", "at")


def still_to_send(engine: Engine, issue_id: int, verb: str) -> str:
    """The issue's state while it can still be sent or scheduled (`verb`: "sent", "scheduled"), read
    before the pre-send checks run: an issue already sent is told so, not its stale checks' failures
    (outside trial: `issue schedule` on a sent issue listed its week and facts as failing)."""
    with session_scope(engine) as session:
        state = get_issue(session, issue_id).state
    if state not in EDITABLE:
        raise InvalidTransition(f"issue {issue_id} is {state}: only a draft or scheduled issue can be {verb}")
    return state


def schedule_in(session: Session, issue_id: int, when: datetime, now: datetime | None = None,
                ignoring: Sequence[str] = ()) -> Issue:
    """Scheduled for `when`; `ignoring`: the failing checks the editor went ahead despite, which
    the scheduler lets pass at that time (Issue.scheduled_ignoring)."""
    check_future(when, now)
    issue = get_issue(session, issue_id)
    count = session.exec(select(func.count()).where(IssueItem.issue_id == issue_id)).one()
    if count == 0:
        raise IssueError(f"issue {issue_id} has no comparisons: add some before scheduling", "comparisons")
    if not transition(session, issue_id, IssueState.scheduled, scheduled_at=when,
                      scheduled_ignoring=",".join(sorted(set(ignoring)))):
        raise InvalidTransition(f"issue {issue_id} is {issue.state}: only a draft or scheduled issue can be "
                                "scheduled")
    session.refresh(issue)
    return issue


def split_overrides(stored: str) -> list[str]:
    """The check names in Issue.scheduled_ignoring, as schedule_in stores them."""
    return [name for name in stored.split(",") if name]


def overrides_of(issue: Issue) -> list[str]:
    """The failing checks a scheduled issue goes ahead despite; none once it left the schedule."""
    return split_overrides(issue.scheduled_ignoring) if issue.state == IssueState.scheduled.value else []


def schedule(engine: Engine, issue_id: int, when: datetime, now: datetime | None = None) -> Issue:
    with session_scope(engine) as session:
        return schedule_in(session, issue_id, when, now)


def unschedule_in(session: Session, issue_id: int) -> Issue:
    issue = get_issue(session, issue_id)
    if not transition(session, issue_id, IssueState.draft, scheduled_at=None, scheduled_ignoring=""):
        raise InvalidTransition(f"issue {issue_id} is {issue.state}, not scheduled")
    session.refresh(issue)
    return issue


def unschedule(engine: Engine, issue_id: int) -> Issue:
    with session_scope(engine) as session:
        return unschedule_in(session, issue_id)


def missed(issue: Issue, now: datetime, grace: timedelta) -> bool:
    """Scheduled, but its time passed longer ago than the grace period: it waits for an editor."""
    return (issue.state == IssueState.scheduled.value and issue.scheduled_at is not None
            and issue.scheduled_at < now - grace)


def describe(engine: Engine, settings, issue_id: int) -> dict:
    """What `issue show` prints: times in the site's zone."""
    with session_scope(engine) as session:
        issue = get_issue(session, issue_id)
        rows = session.exec(
            select(Comparison.slug, Comparison.category, Comparison.published_at)
            .join(IssueItem, IssueItem.comparison_id == Comparison.id)
            .where(IssueItem.issue_id == issue_id).order_by(IssueItem.position)
        ).all()
    zone = settings.site.zone
    return {
        "id": issue.id, "week": issue.week, "state": issue.state, "subject": issue.subject,
        "preheader": issue.preheader, "intro": issue.intro, "subject_follows_reader": issue.subject_follows_reader,
        "scheduled": issue.scheduled_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if issue.scheduled_at else "",
        "ignoring": ", ".join(overrides_of(issue)),
        "comparisons": [(slug, category, published.astimezone(zone).strftime("%Y-%m-%d %H:%M"))
                        for slug, category, published in rows],
    }
