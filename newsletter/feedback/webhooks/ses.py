"""Amazon SES through SNS: the SNS message signature.

SNS signs a canonical string of the message's fields (SignatureVersion 1: SHA1withRSA,
2: SHA256withRSA) with the key of the X.509 certificate at `SigningCertURL`. That URL (and a
`SubscribeURL`) must be https on an SNS host, sns.<region>.amazonaws.com(.cn) (SNS_HOST); any
other is refused before anything is fetched. Certificates are fetched with requests and cached,
and must be SNS's, issued through a trusted CA (newsletter/feedback/webhooks/snscert.py).

Every AWS account can sign SNS messages with that same certificate, so a valid signature only
proves the message came through SNS, not from *our* topic: `[webhooks.ses] topic_arn` (one ARN
or several, comma-separated) is the allow-list, and without it the endpoint is not enabled.

SubscriptionConfirmation: confirmed by a GET of SubscribeURL, only when verified and for an
allowed topic. Notification: its Message is SES's JSON, `notificationType` (identity
notifications) or `eventType` (configuration-set event publishing): Bounce (bounceType
hard or soft per recipient by newsletter/delivery/bounce_class.py: its status and diagnostic, then
bounceType), Complaint, Delivery, DeliveryDelay → deferred. The reference is
the message tag `reference` (newsletter/delivery/transports/ses.py) or our delivery header.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from newsletter.config import SesWebhookSettings
from newsletter.mail.compose import DELIVERY_HEADER
from newsletter.feedback.events import EventKind, NormalizedEvent, bounce_kind, clean_email, clean_reference
from newsletter.feedback.webhooks.base import Rejected, Verified, WebhookRequest, load_json, parse_time
from newsletter.feedback.webhooks.snscert import UntrustedCertificate, certifi_roots, check_sns_certificate, load_certificate

log = logging.getLogger(__name__)
PROVIDER = "ses"
# sns.<region>.amazonaws.com(.cn): a region, so not S3 (a bucket named "sns" is sns.s3.amazonaws.com
# or sns.s3-<region>.amazonaws.com) nor any other service's endpoint.
SNS_HOST = re.compile(r"^sns\.[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}\.amazonaws\.com(\.cn)?$")
NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_CERT_BYTES = 64 * 1024
CertFetcher = Callable[[str], bytes]  # URL -> certificate bytes (PEM or DER)
Confirmer = Callable[[str], None]  # GETs a SubscribeURL
Roots = Callable[[], tuple[x509.Certificate, ...]]  # the CA certificates an SNS chain must end in


def topic_arns(cfg: SesWebhookSettings) -> set[str]:
    return {part for part in re.split(r"[\s,]+", cfg.topic_arn) if part}


def check_sns_url(url: object, what: str) -> str:
    """https, default port, no user info, and an SNS host; raises Rejected otherwise."""
    if not isinstance(url, str) or not url:
        raise Rejected(f"missing {what}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise Rejected(f"malformed {what}") from None
    if (parts.scheme != "https" or port not in (None, 443) or parts.username is not None
            or parts.password is not None or not SNS_HOST.match(parts.hostname or "")):
        raise Rejected(f"{what} is not an https URL on an SNS host")
    return url


_cert_cache: dict[str, bytes] = {}
_cert_lock = threading.Lock()


def fetch_certificate(url: str) -> bytes:
    """The default fetcher: GET with requests (TLS verified), cached per URL for the process."""
    with _cert_lock:
        if url in _cert_cache:
            return _cert_cache[url]
    response = requests.get(url, timeout=(5, 10), allow_redirects=False, stream=True)
    response.raise_for_status()
    data = response.raw.read(MAX_CERT_BYTES + 1, decode_content=True)
    response.close()
    if len(data) > MAX_CERT_BYTES:
        raise ValueError("certificate too large")
    with _cert_lock:
        if len(_cert_cache) >= 32:
            _cert_cache.clear()
        _cert_cache[url] = data
    return data


def confirm_subscription(url: str) -> None:
    """The default confirmer: GET SubscribeURL (SNS answers with an XML ConfirmSubscriptionResponse)."""
    response = requests.get(url, timeout=(5, 10), allow_redirects=False)
    response.raise_for_status()


def canonical(message: dict) -> bytes:
    kind = message.get("Type")
    if kind == "Notification":
        fields = NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        fields = SUBSCRIPTION_FIELDS
    else:
        raise Rejected(f"unknown SNS message type {str(kind)[:40]!r}")
    lines = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":  # the only optional field
                continue
            raise Rejected(f"SNS message without {name}")
        if not isinstance(value, str):
            raise Rejected(f"SNS field {name} is not a string")
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode("utf-8")


def verify(message: dict, fetch: CertFetcher, now: datetime, roots: tuple[x509.Certificate, ...]) -> None:
    algorithm = HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise Rejected("unsupported SignatureVersion")
    if not message.get("Signature"):
        raise Rejected("missing signature")
    url = check_sns_url(message.get("SigningCertURL"), "SigningCertURL")
    text = canonical(message)
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("malformed signature") from None
    try:
        pem = fetch(url)
    except Exception as exc:
        log.warning("ses: cannot fetch the signing certificate %s: %s", url, exc)
        raise Rejected("signing certificate unavailable") from None
    try:
        certificate = load_certificate(pem)
        check_sns_certificate(certificate, now, fetch, roots)
    except UntrustedCertificate as exc:
        log.warning("ses: signing certificate %s refused: %s", url, exc)
        raise Rejected(f"signing certificate refused: {exc}") from None
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Rejected("signing certificate has no RSA key")
    try:
        key.verify(signature, text, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Rejected("bad signature") from None


class SesWebhook:
    """POST /webhooks/ses: SNS messages for the topics in `[webhooks.ses] topic_arn`.

    Built with how the signing certificate is fetched (`fetch_cert`), the trust roots its chain
    must end in (`sns_roots`) and how a subscription is confirmed (`confirm`): the defaults use
    the network and certifi; tests pass functions that serve a self-made CA. The URL host check
    runs before either is called."""

    name = PROVIDER

    def __init__(self, cfg: SesWebhookSettings, *, fetch_cert: CertFetcher | None = None,
                 sns_roots: Roots | None = None, confirm: Confirmer | None = None) -> None:
        self.cfg = cfg
        self.fetch_cert = fetch_cert or fetch_certificate
        self.sns_roots = sns_roots or certifi_roots
        self.confirm = confirm or confirm_subscription

    def configured(self) -> bool:
        return bool(topic_arns(self.cfg))

    def verify_and_parse(self, request: WebhookRequest) -> Verified:
        message = load_json(request.body)
        if not isinstance(message, dict):
            raise Rejected("missing signature")
        verify(message, self.fetch_cert, request.now, self.sns_roots())
        if message.get("TopicArn") not in topic_arns(self.cfg):
            raise Rejected("topic not in [webhooks.ses] topic_arn", 403)
        kind = message["Type"]
        if kind == "SubscriptionConfirmation":
            self.confirm(check_sns_url(message.get("SubscribeURL"), "SubscribeURL"))
            log.info("ses: confirmed the SNS subscription to %s", message["TopicArn"])
            return Verified(note="subscription confirmed")
        if kind == "UnsubscribeConfirmation":
            log.warning("ses: SNS says the subscription to %s was removed", message["TopicArn"])
            return Verified(note="unsubscribe confirmation noted")
        return read_notification(message)


def read_notification(message: dict) -> Verified:
    """A verified Notification: SES's JSON in `Message`, one event per recipient."""
    try:
        body = load_json(message["Message"])
    except Rejected:  # signed by SNS but not SES's JSON: noted as ignored below
        body = None
    result = Verified()
    events = parse_notification(body, str(message["MessageId"])) if isinstance(body, dict) else None
    if events is None:
        name = (body.get("eventType") or body.get("notificationType")) if isinstance(body, dict) else "non-JSON"
        result.ignored.append(str(name))
    else:
        result.events.extend(events)
    return result


