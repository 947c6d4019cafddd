"""Subscriber state lives here; every change of consent is recorded as a ConsentEvent."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import secrets

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Text, text
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow

def new_token_key() -> str:
    """A per-reader random value that every signed link carries: a link made for one reader can
    never be read as another's, even if an id were ever reused (newsletter.tokens)."""
    return secrets.token_hex(8)


# Indexes that only migration 0019 makes (subscribers/search.py): expressions with PostgreSQL's
# "C" collation, which SQLAlchemy's metadata cannot say per dialect; the model comparison
# (migrations/env.py `include_object`, tests/test_migrations.py) leaves them out.
SEARCH_INDEXES = frozenset({"ix_subscriber_email_c", "ix_subscriber_name_c", "ix_suppression_email_c",
                            "ix_subscriber_name_lower"})


def modelled(_object, name, type_, _reflected, _compare_to) -> bool:
    """alembic include_object: everything but the search indexes, which the models do not describe."""
    return not (type_ == "index" and name in SEARCH_INDEXES)


class SubscriberStatus(StrEnum):
    pending = "pending"
    active = "active"
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Subscriber(SQLModel, table=True):
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    name: str = Field(default="", max_length=100)
    status: str = Field(default=SubscriberStatus.pending.value, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow)
    confirmed_at: datetime | None = None
    unsubscribed_at: datetime | None = None
    paused_until: datetime | None = None
    # "" for readers from before migration 0009 (their links carry no key); see new_token_key.
    token_key: str = Field(default_factory=new_token_key,
                           sa_column=Column(String(16), nullable=False, server_default=""))


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
    # (kind, created_at): the statistics count unsubscribes and joins by kind within a time window.
    __table_args__ = (Index("ix_consent_event_kind_created", "kind", "created_at"), NEVER_REUSE_IDS)

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
    consent_version: str | None = Field(default=None, max_length=40)  # newsletter.subscribers.consent.CONSENT_VERSION shown


class Suppression(SQLModel, table=True):
    """Addresses that must never get mail again (hard bounces, complaints, manual blocks).

    A forgotten person (`subscribers forget`) is kept only as "sha256:" + the hex digest of
    the normalised address, so the address itself is gone but a new signup still matches.
    """

    __table_args__ = (NEVER_REUSE_IDS,)
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    reason: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class TransactionalMail(SQLModel, table=True):
    """Queued one-to-one mail, sent outside the web request by the shared queue idiom
    (newsletter/delivery/queue.py): confirmation, welcome and goodbye to a subscriber, and the
    editors' mails (`notice` when an issue finishes, `test` for `issue test`), which name an issue
    and no subscriber. States are newsletter.delivery.models.DeliveryState (queued, sending, sent,
    retry, failed).

    For confirmations the raw token is made by the sender at send time; only its
    SHA-256 is stored here, and `used_at` makes it single-use.
    """

    __tablename__ = "transactional_mail"
    __table_args__ = (
        # A new reader gets the latest issue (`latest`) once, however often they confirm.
        Index("uq_transactional_mail_latest", "subscriber_id", unique=True,
              sqlite_where=text("kind = 'latest'"), postgresql_where=text("kind = 'latest'")),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), index=True, nullable=True),
    )
    issue_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), nullable=True)
    )
    kind: str = Field(max_length=24)  # confirm | confirm_change | welcome | latest | goodbye | notice | held | test
    to_email: str = Field(max_length=254, index=True)
    state: str = Field(default="queued", max_length=16, index=True)  # DeliveryState
    attempts: int = 0
    next_attempt_at: datetime | None = None  # state retry: not before
    lease_until: datetime | None = None  # state sending: taken over after this (or a stale heartbeat)
    claimed_by: str | None = Field(default=None, max_length=100)
    # An editors' notice whose text is fixed when it is queued (`held`: which pre-send checks failed).
    subject: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, index=True)
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    token_hash: str | None = Field(default=None, max_length=64, unique=True)
    expires_at: datetime | None = None
    used_at: datetime | None = None


class ExpiredSignup(SQLModel, table=True):
    """What is left of a signup never confirmed once its confirmation expired (newsletter/subscribers/purge.py).

    Only what the abuse limits need: the address's hash (as on the suppression list) and when a
    confirmation was mailed to it, kept for the longest limit window (a day) and then dropped too.
    """

    __tablename__ = "expired_signup"

    id: int | None = Field(default=None, primary_key=True)
    email_hash: str = Field(max_length=71, index=True)  # "sha256:" + hex digest
    mailed_at: datetime
    purged_at: datetime = Field(default_factory=utcnow)
