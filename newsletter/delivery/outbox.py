"""Set-based outbox statements: enqueue, skip, claim, record.

Every state change is one conditional UPDATE, so concurrent workers and
restarts can never move a delivery twice (a row already `sent` never matches
a statement that expects `sending`). A claim records the worker (`claimed_by`)
so that a worker stopping early can release exactly the rows it holds.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, exists, func, literal, or_, select, text, update
from sqlmodel import Session

from newsletter.content.models import Comparison
from newsletter.db import insert_for
from newsletter.delivery import queue
from newsletter.delivery.models import PENDING, PENDING_SQL, Delivery, DeliveryState
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Suppression


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


def count_eligible(session: Session, issue_id: int, now: datetime) -> int:
    """How many subscribers a send would enqueue now (for the editor's confirmation)."""
    return session.execute(select(func.count()).select_from(eligible_subscribers(issue_id, now).subquery())).scalar_one()


def enqueue(session: Session, issue_id: int, now: datetime) -> int:
    """One INSERT … SELECT; the unique (issue, subscriber) key makes repeats no-ops."""
    columns = ["issue_id", "subscriber_id", "state", "attempts", "created_at"]
    statement = (
        insert_for(session, Delivery.__table__)
        .from_select(columns, eligible_subscribers(issue_id, now))
        .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        .execution_options(preserve_rowcount=True)  # psycopg reports -1 for INSERT … SELECT otherwise
    )
    return session.execute(statement).rowcount or 0


def skip_ineligible(session: Session, ids: list[int]) -> int:
    """Unsubscribed or suppressed since enqueue: of the rows just claimed (`ids`), those become
    `skipped` instead of being sent. Checked per claimed batch (an index lookup per row), not over
    the whole queue: a scan of every subscriber before each claim cost ~0.5 s per batch at a
    million subscribers."""
    if not ids:
        return 0
    gone = exists().where(
        Subscriber.id == Delivery.subscriber_id,
        or_(
            Subscriber.status != SubscriberStatus.active.value,
            exists().where(Suppression.email == Subscriber.email),
        ),
    )
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.sending.value, gone)
        .values(state=DeliveryState.skipped.value, lease_until=None,
                last_error="unsubscribed or suppressed before sending")
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount or 0


def claim(
    session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta, worker_id: str | None = None,
    from_id: int | None = None, stale: datetime | None = None,
) -> list[int]:
    """Take up to `limit` deliveries that are due (queue.due: queued, due retries, or sending under
    a worker that is gone: lease expired or heartbeat older than `stale`), and only while the issue
    is `sending` (a pause or a cancel stops every worker at its next claim). One statement
    (queue.claim), so the issue's state is read in the same statement that takes the rows.

    The rows are found through the partial index of pending rows (`ix_delivery_due`), lowest id
    first. Rows already handled leave dead entries at the low end of that index until VACUUM
    removes them, and a scan from the start steps over all of them (50 ms per claim after 200,000
    sent). `from_id` starts the scan there instead: a worker passes the lowest id of its previous
    claim and rescans from the start now and then for what came due below it (sender.deliver).
    Which pending rows are due is one CASE rather than an OR of (state, time) pairs: an OR invites
    PostgreSQL to OR three bitmap scans of (issue_id, state) and sort everything pending, where the
    partial index gives the lowest ids in order."""
    conditions = [
        Delivery.issue_id == issue_id,
        # Pending, word for word as the partial index's predicate: SQLite's planner uses the index
        # only for a query that repeats that term with the same literals.
        text(f"delivery.{PENDING_SQL}"),
        exists().where(Issue.id == issue_id, Issue.state == IssueState.sending.value),
    ]
    if from_id is not None:
        conditions.append(Delivery.id >= from_id)
    return queue.claim(session, Delivery, conditions, now, limit, lease, worker_id, stale)


