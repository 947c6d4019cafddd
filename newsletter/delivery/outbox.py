"""Set-based outbox statements: enqueue, skip, claim, record.

Every state change is one conditional UPDATE, so concurrent workers and
restarts can never move a delivery twice (a row already `sent` never matches
a statement that expects `sending`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from newsletter.content.models import Comparison
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.issues.models import IssueItem
from subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Suppression

PENDING = (DeliveryState.queued.value, DeliveryState.sending.value, DeliveryState.retry.value)


def _insert(session: Session):
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Delivery.__table__)


def eligible_subscribers(issue_id: int, now: datetime):
    """Active, not suppressed, not paused, and wanting at least one of the issue's topics
    (a subscriber with no topics wants them all)."""
    issue_categories = (
        select(Comparison.category)
        .join(IssueItem, IssueItem.comparison_id == Comparison.id)
        .where(IssueItem.issue_id == issue_id)
    )
    has_topics = exists().where(SubscriberTopic.subscriber_id == Subscriber.id)
    wants_one = exists().where(
        SubscriberTopic.subscriber_id == Subscriber.id, SubscriberTopic.category.in_(issue_categories)
    )
    suppressed = exists().where(Suppression.email == Subscriber.email)
    return (
        select(literal(issue_id), Subscriber.id, literal(DeliveryState.queued.value), literal(0), literal(now))
        .where(Subscriber.status == SubscriberStatus.active.value)
        .where(~suppressed)
        .where(or_(Subscriber.paused_until.is_(None), Subscriber.paused_until <= now))
        .where(or_(~has_topics, wants_one))
    )


def enqueue(session: Session, issue_id: int, now: datetime) -> int:
    """One INSERT … SELECT; the unique (issue, subscriber) key makes repeats no-ops."""
    columns = ["issue_id", "subscriber_id", "state", "attempts", "created_at"]
    statement = (
        _insert(session)
        .from_select(columns, eligible_subscribers(issue_id, now))
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)  # psycopg reports -1 for INSERT … SELECT otherwise
    )
    return session.execute(statement).rowcount or 0


def skip_ineligible(session: Session, issue_id: int, now: datetime) -> int:
    """Unsubscribed or suppressed since enqueue: such deliveries become `skipped` before a claim."""
    gone = select(Subscriber.id).where(
        or_(
            Subscriber.status != SubscriberStatus.active.value,
            exists().where(Suppression.email == Subscriber.email),
        )
    )
    statement = (
        update(Delivery)
        .where(Delivery.issue_id == issue_id)
        .where(Delivery.state.in_((DeliveryState.queued.value, DeliveryState.retry.value)))
        .where(Delivery.subscriber_id.in_(gone))
        .values(state=DeliveryState.skipped.value, last_error="unsubscribed or suppressed before sending")
    )
    return session.execute(statement).rowcount or 0


def claim(session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Take up to `limit` deliveries that are due: queued, due retries, or sending with an expired
    lease (its worker died). On PostgreSQL concurrent claimers skip each other's rows."""
    due = (
        select(Delivery.id)
        .where(Delivery.issue_id == issue_id)
        .where(
            or_(
                Delivery.state == DeliveryState.queued.value,
                and_(Delivery.state == DeliveryState.retry.value, Delivery.next_attempt_at <= now),
                and_(Delivery.state == DeliveryState.sending.value, Delivery.lease_until < now),
            )
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = [row[0] for row in session.execute(due).all()]
    if not ids:
        return []
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(ids))
        .values(state=DeliveryState.sending.value, lease_until=now + lease, attempts=Delivery.attempts + 1)
    )
    return ids


def mark_sent(session: Session, delivery_id: int, now: datetime, message_id: str, provider_id: str | None) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.sending.value)
        .values(state=DeliveryState.sent.value, sent_at=now, message_id=message_id,
                provider_message_id=provider_id, lease_until=None, last_error=None)
    )


def mark_retry(session: Session, delivery_id: int, next_attempt: datetime, error: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.sending.value)
        .values(state=DeliveryState.retry.value, next_attempt_at=next_attempt, lease_until=None,
                last_error=error[:2000])
    )


def mark_failed(session: Session, delivery_id: int, error: str) -> None:
    session.execute(
        update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.state == DeliveryState.sending.value)
        .values(state=DeliveryState.failed.value, lease_until=None, last_error=error[:2000])
    )


def counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.state)
    ).all()
    return {state: count for state, count in rows}


def pending(session: Session, issue_id: int) -> int:
    return session.execute(
        select(func.count()).where(Delivery.issue_id == issue_id, Delivery.state.in_(PENDING))
    ).scalar_one()
