"""Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key.

The JSON body is `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`.
The signature covers only timestamp and token, not the event, so besides the replay window
(`max_age_seconds`) every token is single-use for one body: the route stores what was signed (webhooks/nonces.py)
(SHA-256 of timestamp and token) with a SHA-256 of the canonical event-data (webhook_nonce) in
the same transaction as the events, also when the event is one we ignore. The same token with
any other body is refused, even with the same event id (a true re-delivery of the same event is
answered 200 and changes nothing). Events: delivered, failed
(hard or soft by newsletter/delivery/bounce_class.py: the remote server's code and text, then the
severity), complained, unsubscribed; our reference comes
back in `user-variables` (sent as `v:reference`, newsletter/delivery/transports/mailgun.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json

from newsletter.config import MailgunWebhookSettings
from newsletter.feedback.events import EventKind, NormalizedEvent, bounce_kind, clean_email, clean_reference
from newsletter.feedback.webhooks.base import NONCE_KEEP_SECONDS, Rejected, Verified, WebhookRequest, check_fresh, load_json, parse_time

PROVIDER = "mailgun"


class MailgunWebhook:
    """POST /webhooks/mailgun, checked with `[webhooks.mailgun] signing_key`."""

    name = PROVIDER

    def __init__(self, cfg: MailgunWebhookSettings) -> None:
        self.cfg = cfg

    def configured(self) -> bool:
        return bool(self.cfg.signing_key.get_secret_value())

    def verify_and_parse(self, request: WebhookRequest) -> Verified:
        payload = load_json(request.body)
        if not isinstance(payload, dict):
            raise Rejected("missing signature")
        timestamp, token = verify(self.cfg, request, payload.get("signature"))
        data = payload.get("event-data")
        if not isinstance(data, dict):
            raise Rejected("no event-data", 400)
        event = parse_event(data)
        # A token must be remembered for as long as its timestamp passes the replay window.
        result = Verified(nonce=signed_token(timestamp, token), nonce_event=body_digest(data),
                          nonce_keep_seconds=max(NONCE_KEEP_SECONDS, 2.0 * self.cfg.max_age_seconds))
        if event is None:
            result.ignored.append(f"{data.get('event')}")
        else:
            result.events.append(event)
        return result


def verify(cfg: MailgunWebhookSettings, request: WebhookRequest, signature: object) -> tuple[str, str]:
    if not isinstance(signature, dict):
        raise Rejected("missing signature")
    timestamp, token, given = (str(signature.get(k) or "") for k in ("timestamp", "token", "signature"))
    if not (timestamp and token and given):
        raise Rejected("missing signature")
    check_fresh(timestamp, request.now, cfg.max_age_seconds)
    expected = hmac.new(cfg.signing_key.get_secret_value().encode(), (timestamp + token).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.strip().lower().encode()):
        raise Rejected("bad signature")
    if len(token) > 128:
        raise Rejected("malformed token")
    return timestamp, token


def signed_token(timestamp: str, token: str) -> str:
    """What the signature covers, hashed: the key under which the token is single-use."""
    return hashlib.sha256(f"{timestamp}:{token}".encode()).hexdigest()


def body_digest(data: dict) -> str:
    """The event the token came with, hashed in a canonical form: a true re-delivery (same
    event) matches, any other body under the same token does not, whatever its event id."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_event(data: dict) -> NormalizedEvent | None:
    name = data.get("event")
    status = data.get("delivery-status") if isinstance(data.get("delivery-status"), dict) else {}
    if name == "delivered":
        kind = EventKind.delivered
    elif name == "failed":
        kind = bounce_kind(status.get("code"), f"{status.get('description') or ''} {status.get('message') or ''}",
                           data.get("severity"))
    elif name == "complained":
        kind = EventKind.complained
    elif name == "unsubscribed":
        kind = EventKind.unsubscribed
    else:
        return None
    if not data.get("id"):
        raise Rejected("event-data has no id", 400)
    message = data.get("message") if isinstance(data.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    variables = data.get("user-variables") if isinstance(data.get("user-variables"), dict) else {}
    detail = " ".join(str(x) for x in (data.get("severity"), data.get("reason"), status.get("code"),
                                       status.get("description") or status.get("message")) if x).strip()
    message_id = str(headers.get("message-id") or "").strip().strip("<>") or None
    return NormalizedEvent(
        kind=kind,
        email=clean_email(data.get("recipient")),
        provider=PROVIDER,
        provider_event_id=str(data["id"]),
        provider_message_id=message_id,  # the transport stores Mailgun's id without brackets
        reference=clean_reference(variables.get("reference")),
        occurred_at=parse_time(data.get("timestamp")),
        detail=detail,
        message_id=f"<{message_id}>" if message_id else None,  # ours: matched like SendGrid's and SES's
        raw=data,
    )