def _recipients(section: dict, key: str) -> list[tuple[str, str]]:
    rows = section.get(key) if isinstance(section.get(key), list) else []
    out = []
    for row in rows:
        if isinstance(row, dict):  # bouncedRecipients, complainedRecipients, delayedRecipients
            detail = " ".join(str(row.get(k)) for k in ("status", "diagnosticCode") if row.get(k))
            out.append((clean_email(row.get("emailAddress")), detail))
        else:  # delivery.recipients is a list of strings
            out.append((clean_email(row), ""))
    return [(email, detail) for email, detail in out if email]


def _mail_reference(mail: dict) -> tuple[str | None, str | None]:
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    reference = clean_reference(tags.get("reference"))
    message_id = None
    headers = mail.get("headers") if isinstance(mail.get("headers"), list) else []
    for item in headers:
        if not isinstance(item, dict):
            continue
        name = str(item.get("name") or "").lower()
        if name == DELIVERY_HEADER.lower() and reference is None:
            reference = clean_reference(item.get("value"))
        elif name == "message-id":
            message_id = str(item.get("value") or "") or None
    return reference, message_id


def parse_notification(body: dict, sns_message_id: str) -> list[NormalizedEvent] | None:
    name = body.get("eventType") or body.get("notificationType")
    mail = body.get("mail") if isinstance(body.get("mail"), dict) else {}
    if name == "Bounce":
        section = body.get("bounce") if isinstance(body.get("bounce"), dict) else {}
        kind = EventKind.bounced_soft  # per recipient below
        recipients = _recipients(section, "bouncedRecipients")
        extra = f"{section.get('bounceType')}/{section.get('bounceSubType')}"
    elif name == "Complaint":
        section = body.get("complaint") if isinstance(body.get("complaint"), dict) else {}
        kind, recipients = EventKind.complained, _recipients(section, "complainedRecipients")
        extra = str(section.get("complaintFeedbackType") or "")
    elif name == "Delivery":
        section = body.get("delivery") if isinstance(body.get("delivery"), dict) else {}
        kind, recipients = EventKind.delivered, _recipients(section, "recipients")
        extra = str(section.get("smtpResponse") or "")
    elif name == "DeliveryDelay":
        section = body.get("deliveryDelay") if isinstance(body.get("deliveryDelay"), dict) else {}
        kind, recipients = EventKind.deferred, _recipients(section, "delayedRecipients")
        extra = str(section.get("delayType") or "")
    else:
        return None
    reference, message_id = _mail_reference(mail)
    return [
        NormalizedEvent(
            kind=bounce_kind(None, detail, section.get("bounceType")) if name == "Bounce" else kind,
            email=email,
            provider=PROVIDER,
            provider_event_id=f"{sns_message_id}:{email}",
            provider_message_id=str(mail.get("messageId") or "") or None,
            reference=reference,
            occurred_at=parse_time(section.get("timestamp")),
            detail=f"{extra} {detail}".strip(),
            message_id=message_id,
            raw=body,
        )
        for email, detail in recipients
    ]
