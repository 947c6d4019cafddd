"""Drafting a follow-up: what the readers were sent, what the comparison says now, and whether the
difference is material enough to write to them about.

"What the readers were sent" is the frozen view (issues/frozen.py) of the latest issue that
carried the comparison and started sending: the verdict most of its readers saw last. "Now" is the
live view of the same comparison (issues/view.py). `material_changes` (issues/material.py) is the
one rule for "material"; a draft without a material change is refused unless forced. The draft
stores both views and the changes (followup_models.py), so it is a record from the start.

Who gets it is the delivery ledger's business (delivery/followup_outbox.py): issues/ does not
read the outbox.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from sqlalchemy import select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.content import publishing
from newsletter.content.models import Comparison
from newsletter.errors import UserError
from newsletter.issues.followup_models import Followup, FollowupState
from newsletter.issues.frozen import issue_view
from newsletter.issues.material import ToolChange, material_changes
from newsletter.issues.models import Issue, IssueItem, IssueRecord
from newsletter.issues.note import note_problem
from newsletter.issues.view import ComparisonView, build_issue_view
from newsletter.text import reject_control_chars

SUBJECT_MAX = 200
NOTE_MAX = 5000


class FollowupError(UserError):
    """A follow-up that cannot be drafted, found or moved; `field` names the input at fault."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class NothingChanged(FollowupError):
    """No material change since the readers were sent the comparison (drafting needs force)."""


@dataclass(frozen=True)
class Baseline:
    """The comparison as readers got it (`then`, from `issue`'s record) and as it is `now`."""

    comparison: Comparison
    issue: Issue
    then: ComparisonView
    now: ComparisonView
    changes: list[ToolChange]


def find_comparison(session: Session, slug: str) -> Comparison:
    comparison = publishing.find(session, slug)
    if comparison is None:
        raise FollowupError(f"comparison {slug!r} does not exist (check the slug in /admin/comparisons)", "comparison")
    return comparison


def _pick(view_comparisons: list[ComparisonView], slug: str) -> ComparisonView | None:
    return next((item for item in view_comparisons if item.slug == slug), None)


def baseline(session: Session, settings: Settings, slug: str) -> Baseline:
    """Then and now of the comparison `slug`, and the material changes between them."""
    comparison = find_comparison(session, slug)
    issue = session.execute(
        select(Issue).join(IssueItem, IssueItem.issue_id == Issue.id)
        .join(IssueRecord, IssueRecord.issue_id == Issue.id)
        .where(IssueItem.comparison_id == comparison.id)
        .order_by(Issue.started_at.desc(), Issue.id.desc()).limit(1)
    ).scalars().first()
    if issue is None:
        raise FollowupError(f"comparison {slug!r} has not been in an issue that was sent: no reader has a "
                            "verdict to follow up on", "comparison")
    then = _pick(issue_view(session, settings, issue).comparisons, slug)
    now = _pick(build_issue_view(session, settings, issue).comparisons, slug)
    if then is None or now is None:  # the record predates the item (edited after the freeze)
        raise FollowupError(f"issue {issue.id} has no record of comparison {slug!r}", "comparison")
    return Baseline(comparison, issue, then, now, material_changes(then, now, settings.content.material_ship_points))


def default_subject(title: str, changed: bool) -> str:
    return (f"Verdict update: {title}" if changed else f"An update on {title}")[:SUBJECT_MAX]


def check_text(subject: str, note: str) -> None:
    """A subject for a header (one line, not empty, not too long) and a note that renders safely."""
    if not subject.strip():
        raise FollowupError("subject: must not be empty", "subject")
    if len(subject) > SUBJECT_MAX:
        raise FollowupError(f"subject: at most {SUBJECT_MAX} characters (got {len(subject)})", "subject")
    try:
        reject_control_chars(subject, "subject")
    except ValueError as exc:
        raise FollowupError(str(exc), "subject") from None
    if len(note) > NOTE_MAX:
        raise FollowupError(f"note: at most {NOTE_MAX} characters (got {len(note)})", "note")
    problem = note_problem(note)
    if problem:
        raise FollowupError(f"note: {problem}", "note")


def draft(session: Session, settings: Settings, slug: str, subject: str | None = None, note: str = "",
          force: bool = False, created_by: str = "") -> Followup:
    """A new draft follow-up for `slug`, in the caller's transaction. Refuses (NothingChanged) when
    nothing changed materially since the readers were sent it, or when a follow-up already sent
    (or sending) told them these same changes, unless `force`."""
    found = baseline(session, settings, slug)
    if not found.changes and not force:
        raise NothingChanged(
            f"nothing changed materially in {slug!r} since issue {found.issue.week} "
            f"(no verdict flip, no Panel ship % move of {settings.content.material_ship_points} points or more, "
            "no entry price change): no follow-up drafted (force it with --force)", "comparison")
    told = already_told(session, found)
    if told is not None and not force:
        raise NothingChanged(
            f"follow-up {told} already told the readers of {slug!r} these changes: no follow-up drafted "
            "(force it with --force)", "comparison")
    subject = default_subject(found.now.title, bool(found.changes)) if subject is None else subject.strip()
    check_text(subject, note)
    view = {"slug": slug, "title": found.now.title, "url": found.now.url, "week": found.issue.week,
            "then": asdict(found.then), "now": asdict(found.now), "changes": [asdict(c) for c in found.changes]}
    followup = Followup(comparison_id=found.comparison.id, issue_id=found.issue.id, subject=subject,
                        preheader=preheader(found), note=note, view=view, forced=not found.changes,
                        created_by=created_by[:300])
    session.add(followup)
    session.flush()
    return followup


def already_told(session: Session, found: Baseline) -> int | None:
    """The id of a follow-up sent or sending about the same comparison and issue with exactly the
    changes found now, so the same news does not reach the same readers twice by a second draft."""
    changes = [asdict(change) for change in found.changes]
    earlier = session.execute(
        select(Followup.id, Followup.view)
        .where(Followup.comparison_id == found.comparison.id, Followup.issue_id == found.issue.id,
               Followup.state.in_((FollowupState.sending.value, FollowupState.sent.value)))
        .order_by(Followup.id.desc())
    ).all()
    return next((followup_id for followup_id, view in earlier
                 if _same(view.get("changes", []), changes)), None)


def _same(stored: list[dict], found: list[dict]) -> bool:
    """Stored JSON turns tuples into lists: compare both as JSON does."""
    return json.dumps(stored, sort_keys=True) == json.dumps(found, sort_keys=True)


def preheader(found: Baseline) -> str:
    """The inbox's preview line: the first change, in words."""
    if not found.changes:
        return f"A note on {found.now.title}."[:SUBJECT_MAX]
    first = found.changes[0]
    return f"{first.tool}: {first.reasons[0]}."[:SUBJECT_MAX]


def get_followup(session: Session, followup_id: int) -> Followup:
    followup = session.get(Followup, followup_id)
    if followup is None:
        raise FollowupError(f"follow-up {followup_id} does not exist (see `newsletter followup list`)", "id")
    return followup


def editable(followup: Followup) -> bool:
    return followup.state == FollowupState.draft.value
