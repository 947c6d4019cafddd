"""Outgoing webhooks' outbox: the endpoints owners register, one row per (event, endpoint) to
deliver, and `emit`, which the places where things happen call.

Why a top-level module: the events happen in subscribers/, content/, issues/ and feedback/,
and those must not import delivery/ (tests/test_layout.py). This module knows only the
database; the queue that posts the rows (newsletter/delivery/webhooks_out.py) builds on it.

Why rows written by the caller's session: emitting is an INSERT in the same transaction as
the change itself, so a rolled-back change sends nothing and a committed one is never lost.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, text
from sqlmodel import Field, Session, SQLModel, select

from newsletter.db import NEVER_REUSE_IDS, utcnow

EVENTS = ("reader.confirmed", "reader.unsubscribed", "reader.bounced", "reader.complained", "vote.recorded",
          "issue.scheduled", "issue.started", "issue.finished")
TEST_EVENT = "webhook.test"  # the console's "send a test event" button; no endpoint subscribes to it
PENDING_SQL = "state IN ('queued', 'sending', 'retry')"  # the partial index the claim walks


class WebhookEndpoint(SQLModel, table=True):
    """A URL an owner registered; `secret` signs every delivery (kept as is: HMAC needs it)."""

    __tablename__ = "webhook_endpoint"
    __table_args__ = NEVER_REUSE_IDS

    id: int | None = Field(default=None, primary_key=True)
    url: str = Field(max_length=2000)
    events: str = Field(max_length=400)  # space-separated names from EVENTS
    secret: str = Field(max_length=100)
    description: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None  # removed: no new deliveries; the old ones stay visible


class WebhookDelivery(SQLModel, table=True):
    """One event to one endpoint, queued and retried like every outbound message (delivery/queue.py)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        Index("ix_webhook_delivery_due", "id", postgresql_where=text(PENDING_SQL), sqlite_where=text(PENDING_SQL)),
        NEVER_REUSE_IDS,
    )

    id: int | None = Field(default=None, primary_key=True)
    endpoint_id: int = Field(sa_column=Column(Integer, ForeignKey("webhook_endpoint.id", ondelete="CASCADE"),
                                              nullable=False, index=True))
    event: str = Field(max_length=40)
    event_id: str = Field(max_length=40)  # the same for every endpoint the event went to
    body: str = Field(sa_column=Column(Text, nullable=False))  # the exact JSON that is signed and sent
    state: str = Field(default="queued", max_length=16)  # newsletter.delivery.models.DeliveryState
    attempts: int = 0
    lease_until: datetime | None = None
    next_attempt_at: datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=100)
    last_status: int | None = None  # the receiver's HTTP status; None: no answer (refused, timeout)
    last_response: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # an excerpt
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    last_attempt_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None


def event_body(event: str, data: dict, now: datetime, event_id: str) -> str:
    """The JSON every receiver gets: {"id", "type", "created_at", "data"}."""
    return json.dumps({"id": event_id, "type": event, "created_at": now.isoformat().replace("+00:00", "Z"),
                       "data": data}, separators=(",", ":"), sort_keys=True, default=str)


def emit(session: Session, event: str, data: dict, now: datetime | None = None) -> int:
    """Queue `event` for every live endpoint that subscribed to it, in the caller's transaction;
    how many rows were queued (0 when nobody listens: one small SELECT)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    endpoints = session.exec(select(WebhookEndpoint.id, WebhookEndpoint.events)
                             .where(WebhookEndpoint.disabled_at.is_(None))).all()
    wanted = [endpoint_id for endpoint_id, events in endpoints if event in events.split()]
    if not wanted:
        return 0
    now = now or utcnow()
    event_id = "evt_" + uuid.uuid4().hex
    body = event_body(event, data, now, event_id)
    session.add_all(WebhookDelivery(endpoint_id=endpoint_id, event=event, event_id=event_id, body=body,
                                    created_at=now) for endpoint_id in wanted)
    return len(wanted)
