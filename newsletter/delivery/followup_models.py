"""The follow-ups' outbox: one row per follow-up and reader, unique, so a reader gets a follow-up
once. The same columns and states as an issue's `delivery` rows (delivery/models.py), claimed,
leased, retried and taken over by the one idiom of delivery/queue.py."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow
from newsletter.delivery.models import DeliveryState


class FollowupDelivery(SQLModel, table=True):
    __tablename__ = "followup_delivery"
    __table_args__ = (
        UniqueConstraint("followup_id", "subscriber_id"),
        # A claim takes the lowest due ids over every sending follow-up: by state, then id.
        Index("ix_followup_delivery_state_id", "state", "id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    followup_id: int = Field(sa_column=Column(Integer, ForeignKey("followup.id", ondelete="CASCADE"), nullable=False))
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False, index=True))
    state: str = Field(default=DeliveryState.queued.value, max_length=16)
    attempts: int = 0
    lease_until: datetime | None = None
    next_attempt_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=100)
    message_id: str | None = Field(default=None, max_length=250)
    provider_message_id: str | None = Field(default=None, max_length=250)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
