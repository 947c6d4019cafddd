"""Follow-ups as the CLI and the console do them: draft, preview, send, cancel, list and status,
each change in one transaction with its audit entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select

from newsletter.config import Settings
from newsletter.content.models import Comparison
from newsletter.db import session_scope, utcnow
from newsletter.delivery import followup_outbox
from newsletter.delivery.models import PENDING
from newsletter.editors import audit
from newsletter.issues import followups
from newsletter.issues.followup_mail import render_preview
from newsletter.issues.followup_models import Followup, FollowupState
from newsletter.issues.followups import FollowupError


@dataclass
class FollowupInfo:
    """What the list, the status and the console show of one follow-up."""

    id: int
    slug: str
    title: str
    subject: str
    state: str
    week: str
    created_at: datetime
    created_by: str
    started_at: datetime | None
    finished_at: datetime | None
    changes: list[dict]
    forced: bool
    note: str
    then_line: str
    now_line: str
    counts: dict[str, int] = field(default_factory=dict)
    recipients: int = 0  # for a draft: how many a send now would reach; else the rows enqueued

    @property
    def pending(self) -> int:
        return sum(self.counts.get(state, 0) for state in PENDING)

    @property
    def draft(self) -> bool:
        return self.state == FollowupState.draft.value


def _info(session, followup: Followup, now: datetime) -> FollowupInfo:
    counts = followup_outbox.counts(session, followup.id)
    recipients = (followup_outbox.count_recipients(session, followup.comparison_id, now)
                  if followup.state == FollowupState.draft.value else sum(counts.values()))
    view = followup.view
    return FollowupInfo(followup.id, view["slug"], view["title"], followup.subject, followup.state, view["week"],
                        followup.created_at, followup.created_by, followup.started_at, followup.finished_at,
                        view["changes"], followup.forced, followup.note, view["then"]["verdict_line"],
                        view["now"]["verdict_line"], counts, recipients)


@dataclass
class Proposal:
    """What a follow-up about a comparison would say now (the console's create page; GET, no row)."""

    slug: str
    title: str
    week: str
    changes: list
    then_line: str
    now_line: str
    subject: str
    recipients: int


def propose(engine: Engine, settings: Settings, slug: str) -> Proposal:
    with session_scope(engine) as session:
        found = followups.baseline(session, settings, slug)
        count = followup_outbox.count_recipients(session, found.comparison.id, utcnow())
    return Proposal(slug, found.now.title, found.issue.week, found.changes, found.then.verdict_line,
                    found.now.verdict_line, followups.default_subject(found.now.title, bool(found.changes)), count)


def create(engine: Engine, settings: Settings, actor: audit.Actor, slug: str, subject: str | None = None,
           note: str = "", force: bool = False) -> FollowupInfo:
    """Draft a follow-up (refused without a material change unless `force`)."""
    with session_scope(engine) as session:
        followup = followups.draft(session, settings, slug, subject, note, force, actor.label)
        audit.record(session, actor, "followup.create", f"followup:{followup.id}", None,
                     {"comparison": slug, "subject": followup.subject, "forced": followup.forced,
                      "changes": followup.view["changes"]})
        return _info(session, followup, utcnow())


def detail(engine: Engine, followup_id: int) -> FollowupInfo:
    with session_scope(engine) as session:
        return _info(session, followups.get_followup(session, followup_id), utcnow())


def list_followups(engine: Engine, limit: int = 200) -> list[FollowupInfo]:
    """Newest first."""
    now = utcnow()
    with session_scope(engine) as session:
        rows = session.execute(select(Followup).order_by(Followup.id.desc()).limit(limit)).scalars().all()
        return [_info(session, row, now) for row in rows]


def preview(engine: Engine, settings: Settings, followup_id: int) -> tuple[str, str, bytes]:
    """HTML, text and the whole message a sample reader gets."""
    with session_scope(engine) as session:
        followup = followups.get_followup(session, followup_id)
        return render_preview(settings, followup)


def send(engine: Engine, actor: audit.Actor, followup_id: int) -> int:
    """Start the send: one queued row per reader the ledger names who is still active; workers
    deliver them. Returns how many were enqueued; refuses a follow-up that is not a draft."""
    with session_scope(engine) as session:
        state = followups.get_followup(session, followup_id).state
        moved, enqueued = followup_outbox.start_in(session, followup_id, utcnow())
        if not moved:
            raise FollowupError(f"follow-up {followup_id} is {state}: only a draft can be sent, and nobody "
                                "gets a follow-up twice", "state")
        audit.record(session, actor, "followup.send", f"followup:{followup_id}", {"state": state},
                     {"state": FollowupState.sending.value, "recipients": enqueued})
    return enqueued


def cancel(engine: Engine, actor: audit.Actor, followup_id: int) -> int:
    """Nobody else gets it: its queued and retry rows become skipped; returns how many."""
    with session_scope(engine) as session:
        state = followups.get_followup(session, followup_id).state
        moved, skipped = followup_outbox.cancel_in(session, followup_id, utcnow())
        if not moved:
            raise FollowupError(f"follow-up {followup_id} is {state}: it cannot be cancelled", "state")
        audit.record(session, actor, "followup.cancel", f"followup:{followup_id}", {"state": state},
                     {"state": FollowupState.cancelled.value, "skipped": skipped})
    return skipped


def sent_comparisons(engine: Engine) -> list[tuple[str, str]]:
    """(slug, title) of the comparisons some sent issue carried: what a follow-up can be about."""
    from newsletter.issues.models import IssueItem, IssueRecord

    with session_scope(engine) as session:
        return [tuple(row) for row in session.execute(
            select(Comparison.slug, Comparison.title).join(IssueItem, IssueItem.comparison_id == Comparison.id)
            .join(IssueRecord, IssueRecord.issue_id == IssueItem.issue_id).distinct().order_by(Comparison.title)
        ).all()]
