"""What a delivery event means for the address: the one function provider webhooks and the
bounce mailbox both use.

`apply_event` matches the event to a delivery (our reference, else the provider's message id,
else the Message-ID, which embeds the reference), records it once in `webhook_event` (unique
per provider event id, so a replay changes nothing) and applies the rules:

- hard bounce, complaint: the address is suppressed at once (status bounced / complained,
  a consent event), whether or not a delivery matches;
- soft bounce: counted; `[feedback] soft_bounce_limit` soft-bounced messages in a row suspend
  the address (status bounced, suppression reason soft_bounce_limit). A delivered event, or a
  later message to the address that did not bounce, ends the streak. Several temporary
  failures of one message count once;
- unsubscribe reported by the provider: ours too (status unsubscribed, consent event with the
  provider in the detail, source webhook);
- delivered, deferred: recorded only (statistics, streak).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy import exists, func, select
from sqlmodel import Session

from newsletter import tallies
from newsletter.config import Settings
from newsletter.db import insert_for, utcnow
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.text import storable
from newsletter.feedback.events import EventKind, NormalizedEvent, reference_in_message_id
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.models import Subscriber, TransactionalMail
from newsletter.subscribers.consent import Source
from newsletter.subscribers.forgotten import recorded_address, scrub
from newsletter.subscribers.service import SUPPRESSION_STATUS, is_suppressed, suppress
from newsletter.subscribers.signup import unsubscribe

log = logging.getLogger(__name__)

MAX_ID = 2**31 - 1
SUPPRESSING = {EventKind.bounced_hard: "hard_bounce", EventKind.complained: "complaint"}
BOUNCES = (EventKind.bounced_hard, EventKind.bounced_soft)


@dataclass
class Applied:
    duplicate: bool
    delivery_id: int | None = None
    consequence: str | None = None


def _bare(message_id: str | None) -> str:
    return (message_id or "").strip().strip("<>").strip()


def delivery_for_reference(session: Session, reference: str | None) -> Delivery | None:
    if not reference or not reference.startswith("i"):
        return None
    issue_id, delivery_id = (int(part) for part in reference[1:].partition("-d")[::2])
    if delivery_id > MAX_ID:  # not a row of ours (and beyond PostgreSQL's integer)
        return None
    delivery = session.get(Delivery, delivery_id)
    return delivery if delivery is not None and delivery.issue_id == issue_id else None


def match_delivery(session: Session, event: NormalizedEvent) -> Delivery | None:
    """By our reference, else by the provider's message id, else by Message-ID, else (a bounce
    that names no message of ours) by address: the last message sent to it before the bounce."""
    delivery = delivery_for_reference(session, event.reference)
    if delivery is not None:
        return delivery
    if event.provider_message_id:
        delivery = session.execute(
            select(Delivery).where(Delivery.provider_message_id == event.provider_message_id).limit(1)
        ).scalars().first()
        if delivery is not None:
            return delivery
    if event.message_id:
        # Our Message-IDs carry the reference, so this needs no index on delivery.message_id.
        delivery = delivery_for_reference(session, reference_in_message_id(event.message_id))
        if delivery is not None and _bare(delivery.message_id) == _bare(event.message_id):
            return delivery
    if event.kind in BOUNCES and event.email and not event.reference:
        return last_sent_to(session, event.email, event.occurred_at)
    return None


def last_sent_to(session: Session, email: str, before: datetime | None) -> Delivery | None:
    """Without this, a bounce matched by address only never joined a delivery, so every later clean
    send looked like the end of the soft-bounce streak and the limit never triggered."""
    query = (select(Delivery).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
             .where(Subscriber.email == email, Delivery.state == DeliveryState.sent.value))
    if before is not None:
        query = query.where(Delivery.sent_at <= (before if before.tzinfo else before.replace(tzinfo=UTC)))
    return session.execute(query.order_by(Delivery.sent_at.desc(), Delivery.id.desc()).limit(1)).scalars().first()


def _message_key(event: NormalizedEvent, delivery: Delivery | None) -> str:
    if delivery is not None:
        return f"d{delivery.id}"
    if event.reference:
        return event.reference
    if event.provider_message_id:
        return f"{event.provider}:{event.provider_message_id}"[:270]
    return f"{event.provider}:{event.provider_event_id}"[:270]


def _subscriber(session: Session, email: str) -> Subscriber | None:
    return session.execute(select(Subscriber).where(Subscriber.email == email)).scalars().first()


def soft_streak(session: Session, email: str) -> int:
    """Soft-bounced messages to `email` since the streak last ended: the later of its last
    delivered event and the newest message sent to it that did not bounce."""
    last_delivered = session.execute(
        select(func.max(WebhookEvent.occurred_at))
        .where(WebhookEvent.email == email, WebhookEvent.kind == EventKind.delivered.value)
    ).scalar()
    bounced = exists().where(
        WebhookEvent.delivery_id == Delivery.id,
        WebhookEvent.kind.in_((EventKind.bounced_soft.value, EventKind.bounced_hard.value)),
    )
    last_clean_send = session.execute(
        select(func.max(Delivery.sent_at))
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.email == email, Delivery.state == DeliveryState.sent.value, ~bounced)
    ).scalar()
    since = max((t for t in (last_delivered, last_clean_send) if t is not None), default=None)
    query = select(func.count(func.distinct(WebhookEvent.message_key))).where(
        WebhookEvent.email == email, WebhookEvent.kind == EventKind.bounced_soft.value)
    if since is not None:
        query = query.where(WebhookEvent.occurred_at > since)
    return session.execute(query).scalar_one()


def _suppress_once(session: Session, email: str, reason: str, source: str, detail: str) -> str | None:
    """Suppress, unless the address is already suppressed and its subscriber already has the status."""
    subscriber = _subscriber(session, email)
    if is_suppressed(session, email) and (subscriber is None or subscriber.status == SUPPRESSION_STATUS[reason]):
        return None
    suppress(session, email, reason, Source.webhook, f"{source}: {detail}" if detail else source)
    return f"suppressed:{reason}"


def _consequence(session: Session, settings: Settings, event: NormalizedEvent, email: str,
                 now: datetime) -> str | None:
    source = event.provider[:32]
    if event.kind in SUPPRESSING:
        return _suppress_once(session, email, SUPPRESSING[event.kind], source, event.detail)
    if event.kind == EventKind.bounced_soft:
        streak = soft_streak(session, email)
        limit = settings.feedback.soft_bounce_limit
        if streak >= limit:
            done = _suppress_once(session, email, "soft_bounce_limit", source,
                                  f"{streak} soft bounces in a row; last: {event.detail}")
            return done or f"soft_bounce {streak}/{limit}"
        return f"soft_bounce {streak}/{limit}"
    if event.kind == EventKind.unsubscribed:
        subscriber = _subscriber(session, email)
        if subscriber is not None and unsubscribe(session, subscriber.id, Source.webhook, now, goodbye=False,
                                                  detail=source):
            return "unsubscribed"
    return None


def _storable(session: Session, event: NormalizedEvent) -> NormalizedEvent:
    """The event as it may be stored: odd bytes from a remote server cleaned (one bad field
    never fails a batch) and every forgotten address replaced by its hash (forget is forever)."""
    return replace(
        event, email=storable(event.email, 254),
        provider_event_id=storable(scrub(session, event.provider_event_id), 250),
        provider_message_id=storable(scrub(session, event.provider_message_id), 250) or None,
        detail=storable(scrub(session, event.detail), 2000), message_id=storable(event.message_id, 998) or None,
        raw=_payload(session, event.raw))


MAX_PAYLOAD = 64 * 1024  # characters: a real record is a few KB; the request body is capped at 1 MiB


def _payload(session: Session, raw: object) -> str | None:
    """The provider's record as stored JSON text: forgotten addresses hashed, cut at MAX_PAYLOAD."""
    if raw is None:
        return None
    text = json.dumps(raw, ensure_ascii=False, sort_keys=True, default=str)
    return storable(scrub(session, text), MAX_PAYLOAD)


