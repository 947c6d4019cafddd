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

from sqlalchemy import ColumnElement, update
from sqlmodel import Session

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


def transition(session: Session, issue_id: int, to: IssueState, *conditions: ColumnElement[bool],
               only: Iterable[IssueState] | None = None, **values: Any) -> bool:
    """Move the issue to `to` (setting `values` too) if its state allows it and every extra
    condition holds, in one UPDATE; True when it moved. The caller reads the issue afterwards to
    say why not."""
    return bool(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.state.in_(sources(to, only)), *conditions)
        .values(state=to.value, **values)
    ).rowcount)
