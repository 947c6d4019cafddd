"""SendGrid: the Signed Event Webhook.

SendGrid signs `X-Twilio-Email-Event-Webhook-Timestamp` + the raw body with ECDSA P-256 /
SHA-256 and sends the base64 DER signature in `X-Twilio-Email-Event-Webhook-Signature`; the
verification key is `[webhooks.sendgrid] public_key` (base64 DER SubjectPublicKeyInfo, as the
SendGrid settings page shows it, or PEM). A timestamp further than `max_age_seconds` from now is
refused. The body is a JSON array of events; our `custom_args.reference` comes back as a
top-level `reference` key of each event (newsletter/delivery/transports/sendgrid.py).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.config import SendgridWebhookSettings
from newsletter.feedback.events import EventKind, NormalizedEvent, bounce_kind, clean_email, clean_reference
from newsletter.feedback.webhooks.base import NotConfigured, Rejected, Verified, WebhookRequest, check_fresh, collect_records, header, load_json, parse_time

PROVIDER = "sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
SIMPLE = {
    "delivered": EventKind.delivered,
    "deferred": EventKind.deferred,
    "spamreport": EventKind.complained,
    "unsubscribe": EventKind.unsubscribed,
    "group_unsubscribe": EventKind.unsubscribed,
}
# `dropped`: SendGrid did not even try, because of its own suppression lists. Other reasons
# (spam content, quota, bad SMTPAPI header) say nothing about the address and are ignored.
DROPPED = {
    "bounced address": EventKind.bounced_hard,
    "invalid": EventKind.bounced_hard,
    "spam reporting address": EventKind.complained,
    "unsubscribed address": EventKind.unsubscribed,
}


class SendgridWebhook:
    """POST /webhooks/sendgrid, checked with `[webhooks.sendgrid] public_key`."""

    name = PROVIDER

    def __init__(self, cfg: SendgridWebhookSettings) -> None:
        self.cfg = cfg

    def configured(self) -> bool:
        return bool(self.cfg.public_key.strip())

    def verify_and_parse(self, request: WebhookRequest) -> Verified:
        verify(self.cfg, request)
        return collect_records(load_json(request.body), parse_event, lambda item: str(item.get("event")),
                               "an event")


@functools.lru_cache(maxsize=8)
def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    value = value.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(value.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(value, validate=True))
    except Exception as exc:  # bad base64, bad DER/PEM, unsupported key types
        raise NotConfigured(f"[webhooks.sendgrid] public_key is not a readable public key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise NotConfigured("[webhooks.sendgrid] public_key is not an ECDSA P-256 key")
    return key


def verify(cfg: SendgridWebhookSettings, request: WebhookRequest) -> None:
    signature, timestamp = header(request, SIGNATURE), header(request, TIMESTAMP)
    if not signature or not timestamp:
        raise Rejected("missing signature headers")
    check_fresh(timestamp, request.now, cfg.max_age_seconds)
    key = load_public_key(cfg.public_key)
    try:
        key.verify(base64.b64decode(signature, validate=True), timestamp.encode() + request.body,
                   ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Rejected("bad signature") from None


def x_message_id(sg_message_id: str) -> str | None:
    """sg_message_id is the X-Message-Id we stored, then ".filter…" (or ".recvd-…")."""
    return re.split(r"\.(?:filter|recvd)", sg_message_id, maxsplit=1)[0] or None


def parse_event(item: dict) -> NormalizedEvent | None:
    name = item.get("event")
    if name in SIMPLE:
        kind = SIMPLE[name]
    elif name == "bounce":  # type "bounce" is SendGrid's permanent verdict, "blocked" its temporary one
        kind = bounce_kind(item.get("status"), item.get("reason"), "soft" if item.get("type") == "blocked" else "hard")
    elif name == "dropped":
        kind = DROPPED.get(str(item.get("reason") or "").strip().lower())
        if kind is None:
            return None
    else:
        return None
    event_id = item.get("sg_event_id") or hashlib.sha256(
        json.dumps(item, sort_keys=True).encode()).hexdigest()
    sg_message_id = str(item.get("sg_message_id") or "")
    detail = " ".join(str(item.get(k) or "") for k in ("type", "status", "reason", "response")).strip()
    return NormalizedEvent(
        kind=kind,
        email=clean_email(item.get("email")),
        provider=PROVIDER,
        provider_event_id=str(event_id),
        provider_message_id=x_message_id(sg_message_id),
        reference=clean_reference(item.get("reference")),
        occurred_at=parse_time(item.get("timestamp")),
        detail=detail,
        message_id=str(item.get("smtp-id") or "") or None,
        raw=item,
    )
