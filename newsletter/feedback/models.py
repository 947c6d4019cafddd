"""What happened to delivered mail: what provider webhooks and the bounce mailbox reported, and
what readers' mail clients did (opens and clicks, `tracking_event`). All are delivery events
that the per-issue statistics count (newsletter/reports/stats.py), so they sit together.

`webhook_event`: one row per applied event, unique per (provider, provider_event_id), so a
replayed or re-delivered event changes nothing twice. It is also the record the per-issue
statistics are counted from (delivered, bounced, complained, unsubscribed per delivery), and
the soft-bounce streak of an address is read from it. Bounce-mailbox DSNs use provider "mailbox".
`payload` keeps the provider's record the event was read from, so an operator can see what the
provider actually said (forgotten addresses in it are hashed, and forget clears it).

`webhook_nonce`: single-use request tokens (Mailgun signs only timestamp + token, not the body,
so a token may be used for one body only): `nonce` is the SHA-256 of what was signed, `event_id`
the SHA-256 of the event it came with; rows older than a day are pruned.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow
from newsletter.delivery.models import Delivery


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_event"
    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id"),
        Index("ix_webhook_event_email_kind", "email", "kind"),
        # The statistics count each issue's delivered, bounced and complained deliveries from this
        # index alone (an index-only scan, no join to a million deliveries): migration 0018.
        Index("ix_webhook_event_issue_kind_delivery", "issue_id", "kind", "delivery_id"),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=20)
    provider_event_id: str = Field(max_length=250)
    kind: str = Field(max_length=16)
    email: str = Field(max_length=254)
    delivery_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("delivery.id", ondelete="SET NULL"), nullable=True, index=True),
    )
    # The delivery's issue, copied when the event is applied (a delivery never changes issue), so
    # per-issue counts need not join the outbox. NULL when no delivery matched.
    issue_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    reference: str | None = Field(default=None, max_length=40)
    provider_message_id: str | None = Field(default=None, max_length=250)
    # What a soft-bounce streak counts: one message ("d42", or the provider's message id), so
    # several temporary failures of the same message are one soft bounce.
    message_key: str = Field(max_length=270)
    occurred_at: datetime = Field(default_factory=utcnow)
    received_at: datetime = Field(default_factory=utcnow)
    consequence: str | None = Field(default=None, max_length=40)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # The provider's record as JSON, for audit (NormalizedEvent.raw); NULL for mailbox DSNs.
    payload: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class WebhookNonce(SQLModel, table=True):
    __tablename__ = "webhook_nonce"

    provider: str = Field(primary_key=True, max_length=20)
    nonce: str = Field(primary_key=True, max_length=128)
    event_id: str = Field(default="", max_length=250)  # digest of the body it came with: a re-delivery is no attack
    seen_at: datetime = Field(default_factory=utcnow, index=True)


class TrackingEvent(SQLModel, table=True):
    """Open and click events: one row per (issue, subscriber, kind, link), counted by the stats."""

    __tablename__ = "tracking_event"
    __table_args__ = (UniqueConstraint("issue_id", "subscriber_id", "kind", "link"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True, ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    kind: str = Field(max_length=8)  # open | click
    link: int = -1  # the comparison index for clicks
    created_at: datetime = Field(default_factory=utcnow)


# Events name a delivery by the provider's message id when they do not echo our reference. Partial:
# only rows sent through an HTTP provider have one, and an entry for every NULL cost two index
# writes per message (a claim and a result: migration 0030); `provider_message_id = :id` implies it.
Index("ix_delivery_provider_message_id", Delivery.__table__.c.provider_message_id,
      postgresql_where=text("provider_message_id IS NOT NULL"), sqlite_where=text("provider_message_id IS NOT NULL"))
