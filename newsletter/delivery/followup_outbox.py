"""Set-based statements of the follow-ups' outbox: who gets a follow-up, start, claim, skip,
record, finish, cancel.

Who: the delivery ledger decides. A reader gets a follow-up about a comparison when a delivery
of an issue that carried it is `sent` to them (what delivery/received.py `was_sent` asks for one
reader, here as one INSERT … SELECT for all of them) and they are still active now: not
unsubscribed, bounced or complained, not on the suppression list (forgotten readers are gone
with their rows), not pausing. The unique (follow-up, reader) key makes a second start a no-op.
The same is asked again of every claimed row (`skip_ineligible`): an unsubscribe or a
suppression between the start and the send wins.

Every move is one conditional UPDATE, as in outbox.py, so workers and restarts never move a
row twice; the claim is queue.py's, the one idiom of every outbound queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, literal, or_, select, update
from sqlmodel import Session

from newsletter.db import insert_for
from newsletter.delivery import queue
from newsletter.delivery.followup_models import FollowupDelivery as Row
from newsletter.delivery.models import PENDING, Delivery, DeliveryState
from newsletter.delivery.received import in_variant
from newsletter.issues.followup_models import Followup, FollowupState
from newsletter.issues.models import IssueItem
from newsletter.subscribers.models import Subscriber, SubscriberStatus, Suppression
from newsletter.wake import announce

CANCELLED_REASON = "follow-up cancelled before this delivery was sent"
ABANDONED_REASON = "follow-up cancelled while a worker that stopped held this delivery: it may have gone out"
GONE_REASON = "unsubscribed, suppressed or pausing before sending"


def _sent_the_comparison(comparison_id: int):
    """The ledger: a delivery in state sent of an issue that carried the comparison in the
    reader's variant (a reader with topics may have been sent that issue without it)."""
    return exists().where(Delivery.subscriber_id == Subscriber.id, Delivery.state == DeliveryState.sent.value,
                          Delivery.issue_id == IssueItem.issue_id, IssueItem.comparison_id == comparison_id,
                          in_variant())


def _still_active(now: datetime):
    return (
        (Subscriber.status == SubscriberStatus.active.value)
        & ~exists().where(Suppression.email == Subscriber.email)
        & or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now)
    )


def recipients(comparison_id: int, now: datetime):
    """SELECT of the readers a follow-up about the comparison goes to now (subscriber ids)."""
    return select(Subscriber.id).where(_sent_the_comparison(comparison_id), _still_active(now))


def count_recipients(session: Session, comparison_id: int, now: datetime) -> int:
    """How many readers a send now would reach (what the confirmation states)."""
    return session.execute(select(func.count()).select_from(recipients(comparison_id, now).subquery())).scalar_one()


