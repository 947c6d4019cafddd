"""Postmark: HTTP basic auth on the webhook URL (https://USER:PASSWORD@host/webhooks/postmark).

Postmark signs nothing; the credentials it sends in `Authorization: Basic` are compared with
`[webhooks.postmark] username`/`password` in constant time. One record per request: Bounce
(Type HardBounce → hard, SoftBounce/Transient → soft), SpamComplaint, Delivery and
SubscriptionChange (SuppressSending true: a suppression by the reader → unsubscribed; one
Postmark made after a hard bounce or a complaint → that). The delivery reference travels as
`Metadata.reference` (newsletter/delivery/transports/postmark.py).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from newsletter.config import PostmarkWebhookSettings
from newsletter.feedback.events import EventKind, NormalizedEvent, bounce_kind, clean_email, clean_reference
from newsletter.feedback.webhooks.base import Rejected, Verified, WebhookRequest, collect_records, header, load_json, parse_time

PROVIDER = "postmark"
BOUNCE_TYPES = {
    "HardBounce": EventKind.bounced_hard,
    "BadEmailAddress": EventKind.bounced_hard,
    "SoftBounce": EventKind.bounced_soft,
    "Transient": EventKind.bounced_soft,
    "SpamComplaint": EventKind.complained,
    "Unsubscribe": EventKind.unsubscribed,
}
SUPPRESSION_REASONS = {"HardBounce": EventKind.bounced_hard, "SpamComplaint": EventKind.complained}


class PostmarkWebhook:
    """POST /webhooks/postmark, checked against `[webhooks.postmark]`."""

    name = PROVIDER

    def __init__(self, cfg: PostmarkWebhookSettings) -> None:
        self.cfg = cfg

    def configured(self) -> bool:
        return bool(self.cfg.username.get_secret_value() and self.cfg.password.get_secret_value())

    def verify_and_parse(self, request: WebhookRequest) -> Verified:
        check_auth(self.cfg, header(request, "authorization"))
        return collect_records(load_json(request.body), parse_record,
                               lambda r: f"{r.get('RecordType')}/{r.get('Type', '')}".rstrip("/"), "a record")


def check_auth(cfg: PostmarkWebhookSettings, value: str) -> None:
    challenge = {"WWW-Authenticate": 'Basic realm="webhooks"'}
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise Rejected("missing basic auth credentials", headers=challenge)
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        raise Rejected("malformed basic auth credentials", headers=challenge) from None
    # Both comparisons always run: the time taken does not tell which one failed.
    ok_user = hmac.compare_digest(user, cfg.username.get_secret_value().encode())
    ok_password = hmac.compare_digest(password, cfg.password.get_secret_value().encode())
    if not (sep and ok_user and ok_password):
        raise Rejected("wrong basic auth credentials", headers=challenge)


def parse_record(record: dict) -> NormalizedEvent | None:
    record_type = record.get("RecordType")
    metadata = record.get("Metadata") if isinstance(record.get("Metadata"), dict) else {}
    common = dict(provider=PROVIDER, provider_message_id=_str(record.get("MessageID")),
                  reference=clean_reference(metadata.get("reference")), raw=record)
    if record_type in ("Bounce", "SpamComplaint"):
        kind = EventKind.complained if record_type == "SpamComplaint" else BOUNCE_TYPES.get(record.get("Type"))
        if kind is None or record.get("ID") is None:
            return None
        if kind in (EventKind.bounced_hard, EventKind.bounced_soft):  # the one classification
            kind = bounce_kind(None, record.get("Details"), record.get("Type"))
        detail = " ".join(str(record.get(k) or "") for k in ("Type", "Description", "Details")).strip()
        return NormalizedEvent(kind=kind, email=clean_email(record.get("Email")),
                               provider_event_id=f"{record_type.lower()}:{record['ID']}",
                               occurred_at=parse_time(record.get("BouncedAt")), detail=detail, **common)
    if record_type == "Delivery":
        email = clean_email(record.get("Recipient"))
        return NormalizedEvent(kind=EventKind.delivered, email=email,
                               provider_event_id=f"delivery:{record.get('MessageID')}:{email}",
                               occurred_at=parse_time(record.get("DeliveredAt")),
                               detail=str(record.get("Details") or ""), **common)
    if record_type == "SubscriptionChange":
        if record.get("SuppressSending") is not True:
            return None  # a reactivation in Postmark: our own list decides who gets mail
        reason = str(record.get("SuppressionReason") or "")
        email = clean_email(record.get("Recipient"))
        return NormalizedEvent(kind=SUPPRESSION_REASONS.get(reason, EventKind.unsubscribed), email=email,
                               provider_event_id=f"subscription:{record.get('MessageID')}:{email}:"
                                                 f"{record.get('ChangedAt')}",
                               occurred_at=parse_time(record.get("ChangedAt")),
                               detail=f"SubscriptionChange {reason} ({record.get('Origin') or ''})", **common)
    return None


def _str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
