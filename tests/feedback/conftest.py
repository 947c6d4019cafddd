"""A real uvicorn server with every provider webhook configured from keys made here, and the
signing each provider does, so tests post what the provider would post."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select, update

from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.feedback.models import WebhookEvent
from newsletter.feedback.webhooks import providers
from newsletter.feedback.webhooks.ses import SesWebhook, canonical
from newsletter.subscribers.models import ConsentEvent, Subscriber, Suppression
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET
from tests.web.conftest import Live, live_factory  # noqa: F401  (the fixture, shared)

WEEK = "2026-W48"  # a week of the sample content
TOPIC = "arn:aws:sns:us-east-1:123456789012:weekly-verdicts-ses"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"


def iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Keys:
    sendgrid: ec.EllipticCurvePrivateKey
    sns_key: rsa.RSAPrivateKey
    sns_cert_pem: bytes
    sns_root: x509.Certificate  # the trust root the test server uses instead of certifi's
    sns_root_key: rsa.RSAPrivateKey


def make_certificate(subject: str, key, issuer: x509.Name | None = None, signer=None, ca: bool = False,
                     days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    """A certificate for `subject`, issued by `issuer` with `signer` (self-signed without)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + timedelta(days=days[0]))
            .not_valid_after(now + timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signer or key, hashes.SHA256()))


@pytest.fixture(scope="session")
def keys() -> Keys:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = make_certificate("Test Root CA for SNS", root_key, ca=True, days=(-10, 3650))
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = make_certificate("sns.amazonaws.com", sns_key, issuer=root.subject, signer=root_key)
    return Keys(ec.generate_private_key(ec.SECP256R1()), sns_key, cert.public_bytes(serialization.Encoding.PEM),
                root, root_key)


@dataclass
class Hooks:
    live: Live
    keys: Keys
    postmark_auth: tuple[str, str]
    mailgun_key: str
    resend_secret: str
    fetched: list[str] = field(default_factory=list)
    confirmed: list[str] = field(default_factory=list)

    def url(self, provider: str) -> str:
        return f"{self.live.url}/webhooks/{provider}"

    # --- signing as each provider does -------------------------------------------------------

    def postmark(self, record: dict, auth: tuple[str, str] | None = None) -> requests.Response:
        return requests.post(self.url("postmark"), json=record, auth=auth or self.postmark_auth, timeout=10)

    def sendgrid_headers(self, body: bytes, timestamp: int | None = None) -> dict:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = self.keys.sendgrid.sign(ts.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": ts}

    def sendgrid(self, events: list[dict], timestamp: int | None = None) -> requests.Response:
        body = json.dumps(events).encode()
        return requests.post(self.url("sendgrid"), data=body, headers=self.sendgrid_headers(body, timestamp), timeout=10)

    def mailgun_signature(self, timestamp: int | None = None, token: str | None = None) -> dict:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        token = token or secrets.token_hex(25)
        digest = hmac.new(self.mailgun_key.encode(), (ts + token).encode(), hashlib.sha256).hexdigest()
        return {"timestamp": ts, "token": token, "signature": digest}

    def mailgun(self, event_data: dict, signature: dict | None = None) -> requests.Response:
        payload = {"signature": signature or self.mailgun_signature(), "event-data": event_data}
        return requests.post(self.url("mailgun"), json=payload, timeout=10)

    def svix_headers(self, body: bytes, msg_id: str, timestamp: int | None = None) -> dict:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        key = base64.b64decode(self.resend_secret.removeprefix("whsec_"))
        signature = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest())
        return {"Content-Type": "application/json", "svix-id": msg_id, "svix-timestamp": ts,
                "svix-signature": f"v1,{signature.decode()}"}

    def resend(self, payload: dict, msg_id: str | None = None) -> requests.Response:
        body = json.dumps(payload).encode()
        msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
        return requests.post(self.url("resend"), data=body, headers=self.svix_headers(body, msg_id), timeout=10)

    def sns(self, sns_type: str = "Notification", message: dict | str = "", version: str = "1",
            **fields) -> dict:
        """An SNS message signed with the test's key, as SNS posts it."""
        doc = {"Type": sns_type, "MessageId": secrets.token_hex(16), "TopicArn": TOPIC,
               "Message": message if isinstance(message, str) else json.dumps(message),
               "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
               "SignatureVersion": version, "SigningCertURL": CERT_URL, **fields}
        if sns_type != "Notification":
            doc.setdefault("Token", secrets.token_hex(32))
            doc.setdefault("SubscribeURL", "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
                                           f"&TopicArn={TOPIC}&Token={doc['Token']}")
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.keys.sns_key.sign(canonical(doc), padding.PKCS1v15(), algorithm)
        doc["Signature"] = base64.b64encode(signature).decode()
        return doc

    def post_sns(self, doc: dict | bytes) -> requests.Response:
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        kind = json.loads(body).get("Type", "") if not isinstance(doc, bytes) else ""
        return requests.post(self.url("ses"), data=body, timeout=10,
                             headers={"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": kind})

    # --- the database --------------------------------------------------------------------------

    def add(self, *emails: str) -> None:
        with session_scope(self.live.engine) as session:
            for email in emails:
                upsert_active(session, email, "", [], "import", UpsertResult())

    def send_issue(self) -> dict[str, Delivery]:
        """Draft and send the sample week's issue with the file transport: deliveries by address."""
        settings, engine = self.live.settings, self.live.engine
        issue = draft_issue(engine, settings, WEEK).issue
        start_send(engine, issue.id)
        transport = make_transport(settings)
        deliver(engine, settings, transport, TEST_SECRET, issue.id)
        transport.close()
        with session_scope(engine) as session:
            rows = session.execute(select(Delivery, Subscriber.email)
                                   .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                                   .where(Delivery.issue_id == issue.id)).all()
        return {email: delivery for delivery, email in rows}

    def set_provider_id(self, delivery: Delivery, provider_id: str) -> None:
        with session_scope(self.live.engine) as session:
            session.execute(update(Delivery).where(Delivery.id == delivery.id).values(provider_message_id=provider_id))

    def status(self, email: str) -> str | None:
        with session_scope(self.live.engine) as session:
            return session.execute(select(Subscriber.status).where(Subscriber.email == email)).scalar()

    def suppression(self, email: str) -> str | None:
        with session_scope(self.live.engine) as session:
            return session.execute(select(Suppression.reason).where(Suppression.email == email)).scalar()

    def consents(self, email: str) -> list[tuple[str, str]]:
        """(kind, provider) of the events after the setup import; all of them have source webhook."""
        with session_scope(self.live.engine) as session:
            rows = session.execute(
                select(ConsentEvent.kind, ConsentEvent.source, ConsentEvent.detail)
                .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
                .where(Subscriber.email == email, ConsentEvent.source != "import").order_by(ConsentEvent.id)).all()
        assert {source for _kind, source, _detail in rows} <= {"webhook"}
        return [(kind, detail.split(":", 1)[0]) for kind, _source, detail in rows]

    def events(self, email: str | None = None) -> list[tuple[str, str, int | None]]:
        with session_scope(self.live.engine) as session:
            query = select(WebhookEvent.provider, WebhookEvent.kind, WebhookEvent.delivery_id).order_by(WebhookEvent.id)
            if email:
                query = query.where(WebhookEvent.email == email)
            return [tuple(r) for r in session.execute(query).all()]

    def snapshot(self) -> tuple:
        """Everything a webhook can change: compared before and after a refused request."""
        with session_scope(self.live.engine) as session:
            count = lambda model: session.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
            statuses = tuple(session.execute(select(Subscriber.email, Subscriber.status).order_by(Subscriber.id)).all())
            return (count(WebhookEvent), count(ConsentEvent), count(Suppression), statuses)