def start_in(session: Session, followup_id: int, now: datetime) -> tuple[bool, int]:
    """Draft → sending, and its outbox filled, in the caller's transaction: (moved, enqueued).
    A follow-up already sending, sent or cancelled is left alone: nobody gets it twice."""
    moved = session.execute(
        update(Followup).where(Followup.id == followup_id, Followup.state == FollowupState.draft.value)
        .values(state=FollowupState.sending.value, started_at=now).execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        return False, 0
    comparison_id = session.execute(select(Followup.comparison_id).where(Followup.id == followup_id)).scalar_one()
    rows = select(literal(followup_id), Subscriber.id, literal(DeliveryState.queued.value), literal(0),
                  literal(now)).where(_sent_the_comparison(comparison_id), _still_active(now))
    statement = (
        insert_for(session, Row.__table__)
        .from_select(["followup_id", "subscriber_id", "state", "attempts", "created_at"], rows)
        .on_conflict_do_nothing(index_elements=["followup_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)
    )
    enqueued = session.execute(statement).rowcount or 0
    if enqueued:
        announce(session)
    return True, enqueued


def any_sending(session: Session) -> bool:
    """Whether a follow-up is sending at all: one index lookup, so an idle worker's pass costs no
    rate-limit permits and no claim."""
    return session.execute(select(Followup.id).where(Followup.state == FollowupState.sending.value).limit(1)) \
        .first() is not None


def claim(session: Session, now: datetime, limit: int, lease: timedelta, worker: str,
          stale: datetime | None) -> list[int]:
    """Due rows of every sending follow-up (a cancel stops every worker at its next claim)."""
    sending = exists().where(Followup.id == Row.followup_id, Followup.state == FollowupState.sending.value)
    return queue.claim(session, Row, [Row.state.in_(PENDING), sending], now, limit, lease, worker, stale)


def skip_ineligible(session: Session, ids: list[int], now: datetime) -> int:
    """Of the rows just claimed, those whose reader left, was suppressed or pauses since the start
    become `skipped` instead of being sent."""
    if not ids:
        return 0
    gone = exists().where(Subscriber.id == Row.subscriber_id, ~_still_active(now))
    statement = (
        update(Row).where(Row.id.in_(ids), Row.state == DeliveryState.sending.value, gone)
        .values(state=DeliveryState.skipped.value, lease_until=None, last_error=GONE_REASON)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount or 0


def record(session: Session, row_id: int, worker: str, values: dict) -> None:
    """One row's result, only while it is still `sending` under this worker."""
    session.execute(update(Row).where(Row.id == row_id, Row.state == DeliveryState.sending.value,
                                      Row.claimed_by == worker).values(lease_until=None, **values))


def release(session: Session, worker: str, ids: list[int] | None = None) -> int:
    """Rows this worker holds back to the queue; those of a follow-up cancelled meanwhile then
    become `skipped` (as the issue's outbox does: nothing claims a cancelled follow-up again)."""
    released = queue.release(session, Row, worker, ids)
    if released:
        skip_cancelled(session)
    return released


def finish_done(session: Session, now: datetime) -> list[int]:
    """Every sending follow-up with nothing pending becomes `sent`; their ids (one winner each)."""
    pending = exists().where(Row.followup_id == Followup.id, Row.state.in_(PENDING))
    return list(session.execute(
        update(Followup).where(Followup.state == FollowupState.sending.value, ~pending)
        .values(state=FollowupState.sent.value, finished_at=now).returning(Followup.id)
        .execution_options(synchronize_session=False)
    ).scalars())


def cancel_in(session: Session, followup_id: int, now: datetime) -> tuple[bool, int]:
    """A draft or sending follow-up → cancelled, its queued and retry rows skipped: (moved, skipped)."""
    moved = session.execute(
        update(Followup).where(Followup.id == followup_id,
                               Followup.state.in_((FollowupState.draft.value, FollowupState.sending.value)))
        .values(state=FollowupState.cancelled.value, finished_at=now).execution_options(synchronize_session=False)
    ).rowcount
    return bool(moved), skip_cancelled(session)


def skip_cancelled(session: Session) -> int:
    """Queued and retry rows of cancelled follow-ups → skipped (a no-op when there are none)."""
    cancelled = exists().where(Followup.id == Row.followup_id, Followup.state == FollowupState.cancelled.value)
    return session.execute(
        update(Row).where(Row.state.in_((DeliveryState.queued.value, DeliveryState.retry.value)), cancelled)
        .values(state=DeliveryState.skipped.value, next_attempt_at=None, last_error=CANCELLED_REASON)
        .execution_options(synchronize_session=False)
    ).rowcount or 0


def settle_cancelled(session: Session, now: datetime, stale: datetime) -> int:
    """Rows of cancelled follow-ups still `sending` under a worker that is gone (its lease over, or
    no beat since `stale`) → skipped: as stopping.settle_cancelled for issues, and for the same
    reason (a killed worker's batch stayed `sending` for good). Found through the (state, id)
    index: only rows `sending` are read."""
    cancelled = exists().where(Followup.id == Row.followup_id, Followup.state == FollowupState.cancelled.value)
    return session.execute(
        update(Row).where(Row.state == DeliveryState.sending.value, queue.due(Row, now, stale), cancelled)
        .values(state=DeliveryState.skipped.value, lease_until=None, claimed_by=None, last_error=ABANDONED_REASON)
        .execution_options(synchronize_session=False)
    ).rowcount or 0


def counts(session: Session, followup_id: int) -> dict[str, int]:
    rows = session.execute(select(Row.state, func.count()).where(Row.followup_id == followup_id)
                           .group_by(Row.state)).all()
    return {state: count for state, count in rows}


def outstanding(session: Session, now: datetime) -> int:
    """Rows of sending follow-ups a worker could still work on now (worker --until-idle)."""
    return session.execute(
        select(func.count()).select_from(Row).join(Followup, Followup.id == Row.followup_id)
        .where(Followup.state == FollowupState.sending.value, queue.outstanding(Row, now))
    ).scalar_one()
