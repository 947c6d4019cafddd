"""The one event model every provider's payload (and every bounce-mailbox DSN) is turned into,
and the field cleaning both paths share (addresses, our references, hard or soft).

Webhook plumbing (the request, Verified/Rejected, JSON limits, timestamps) is in
newsletter/feedback/webhooks/base.py: the bounce mailbox needs none of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from newsletter.delivery.bounce_class import BounceClass, classify
from newsletter.mail.addresses import stored_form


class EventKind(StrEnum):
    delivered = "delivered"
    deferred = "deferred"  # the provider is still trying: recorded, no consequence
    bounced_hard = "bounced_hard"
    bounced_soft = "bounced_soft"
    complained = "complained"
    unsubscribed = "unsubscribed"


@dataclass(frozen=True)
class NormalizedEvent:
    kind: EventKind
    email: str
    provider: str  # postmark | sendgrid | mailgun | resend | ses | mailbox
    provider_event_id: str  # unique per provider: a second event with the same id is a replay
    provider_message_id: str | None = None  # the provider's id of the message (delivery.provider_message_id)
    reference: str | None = None  # ours ("i3-d42", "t17") when the provider echoes it
    occurred_at: datetime | None = None
    detail: str = ""
    message_id: str | None = None  # the RFC 5322 Message-ID of the message, when known
    # The provider's record the event was read from, kept for audit (webhook_event.payload);
    # None for bounce-mailbox DSNs. Not compared: two reports of one event are one event.
    raw: Any = field(default=None, compare=False, repr=False)


# Deliveries are "i<issue>-d<delivery>", transactional mails "t<id>" (newsletter/mail/compose.py).
REFERENCE = re.compile(r"^(?:i\d{1,18}-d\d{1,18}|t\d{1,18})$")
# Our Message-IDs embed the reference: <i3-d42.0123456789abcdef01234567@domain>
MESSAGE_ID_REFERENCE = re.compile(r"^<?((?:i\d{1,18}-d\d{1,18}|t\d{1,18}))\.[0-9a-f]{24}@[^>\s]+>?$")


def bounce_kind(status: object = None, text: object = "", provider_type: object = None) -> EventKind:
    """A failed delivery as hard or soft by the one classification of every path
    (newsletter/delivery/bounce_class.py): the server's status and text first, the provider's type after."""
    verdict = classify(str(status) if status not in (None, "") else None, str(text or ""),
                       str(provider_type) if provider_type else None)
    return EventKind.bounced_hard if verdict == BounceClass.hard else EventKind.bounced_soft


def clean_reference(value: object) -> str | None:
    if isinstance(value, list) and value:  # SES tags are lists of values
        value = value[0]
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if REFERENCE.match(value) else None


def reference_in_message_id(message_id: str | None) -> str | None:
    match = MESSAGE_ID_REFERENCE.match((message_id or "").strip())
    return match.group(1) if match else None


def clean_email(value: object) -> str:
    """Lower-cased address, without a display name or angle brackets, an IDNA domain in the stored
    (Unicode) form; "" when there is none."""
    if not isinstance(value, str):
        return ""
    value = value.strip()
    if "<" in value and value.endswith(">"):
        value = value[value.rindex("<") + 1:-1]
    return stored_form(value)[:254]
