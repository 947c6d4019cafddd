"""Resend: webhooks signed the Svix way.

Headers `svix-id`, `svix-timestamp` and `svix-signature` (space-separated `v1,<base64>` entries);
the signed content is f"{id}.{timestamp}.{body}", HMAC-SHA256 with the base64 key after the
`whsec_` prefix of `[webhooks.resend] secret`. A timestamp further than `max_age_seconds` from
now is refused. `svix-id` is the same on every retry of a message, so it is the event id.
Types: email.delivered, email.delivery_delayed, email.bounced (bounce.type Permanent → hard,
Transient/Undetermined → soft), email.complained. Our reference is the tag `reference`
(newsletter/delivery/transports/resend.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from newsletter.config import ResendWebhookSettings
from newsletter.feedback.events import EventKind, NormalizedEvent, bounce_kind, clean_email, clean_reference
from newsletter.feedback.webhooks.base import NotConfigured, Rejected, Verified, WebhookRequest, check_fresh, header, load_json, parse_time

PROVIDER = "resend"
SIMPLE = {
    "email.delivered": EventKind.delivered,
    "email.delivery_delayed": EventKind.deferred,
    "email.complained": EventKind.complained,
}


class ResendWebhook:
    """POST /webhooks/resend, checked with `[webhooks.resend] secret`."""

    name = PROVIDER

    def __init__(self, cfg: ResendWebhookSettings) -> None:
        self.cfg = cfg

    def configured(self) -> bool:
        return bool(self.cfg.secret.get_secret_value())

    def verify_and_parse(self, request: WebhookRequest) -> Verified:
        msg_id = verify(self.cfg, request)
        payload = load_json(request.body)
        if not isinstance(payload, dict):
            raise Rejected("the body is not a JSON object", 400)
        result = Verified()
        events = parse(payload, msg_id)
        if events is None:
            result.ignored.append(str(payload.get("type")))
        else:
            result.events.extend(events)
        return result


def signing_key(secret: str) -> bytes:
    secret = secret.strip()
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise NotConfigured("[webhooks.resend] secret is not whsec_<base64>") from None


def verify(cfg: ResendWebhookSettings, request: WebhookRequest) -> str:
    msg_id, timestamp = header(request, "svix-id"), header(request, "svix-timestamp")
    signatures = header(request, "svix-signature")
    if not (msg_id and timestamp and signatures):
        raise Rejected("missing signature headers")
    check_fresh(timestamp, request.now, cfg.max_age_seconds)
    key = signing_key(cfg.secret.get_secret_value())
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + request.body, hashlib.sha256).digest()
    expected = base64.b64encode(digest)
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            return msg_id
    raise Rejected("bad signature")


def _tags(data: dict) -> dict:
    """Tags arrive as [{"name": …, "value": …}] or as {"name": "value"}."""
    tags = data.get("tags")
    if isinstance(tags, dict):
        return tags
    if isinstance(tags, list):
        return {t.get("name"): t.get("value") for t in tags if isinstance(t, dict)}
    return {}


def parse(payload: dict, msg_id: str) -> list[NormalizedEvent] | None:
    name = payload.get("type")
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if name in SIMPLE:
        kind = SIMPLE[name]
    elif name == "email.bounced":
        bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
        kind = bounce_kind(None, bounce.get("message"), bounce.get("type") or "Undetermined")
    else:
        return None
    bounce = data.get("bounce") if isinstance(data.get("bounce"), dict) else {}
    detail = " ".join(str(x) for x in (bounce.get("type"), bounce.get("subType"), bounce.get("message")) if x)
    recipients = data.get("to") if isinstance(data.get("to"), list) else [data.get("to")]
    recipients = [clean_email(r) for r in recipients if clean_email(r)]
    return [
        NormalizedEvent(
            kind=kind,
            email=email,
            provider=PROVIDER,
            provider_event_id=msg_id if len(recipients) == 1 else f"{msg_id}:{email}",
            provider_message_id=str(data.get("email_id") or "") or None,
            reference=clean_reference(_tags(data).get("reference")),
            occurred_at=parse_time(payload.get("created_at")),
            detail=detail,
            raw=payload,
        )
        for email in recipients
    ]
