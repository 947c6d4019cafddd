"""Retries kept beside the claims' walk: `delivery_retry`, one row per delivery that went to `retry`.

Why: a claim walks an issue's ids from its cursor's floor (claim_batch.ClaimCursor) and checks
each row's state on the row, because no index of `delivery` may name the state (migration 0032:
the claim and the result then update the row in place, HOT). When the floor was "the lowest id
not final", one retry due in an hour, far behind the front, held it there: every rescan (each
RESCAN_SECONDS, by every worker) walked every row sent since. Now a delivery that goes to retry
gets a row here, in the same transaction (outbox.record), with its due time; the floor is the
lowest id not final *and not here*, and the claims take what is here by (issue, due_at) when it
comes due: they read the due entries, not the rows behind them.

An entry lives until its delivery is final (sent, failed, skipped): a retry claimed again, then
lost with its worker, is `sending` under an expired lease below the floor, and is found here.
Entries of final rows are harmless (every claim checks the state on the row, FOR UPDATE SKIP
LOCKED, as before: exactly once) and are swept at the rescans and when the issue is sent. The
table only grows by retries, and `delivery` gets no index and no write on the normal path.
`due_at` is never later than the moment the row can next be due (its next attempt; a claim
again only after that), so "due_at > now" safely leaves an entry unread.

A pending row written around these functions (a test's UPDATE to `retry`) has no entry: it
keeps the floor down, as every retry did before, and is found by the walk.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlmodel import Session

from newsletter.db import insert_for
from newsletter.delivery.models import PENDING, Delivery, DeliveryRetry, DeliveryState

FINAL = (DeliveryState.sent.value, DeliveryState.failed.value, DeliveryState.skipped.value)
_side = DeliveryRetry.__table__.c
_d = Delivery.__table__.c


def note(session: Session, ids: list[int]) -> None:
    """After `ids` were recorded as retries (outbox.record, same transaction): each row now in
    `retry` gets its entry, or its entry's new due time. Only batches with a retry run this."""
    if not ids:
        return
    rows = select(_d.id, _d.issue_id, _d.next_attempt_at).where(
        _d.id.in_(ids), _d.state == DeliveryState.retry.value, _d.next_attempt_at.is_not(None))
    statement = insert_for(session, DeliveryRetry.__table__).from_select(["delivery_id", "issue_id", "due_at"], rows)
    session.execute(statement.on_conflict_do_update(index_elements=["delivery_id"],
                                                    set_={"due_at": statement.excluded.due_at}))


def due_ids(issue_id: int, now: datetime):
    """The ids of the issue's entries that may be due at `now` (an index range of the entries)."""
    return select(_side.delivery_id).where(_side.issue_id == issue_id, _side.due_at <= now)


def kept_ids(issue_id: int):
    """Every id of the issue kept here: pending ones may lie below the walk's floor."""
    return select(_side.delivery_id).where(_side.issue_id == issue_id)


def not_kept():
    """On a `delivery` row: it has no entry (the walk's floor is the lowest such pending id)."""
    return ~exists().where(_side.delivery_id == Delivery.id)


def sweep(session: Session, issue_id: int, now: datetime) -> int:
    """Drop the issue's entries whose delivery is final (a final row never becomes pending again),
    among those due: the rest cannot have been claimed since they were written."""
    final = exists().where(_d.id == _side.delivery_id, _d.state.in_(FINAL))
    statement = delete(DeliveryRetry.__table__).where(_side.issue_id == issue_id, _side.due_at <= now, final)
    return session.execute(statement).rowcount or 0


def forget(session: Session, issue_id: int) -> None:
    """The issue is sent: none of its rows is pending, its entries go."""
    session.execute(delete(DeliveryRetry.__table__).where(_side.issue_id == issue_id))


def pending_below(issue_id: int, floor: int | None):
    """The conditions on `delivery` for the issue's pending rows kept here below `floor`
    (those the walk from `floor` does not see; from `floor` on the walk counts them)."""
    conditions = [Delivery.id.in_(kept_ids(issue_id)), Delivery.state.in_(PENDING)]
    if floor is not None:
        conditions.append(Delivery.id < floor)
    return conditions


def count_pending_below(session: Session, issue_id: int, floor: int | None) -> dict[str, int]:
    """{state: count} of the pending rows kept here below `floor` (a few: the retries)."""
    statement = select(Delivery.state, func.count()).where(*pending_below(issue_id, floor)).group_by(Delivery.state)
    return dict(session.execute(statement).all())
