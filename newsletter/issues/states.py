"""An issue's states, the moves allowed between them, and the one function that makes a move.

Every state change of an issue (schedule, unschedule, start, pause, resume, finish, cancel) is
one conditional UPDATE made by `transition`: the row moves only if it is in a state the table
allows for the target, so two schedulers, two workers or an editor and a worker racing on the
same issue cannot both win, and the database, not a value read earlier, decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlmodel import Session

from newsletter import outgoing
from newsletter.issues.models import Issue


class IssueState(StrEnum):
    draft = "draft"
    scheduled = "scheduled"
    sending = "sending"
    paused = "paused"  # deliveries stay queued; workers claim only from issues that are sending
    sent = "sent"
    cancelled = "cancelled"


_S = IssueState
# from → the states it may move to. Rescheduling is scheduled → scheduled; sent and cancelled are final.
TRANSITIONS: dict[IssueState, frozenset[IssueState]] = {
    _S.draft: frozenset({_S.scheduled, _S.sending, _S.cancelled}),
    _S.scheduled: frozenset({_S.scheduled, _S.draft, _S.sending, _S.cancelled}),
    _S.sending: frozenset({_S.paused, _S.sent, _S.cancelled}),
    _S.paused: frozenset({_S.sending, _S.cancelled}),
    _S.sent: frozenset(),
    _S.cancelled: frozenset(),
}


def sources(to: IssueState, only: Iterable[IssueState] | None = None) -> tuple[str, ...]:
    """The states an issue may move to `to` from, in declaration order; `only` narrows them for a
    caller that means one particular move (resume is paused → sending, not draft → sending). A
    narrowing the table does not allow is a programming error."""
    allowed = [state for state in IssueState if to in TRANSITIONS[state]]
    if only is not None:
        wanted = set(only)
        if not wanted <= set(allowed):
            raise ValueError(f"no transition to {to} from {sorted(wanted - set(allowed))}")
        allowed = [state for state in allowed if state in wanted]
    return tuple(state.value for state in allowed)


# The moves outgoing webhooks announce (newsletter/outgoing.py); resume (paused → sending) is not a start.
ANNOUNCED = {IssueState.scheduled: "issue.scheduled", IssueState.sending: "issue.started",
             IssueState.sent: "issue.finished"}


def _update(session: Session, issue_id: int, to: IssueState, states: tuple[str, ...],
            conditions: tuple[ColumnElement[bool], ...], values: dict[str, Any]) -> bool:
    if not states:
        return False
    return bool(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.state.in_(states), *conditions)
        .values(state=to.value, **values)
    ).rowcount)


def _announce(session: Session, issue_id: int, to: IssueState) -> None:
    """The webhook event of a move, in the move's transaction (read fresh: the UPDATE bypassed the
    session's copy of the issue)."""
    row = session.execute(select(Issue.id, Issue.week, Issue.subject, Issue.state, Issue.scheduled_at,
                                 Issue.started_at, Issue.finished_at).where(Issue.id == issue_id)).one()
    outgoing.emit(session, ANNOUNCED[to], {"issue_id": row.id, "week": row.week, "subject": row.subject,
                                           "state": row.state, "scheduled_at": row.scheduled_at,
                                           "started_at": row.started_at, "finished_at": row.finished_at})


def transition(session: Session, issue_id: int, to: IssueState, *conditions: ColumnElement[bool],
               only: Iterable[IssueState] | None = None, **values: Any) -> bool:
    """Move the issue to `to` (setting `values` too) if its state allows it and every extra
    condition holds, in one UPDATE; True when it moved. The caller reads the issue afterwards to
    say why not. A move to sending from paused (a resume) is its own UPDATE, so that only a real
    start is announced as `issue.started`."""
    allowed = sources(to, only)
    resumes = (IssueState.paused.value,) if to == IssueState.sending and IssueState.paused.value in allowed else ()
    if _update(session, issue_id, to, tuple(s for s in allowed if s not in resumes), conditions, values):
        if to in ANNOUNCED:
            _announce(session, issue_id, to)
        return True
    return _update(session, issue_id, to, resumes, conditions, values)
