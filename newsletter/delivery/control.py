"""Pausing, resuming and cancelling a send: conditional UPDATEs, the database decides.

- pause:  sending → paused. Deliveries stay queued; `outbox.claim` only takes rows of issues that
          are `sending` (checked in the claim statement itself), so every worker on every host stops
          at its next batch; and a batch in hand stops starting messages within about a second
          (stopping.Halt): those go back to the queue. Messages already with the server finish.
- resume: paused → sending. Idle workers are woken (delivery/wakeup.py) and pick the queue up.
- cancel: draft/scheduled/sending/paused → cancelled, and in the same transaction one UPDATE turns
          the issue's queued and retry deliveries into `skipped` with a reason. A batch in flight
          stops starting messages within about a second (skipped), and what was with the server
          ends as it ends (sent, or skipped if it would have been retried).

Each function answers the issue as it is afterwards; a transition that does not apply (pausing a
sent issue, resuming one that is not paused) raises UserError naming the current state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session

from newsletter.db import session_scope, utcnow
from newsletter.delivery import stopping
from newsletter.issues.errors import InvalidTransition, IssueNotFound
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState, sources, transition
from newsletter.wake import announce


@dataclass
class ControlResult:
    issue_id: int
    state: str
    skipped: int = 0  # deliveries skipped by a cancel


def move_in(session: Session, issue_id: int, target: IssueState, verb: str,
            only: tuple[IssueState, ...] | None = None, **values) -> ControlResult:
    """The move in the caller's transaction (the console and API audit it there too)."""
    moved = transition(session, issue_id, target, only=only, **values)
    skipped = 0
    if moved and target == IssueState.cancelled:
        skipped = stopping.skip_cancelled(session, issue_id, cancelled=True)
    if moved and target == IssueState.sending:
        announce(session)  # on commit: idle workers pick the queue up now
    issue = session.get(Issue, issue_id)
    if issue is None:
        raise IssueNotFound(f"issue {issue_id} does not exist (see `newsletter issue list`)")
    if not moved:
        raise InvalidTransition(f"issue {issue_id} is {issue.state}: only an issue that is "
                                f"{' or '.join(sources(target, only))} can be {verb}")
    return ControlResult(issue_id, issue.state, skipped)


def _move(engine: Engine, issue_id: int, target: IssueState, verb: str,
          only: tuple[IssueState, ...] | None = None, **values) -> ControlResult:
    with session_scope(engine) as session:
        return move_in(session, issue_id, target, verb, only, **values)


PAUSE = (IssueState.paused, "paused", None)
RESUME = (IssueState.sending, "resumed", (IssueState.paused,))
CANCEL = (IssueState.cancelled, "cancelled", None)


def pause_issue(engine: Engine, issue_id: int) -> ControlResult:
    return _move(engine, issue_id, *PAUSE)


def resume_issue(engine: Engine, issue_id: int) -> ControlResult:
    return _move(engine, issue_id, *RESUME)


def cancel_issue(engine: Engine, issue_id: int, now: datetime | None = None) -> ControlResult:
    return _move(engine, issue_id, *CANCEL, finished_at=now or utcnow())
