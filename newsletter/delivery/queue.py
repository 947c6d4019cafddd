"""The one claim/lease/attempts/backoff idiom every outbound queue uses.

Issue deliveries (outbox.py) and the transactional queue (confirmations, welcome, goodbye,
editors' notices, test sends: mailqueue.py) are tables with the same columns for it: `state`
(DeliveryState), `attempts`, `next_attempt_at`, `lease_until`, `claimed_by`. A claim is one
statement, UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING id, so on PostgreSQL
concurrent claimers skip each other's rows; SQLite has one writer, and the same statement (without
the lock clause, which SQLAlchemy leaves out there) is atomic by itself.

A row is due when it is queued, a retry whose time has come, or `sending` under a worker that is
gone: its lease ran out, or its worker's heartbeat is stale (heartbeat.py), which takes seconds
instead of the whole lease. Every result goes through `settle`, so every queue retries with the
same backoff and gives up after the same `[delivery] max_attempts`.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, or_, select, update
from sqlmodel import Session

from newsletter.config import DeliverySettings
from newsletter.delivery import heartbeat
from newsletter.delivery.models import DeliveryState, WorkerHeartbeat
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.text import first_line

# A worker is taken for dead after this many missed beats (one slow beat is not death).
STALE_BEATS = 3


@dataclass
class BatchReport:
    """What one batch of a queue did: rows sent, to retry, failed for good."""

    sent: int = 0
    retry: int = 0
    failed: int = 0

    @property
    def worked(self) -> int:
        return self.sent + self.retry + self.failed


def worker_id() -> str:
    """Names this process in `claimed_by` and its heartbeat: host, pid and a nonce (pids get reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def stale_before(now: datetime, cfg: DeliverySettings) -> datetime:
    """A heartbeat older than this is stale."""
    return now - timedelta(seconds=STALE_BEATS * cfg.heartbeat_seconds)


def due(model, now: datetime, stale: datetime | None):
    """Which rows a claim may take, as one CASE (see outbox.claim for why not an OR). `stale`:
    rows held by a worker whose last beat is older are due too (None: only expired leases)."""
    gone = model.lease_until < now
    if stale is not None:
        stale_workers = select(WorkerHeartbeat.worker_id).where(WorkerHeartbeat.beat_at < stale)
        gone = or_(gone, model.claimed_by.in_(stale_workers))
    return case(
        (model.state == DeliveryState.retry.value, model.next_attempt_at <= now),
        (model.state == DeliveryState.sending.value, gone),
        else_=model.state == DeliveryState.queued.value,
    )


def claim(session: Session, model, conditions: list, now: datetime, limit: int, lease: timedelta,
          worker: str | None, stale: datetime | None = None) -> list[int]:
    """Take up to `limit` due rows of `model` that also meet `conditions`, lowest id first: they
    become `sending` under `worker`, leased for `lease`, one more attempt. The worker's heartbeat
    moves to `now` in the same transaction, for every queue (issues, follow-ups, transactional
    mail, webhooks): rows a worker claims right after its cut link returns are never under its
    stale beat, which other workers would take at once and send a second time."""
    if limit <= 0:
        return []
    if worker is not None:
        heartbeat.refresh(session, worker, now)
    due_ids = (
        select(model.id)
        .where(*conditions)
        .where(due(model, now, stale))
        .order_by(model.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=model)
    )
    statement = (
        update(model)
        .where(model.id.in_(due_ids.scalar_subquery()))
        .values(state=DeliveryState.sending.value, lease_until=now + lease,
                attempts=model.attempts + 1, claimed_by=worker)
        .returning(model.id)
        .execution_options(synchronize_session=False)
    )
    # Core, not the ORM's bulk-update path: the same SQL, a fifth of the Python per claim.
    return sorted(session.connection().execute(statement).scalars().all())


def release(session: Session, model, worker: str, ids: list[int] | None = None, *within) -> int:
    """Give rows this worker still holds back to the queue (it stops before sending them).
    `within`: more conditions that narrow where the rows can be (stopping.release)."""
    statement = (
        update(model)
        .where(model.state == DeliveryState.sending.value, model.claimed_by == worker, *within)
        .values(state=DeliveryState.queued.value, lease_until=None, claimed_by=None)
        .execution_options(synchronize_session=False)
    )
    if ids is not None:
        if not ids:
            return 0
        statement = statement.where(model.id.in_(ids))
    return session.execute(statement).rowcount or 0


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential with full jitter: spreads retries of many messages over the window."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempt - 1, 0))


def retry_delay(result: SendResult, attempts: int, cfg: DeliverySettings) -> float:
    """The provider's Retry-After when it gave one, else exponential backoff with jitter; either way
    at most `retry_max_seconds`. A provider or proxy once answered a Retry-After of 10^12 seconds:
    the due time overflowed, the batch's record raised and all of it was sent again after the lease."""
    if result.retry_after is not None:
        return min(max(float(result.retry_after), 0.0), cfg.retry_max_seconds)
    return backoff(attempts, cfg.retry_base_seconds, cfg.retry_max_seconds)


def settle(result: SendResult, attempts: int, cfg: DeliverySettings, done: datetime) -> tuple[str, datetime | None]:
    """The state a row moves to after `attempts` attempts ended in `result`, and, for a retry,
    when it is due again: temporary failures retry until `max_attempts`, then fail."""
    if result.outcome == Outcome.sent:
        return DeliveryState.sent.value, None
    if result.outcome == Outcome.retry and attempts < cfg.max_attempts:
        return DeliveryState.retry.value, done + timedelta(seconds=retry_delay(result, attempts, cfg))
    return DeliveryState.failed.value, None


def unbuildable(exc: BaseException) -> SendResult:
    """The result of a message that could not be built: retried like a temporary refusal (the
    cause may be a row or template fixed meanwhile), so it fails for good after max_attempts."""
    text = first_line(exc, empty="")
    return SendResult(Outcome.retry, error=f"could not build the message: {type(exc).__name__}: {text}"[:2000])


def transport_raised(exc: BaseException, name: str) -> SendResult:
    """The result of every message of a send() that raised instead of answering per message."""
    return SendResult(Outcome.retry, error=f"{name}: the transport raised {type(exc).__name__}: {exc}"[:2000])


def outstanding(model, now: datetime):
    """Rows that are queued, held by a worker (live or not), or retries due now: a worker running
    `--until-idle` is not idle while any remains (held rows are waited for, or taken over once their
    worker's heartbeat is stale). Retries due later are not waited for (they may be hours away)."""
    return or_(
        model.state.in_((DeliveryState.queued.value, DeliveryState.sending.value)),
        (model.state == DeliveryState.retry.value) & (model.next_attempt_at <= now),
    )