def claim_from(
    session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta, worker_id: str | None,
    hint: int | None, stale: datetime | None = None,
) -> list[int]:
    """`claim` scanning from `hint` (None: from the start); when that finds fewer than `limit`
    rows (the end of the queue, or what is left lies below the hint), the rest from the start,
    so a hint can delay a row below it but never leave it behind when the queue runs dry."""
    ids = claim(session, issue_id, now, limit, lease, worker_id, from_id=hint, stale=stale)
    if hint is not None and len(ids) < limit:  # the first's are leased now
        ids += claim(session, issue_id, now, limit - len(ids), lease, worker_id, stale=stale)
    return sorted(ids)


def release(session: Session, worker_id: str, ids: list[int] | None = None) -> int:
    """Give rows this worker still holds (`sending`, claimed by it) back to the queue, e.g. when it
    stops before handing them to the transport. Rows it already recorded never match."""
    return queue.release(session, Delivery, worker_id, ids)


CANCELLED_REASON = "issue cancelled before this delivery was sent"


def skip_cancelled(session: Session, issue_id: int, reason: str = CANCELLED_REASON) -> int:
    """Queued and retry deliveries of a cancelled issue become `skipped`, in one UPDATE (a no-op
    unless the issue is cancelled, so a worker can run it after every batch)."""
    cancelled = exists().where(Issue.id == issue_id, Issue.state == IssueState.cancelled.value)
    statement = (
        update(Delivery)
        .where(Delivery.issue_id == issue_id, cancelled)
        .where(Delivery.state.in_((DeliveryState.queued.value, DeliveryState.retry.value)))
        .values(state=DeliveryState.skipped.value, next_attempt_at=None, last_error=reason)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount or 0


_table = Delivery.__table__


def _record_many(session: Session, values: dict, rows: list[dict], worker: str | None = None) -> None:
    """One UPDATE per row, sent as one executemany (psycopg pipelines it into one round trip):
    a batch of 500 results as 500 separate ORM updates cost ~25% of a worker's time. Each row moves
    only if it is still `sending`, so a row recorded elsewhere (lease expired, another worker) stays,
    and, given `worker`, only while that worker holds it: a worker cut off from the database past
    its lease cannot, when its late results arrive, overwrite a row another worker claimed since."""
    if rows:
        statement = (
            update(_table)
            .where(_table.c.id == bindparam("b_id"), _table.c.state == DeliveryState.sending.value)
            .values(lease_until=None, **values)
        )
        if worker is not None:
            statement = statement.where(_table.c.claimed_by == worker)
        session.connection().execute(statement, rows)


def mark_sent(session: Session, now: datetime, sent: list[tuple[int, str, str | None]], worker: str | None = None) -> None:
    """`sent`: (delivery id, Message-ID, provider's message id) per delivery."""
    _record_many(session, {"state": DeliveryState.sent.value, "sent_at": now, "message_id": bindparam("b_msg"),
                           "provider_message_id": bindparam("b_pid"), "last_error": None},
                 [{"b_id": i, "b_msg": msg, "b_pid": pid} for i, msg, pid in sent], worker)


def mark_retry(session: Session, retries: list[tuple[int, datetime, str]], worker: str | None = None) -> None:
    """`retries`: (delivery id, next attempt, error) per delivery."""
    _record_many(session, {"state": DeliveryState.retry.value, "next_attempt_at": bindparam("b_next"),
                           "last_error": bindparam("b_error")},
                 [{"b_id": i, "b_next": when, "b_error": error[:2000]} for i, when, error in retries], worker)


def mark_failed(session: Session, failures: list[tuple[int, str]], worker: str | None = None) -> None:
    """`failures`: (delivery id, error) per delivery."""
    _record_many(session, {"state": DeliveryState.failed.value, "last_error": bindparam("b_error")},
                 [{"b_id": i, "b_error": error[:2000]} for i, error in failures], worker)


def counts(session: Session, issue_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.state)
    ).all()
    return {state: count for state, count in rows}


def pending(session: Session, issue_id: int) -> int:
    return session.execute(
        select(func.count()).where(Delivery.issue_id == issue_id, Delivery.state.in_(PENDING))
    ).scalar_one()
