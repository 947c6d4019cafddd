"""The outbox: one row per issue and subscriber, unique, so a subscriber is mailed once.

States: queued -> sending -> sent; sending -> retry -> (sending again) -> failed;
queued/sending -> skipped (unsubscribed or suppressed since enqueue).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.db import utcnow


class DeliveryState(StrEnum):
    queued = "queued"
    sending = "sending"
    sent = "sent"
    retry = "retry"
    failed = "failed"
    skipped = "skipped"


class Delivery(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        Index("ix_delivery_issue_state", "issue_id", "state"),
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
    message_id: str | None = Field(default=None, max_length=250)
    provider_message_id: str | None = Field(default=None, max_length=250)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
