"""The outbox: one row per issue and subscriber, unique, so a subscriber is mailed once.

States: queued -> sending -> sent; sending -> retry -> (sending again) -> failed;
queued/retry -> skipped (unsubscribed or suppressed since enqueue, or the issue was cancelled);
sending -> queued (released by a worker that stops before handing the rows to the transport).
The transactional queue (newsletter.subscribers.models.TransactionalMail) uses the same states and the same
claim (newsletter/delivery/queue.py).

`worker_heartbeat` holds one row per running worker, beaten every `[delivery] heartbeat_seconds`:
rows `sending` under a worker whose beat is stale are taken over at once, not when the lease ends.

`send_window` holds the shared rate-limit counters: one row per transport, window length and
window start, incremented atomically by every worker on every host (newsletter/delivery/ratelimit.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class DeliveryState(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retry = "retry"
    failed = "failed"
    skipped = "skipped"


PENDING = (DeliveryState.queued.value, DeliveryState.sending.value, DeliveryState.retry.value)
# Pending, written out as SQL for the claims' own statements (claim_batch, outbox.claim): a term
# they check on each row they read; no index holds it (see Delivery's indexes).
PENDING_SQL = "state IN ({})".format(", ".join(f"'{state}'" for state in PENDING))


# How full an enqueue fills a page (PostgreSQL): the rest is for the versions a claim and a result
# write, so that they stay on the row's page (HOT). Migration 0032 sets the same.
FILLFACTOR = 20


class Delivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        # An issue's rows in id order: a claim walks them from its cursor (claim_batch.ClaimCursor).
        # No index names `state` or another column a claim or a result changes, not even in a
        # partial index's WHERE: PostgreSQL then updates the row in place (HOT, on its page, no
        # new index entry; migration 0032 says why, and sets the table's fillfactor for it).
        Index("ix_delivery_issue_id", "issue_id", "id"),
        {**NEVER_REUSE_IDS, "postgresql_with": {"fillfactor": FILLFACTOR}},
    )

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), nullable=False))
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    state: str = Field(default=DeliveryState.queued.value, max_length=16)
    attempts: int = 0
    lease_until: datetime | None = None
    next_attempt_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=100)  # the worker holding (or that sent) it
    message_id: str | None = Field(default=None, max_length=250)
    provider_message_id: str | None = Field(default=None, max_length=250)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    # Which of the issue's comparisons this reader is sent (bit i: the i-th by position), fixed at
    # enqueue from their topics (outbox.eligible_subscribers); NULL: all of them. The ledger's answer
    # to "which verdicts did this reader get" (received.py) and their issue's variant (variants.py).
    variant_mask: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class DeliveryRetry(SQLModel, table=True):
    """A delivery the claims' walk of the issue's ids may have left behind: it went to `retry`
    (retry_side.py). Its own small table, not an index of `delivery`: an index naming `state` or
    `next_attempt_at` would stop every claim and result updating the row in place (HOT, migration
    0032). The walk's floor ignores these rows, so a retry due in an hour no longer holds every
    rescan's walk down at its id; the claims find them here, by `due_at`, when they come due. A
    row stays until its delivery is final (swept at the rescans), so one claimed again and lost
    with its worker is found here too."""

    __tablename__ = "delivery_retry"
    __table_args__ = (Index("ix_delivery_retry_issue_due", "issue_id", "due_at"),)

    delivery_id: int = Field(sa_column=Column(Integer, ForeignKey("delivery.id", ondelete="CASCADE"),
                                              primary_key=True, autoincrement=False))
    issue_id: int = Field(sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), nullable=False))
    due_at: datetime  # the delivery's next_attempt_at when it went to retry: it is not due before


class SendWindow(SQLModel, table=True):
    """Messages granted to a transport in one fixed time window (ratelimit.py)."""

    __tablename__ = "send_window"

    transport: str = Field(primary_key=True, max_length=40)
    window_seconds: int = Field(primary_key=True)  # 1 or 3600
    window_start: int = Field(sa_column=Column(BigInteger, primary_key=True))  # unix seconds
    used: int = 0
    granted: int = 0  # what the last acquire got (the statement returns it)


class WorkerHeartbeat(SQLModel, table=True):
    """A running worker's last sign of life (newsletter/delivery/heartbeat.py)."""

    __tablename__ = "worker_heartbeat"

    worker_id: str = Field(primary_key=True, max_length=100)
    beat_at: datetime = Field(default_factory=utcnow, index=True)
    started_at: datetime = Field(default_factory=utcnow)
