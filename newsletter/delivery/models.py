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
