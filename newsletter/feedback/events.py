"""The one event model every provider's payload (and every bounce-mailbox DSN) is turned into,
and the small pieces the provider modules share: the request they read, what they answer,
timestamps, references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

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


@dataclass(frozen=True)
class WebhookRequest:
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    body: bytes
    now: datetime


@dataclass
class Verified:
    """An authentic request: its events, the event types it carried that we do not act on, and
    for Mailgun the single-use token (`nonce`) that must not have been seen before."""

    events: list[NormalizedEvent] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    nonce: str | None = None
    nonce_event: str = ""
    note: str = ""


class Rejected(Exception):
    """The request is not authentic (401), not allowed (403) or unreadable (400): nothing is stored."""

    def __init__(self, reason: str, status: int = 401, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.reason, self.status, self.headers = reason, status, headers or {}


class NotConfigured(Exception):
    """The provider's secret is missing or unusable: answered 503, so the provider retries later."""


MAX_DEPTH = 32  # real payloads nest 6 levels at most; deeper is an attack on the parser or on us


def load_json(body: bytes | str):
    """Parse a webhook body, or Rejected (400) when it is not JSON or nests deeper than
    MAX_DEPTH. Invalid UTF-8 is replaced, not refused: a remote server's bounce text with a
    broken byte must not lose the provider's whole batch (the signature covers the raw bytes)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        payload = json.loads(text)
    except RecursionError:
        raise Rejected(f"the body nests deeper than {MAX_DEPTH} levels", 400) from None
    except ValueError:  # also a number with more digits than Python converts
        raise Rejected("the body is not JSON", 400) from None
    if _depth_exceeds(payload, MAX_DEPTH):
        raise Rejected(f"the body nests deeper than {MAX_DEPTH} levels", 400)
    return payload


def _depth_exceeds(value: object, limit: int) -> bool:
    """Iterative (no recursion to exhaust): whether containers nest deeper than `limit`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


# Deliveries are "i<issue>-d<delivery>", transactional mails "t<id>" (newsletter/issues/message.py).
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


def parse_time(value: object) -> datetime | None:
    """Unix seconds (int, float or digits) or ISO 8601; None when absent or unreadable."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if re.fullmatch(r"\d+(\.\d+)?", text):
                return datetime.fromtimestamp(float(text), UTC)
            parsed = datetime.fromisoformat(text)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def check_fresh(timestamp: str | None, now: datetime, max_age: float) -> None:
    """A signed unix timestamp must be within `max_age` seconds of now, either way (clock skew)."""
    if not timestamp or not re.fullmatch(r"\d{1,12}", timestamp.strip()):
        raise Rejected("missing or malformed timestamp")
    if abs(now.timestamp() - int(timestamp)) > max_age:
        raise Rejected("timestamp outside the replay window")


def header(request: WebhookRequest, name: str) -> str:
    return (request.headers.get(name) or "").strip()


CertFetcher = Callable[[str], bytes]
Confirmer = Callable[[str], None]


def collect_records(payload: object, parse: Callable[[dict], "NormalizedEvent | None"],
                    label: Callable[[dict], str], what: str) -> Verified:
    """For providers that post a JSON array of event objects (or one object): parse each one,
    or note its type as ignored. One unreadable record (not an object, no id, a field of the
    wrong type) is noted as ignored and never loses the rest of the batch."""
    result = Verified()
    for number, record in enumerate(payload if isinstance(payload, list) else [payload], start=1):
        try:
            if not isinstance(record, dict):
                raise Rejected(f"{what} is not a JSON object", 400)
            event = parse(record)
        except (Rejected, ValueError, TypeError, KeyError, AttributeError) as exc:
            result.ignored.append(f"unreadable {what} #{number} ({str(exc)[:80]})")
            continue
        if event is None:
            result.ignored.append(str(label(record))[:80])
        else:
            result.events.append(event)
    return result