def make_hooks(live_factory, keys: Keys, db_url: str | None) -> Hooks:  # noqa: F811
    postmark_auth = ("postmark-" + secrets.token_hex(4), secrets.token_urlsafe(18))
    mailgun_key = secrets.token_hex(16)
    resend_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    public = keys.sendgrid.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    live = live_factory(db_url, **{
        "WEBHOOKS__POSTMARK__USERNAME": postmark_auth[0], "WEBHOOKS__POSTMARK__PASSWORD": postmark_auth[1],
        "WEBHOOKS__SENDGRID__PUBLIC_KEY": base64.b64encode(public).decode(),
        "WEBHOOKS__MAILGUN__SIGNING_KEY": mailgun_key, "WEBHOOKS__RESEND__SECRET": resend_secret,
        "WEBHOOKS__SES__TOPIC_ARN": TOPIC,
        "WEB__ALLOWED_HOSTS": '["testserver"]',  # in-process TestClient requests (test_hostile.py) name this host
    })
    hooks = Hooks(live, keys, postmark_auth, mailgun_key, resend_secret)

    def fetch(url: str) -> bytes:  # instead of an HTTPS GET: the same bytes SNS would serve
        hooks.fetched.append(url)
        return keys.sns_cert_pem

    serve_certificates(hooks, fetch)
    return hooks


def serve_certificates(hooks: Hooks, fetch) -> None:
    """The live server's SES webhook, rebuilt to fetch certificates with `fetch` and trust the
    test root: what the provider needs is passed at construction, as the app does with the defaults."""
    settings = hooks.live.app.state.webhooks.settings
    hooks.live.app.state.webhooks.providers = providers(settings, ses=SesWebhook(
        settings.webhooks.ses, fetch_cert=fetch, sns_roots=lambda: (hooks.keys.sns_root,),
        confirm=hooks.confirmed.append))


@pytest.fixture
def hooks(live_factory, keys, db_url) -> Hooks:  # noqa: F811
    """On SQLite and on PostgreSQL."""
    return make_hooks(live_factory, keys, db_url)


@pytest.fixture
def hooks_lite(live_factory, keys) -> Hooks:  # noqa: F811
    """SQLite only: for the checks that do not depend on the database engine."""
    return make_hooks(live_factory, keys, None)
