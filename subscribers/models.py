"""Subscriber state lives here; every change of consent is recorded as a ConsentEvent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from newsletter.db import utcnow


class SubscriberStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(default="", max_length=100)
    status: str = Field(default=SubscriberStatus.pending.value, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    paused_until: datetime | None = None


class SubscriberTopic(SQLModel, table=True):
    """A category the subscriber wants; none at all means every category."""

    __tablename__ = "subscriber_topic"

    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True)
    )
    category: str = Field(max_length=80, primary_key=True)


class ConsentEvent(SQLModel, table=True):
    """Append-only history: who agreed or withdrew, when, and through what."""

    __tablename__ = "consent_event"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    kind: str = Field(max_length=32)
    source: str = Field(max_length=32)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    # Web requests only (None from the command line, imports and webhooks).
    ip: str | None = Field(default=None, max_length=45)
    user_agent: str | None = Field(default=None, max_length=300)
    consent_version: str | None = Field(default=None, max_length=40)  # subscribers.consent.CONSENT_VERSION shown


class Suppression(SQLModel, table=True):
    """Addresses that must never get mail again (hard bounces, complaints, manual blocks).

    A forgotten person (`subscribers forget`) is kept only as "sha256:" + the hex digest of
    the normalised address, so the address itself is gone but a new signup still matches.
    """

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    reason: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class TransactionalMail(SQLModel, table=True):
    """Queued one-to-one mail (confirmation, welcome, goodbye), sent outside the web request.

    For confirmations the raw token is made by the sender at send time; only its
    SHA-256 is stored here, and `used_at` makes it single-use.
    """

    __tablename__ = "transactional_mail"

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), index=True, nullable=False)
    )
    kind: str = Field(max_length=24)  # confirm | confirm_change | welcome | goodbye
    to_email: str = Field(max_length=254, index=True)
    state: str = Field(default="queued", max_length=16, index=True)  # queued | sent | failed
    attempts: int = 0
    next_attempt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow, index=True)
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    expires_at: datetime | None = None
    used_at: datetime | None = None


class ExpiredSignup(SQLModel, table=True):
    """What is left of a signup never confirmed once its confirmation expired (subscribers/purge.py).

    Only what the abuse limits need: the address's hash (as on the suppression list) and when a
    confirmation was mailed to it, kept for the longest limit window (a day) and then dropped too.
    """

    __tablename__ = "expired_signup"

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=71, index=True)  # "sha256:" + hex digest
    mailed_at: datetime
    purged_at: datetime = Field(default_factory=utcnow)