def apply_event(session: Session, settings: Settings, event: NormalizedEvent, now: datetime | None = None) -> Applied:
    """Record the event once and apply its consequence, in the caller's transaction."""
    now = now or utcnow()
    event = _storable(session, event)
    delivery = match_delivery(session, event)
    email = event.email
    if not email and delivery is not None:
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        email = subscriber.email if subscriber else ""
    stored = recorded_address(session, email) if email else email
    occurred = event.occurred_at or now
    if occurred.tzinfo is None:  # e.g. an RFC 5322 date with "-0000": UTC, zone unknown
        occurred = occurred.replace(tzinfo=UTC)
    statement = (
        insert_for(session, WebhookEvent.__table__)
        .values(provider=event.provider, provider_event_id=event.provider_event_id, kind=event.kind.value,
                email=stored, delivery_id=delivery.id if delivery else None,
                issue_id=delivery.issue_id if delivery else None, reference=event.reference,
                provider_message_id=event.provider_message_id,
                message_key=scrub(session, _message_key(event, delivery)), occurred_at=occurred,
                received_at=now, detail=event.detail, payload=event.raw)
        .on_conflict_do_nothing(index_elements=["provider", "provider_event_id"])
        .returning(WebhookEvent.__table__.c.id)
    )
    row_id = session.execute(statement).scalar()
    if row_id is None:
        log.info("%s event %s was applied before; nothing changes", event.provider, event.provider_event_id)
        return Applied(duplicate=True, delivery_id=delivery.id if delivery else None)
    if delivery is not None:  # the issue's delivered / bounced / complained counters (newsletter/tallies.py)
        tallies.count_first_event(session, row_id, delivery.id, delivery.issue_id, event.kind.value)
    # A forgotten address is suppressed for good and has no subscriber: nothing more to apply.
    consequence = _consequence(session, settings, event, email, now) if email and stored == email else None
    if consequence:
        session.execute(WebhookEvent.__table__.update().where(WebhookEvent.__table__.c.id == row_id)
                        .values(consequence=consequence[:40]))
        log.info("%s %s for %s: %s", event.provider, event.kind.value, email, consequence)
    return Applied(duplicate=False, delivery_id=delivery.id if delivery else None, consequence=consequence)


def transactional_recipient(session: Session, reference: str) -> str | None:
    """The address a transactional mail ("t17") went to."""
    if not reference.startswith("t") or int(reference[1:]) > MAX_ID:
        return None
    mail = session.get(TransactionalMail, int(reference[1:]))
    return mail.to_email if mail else None


def recipient_of(session: Session, reference: str) -> str | None:
    """The address the message with this reference was sent to (a delivery or a transactional mail)."""
    delivery = delivery_for_reference(session, reference)
    if delivery is not None:
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        return subscriber.email if subscriber else None
    return transactional_recipient(session, reference)
