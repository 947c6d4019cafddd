"""Starting a send: the issue moves draft/scheduled → sending and its outbox is filled in the same
transaction, so a send is either fully enqueued or not at all.

A module of its own, apart from delivering (sender.py): `newsletter issue send` imports only this,
not the message builder, transports and SMTP code the workers need (~30 ms of a one-shot
command's start, and its commit is what the workers wait for: issue 18 point 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.issues.errors import InvalidTransition, IssueNotFound
from newsletter.issues.frozen import freeze
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState, transition
from newsletter.wake import announce


@dataclass
class StartResult:
    issue: Issue
    started: bool  # False: it was already sending or sent
    enqueued: int


def start_in(session: Session, issue_id: int, now: datetime, settings: Settings | None = None) -> StartResult:
    """Move a draft or scheduled issue to sending and enqueue its deliveries, in the caller's
    transaction; an issue already sending or sent is left alone (nobody gets it twice). With
    `settings`, its view is frozen in that transaction too (else the first worker freezes it)."""
    moved = transition(session, issue_id, IssueState.sending, only=(IssueState.draft, IssueState.scheduled),
                       started_at=now)
    enqueued = outbox.enqueue(session, issue_id, now) if moved else 0
    if enqueued:
        announce(session)  # delivered on commit: idle workers start now, not at their next poll
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise IssueNotFound(f"issue {issue_id} does not exist (see `newsletter issue list`)")
    if not moved and issue.state == IssueState.cancelled.value:
        raise InvalidTransition(f"issue {issue_id} was cancelled; it cannot be sent")
    if moved and settings is not None:
        freeze(session, settings, issue)
    return StartResult(issue, bool(moved), enqueued)


def start_send(engine: Engine, issue_id: int, now: datetime | None = None,
               settings: Settings | None = None) -> StartResult:
    with session_scope(engine) as session:
        return start_in(session, issue_id, now or utcnow(), settings)
