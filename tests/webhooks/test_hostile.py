"""Webhooks that fight back (issue 14.6): single-use Mailgun tokens, hostile bodies answered 4xx
before authentication, odd bytes in genuine events stored cleaned, SNS certificates checked."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID
from fastapi.testclient import TestClient
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.feedback.models import WebhookEvent
from newsletter.web.webhooks import MAX_BODY
from tests.webhooks.conftest import CERT_URL, Hooks, make_certificate, serve_certificates
from tests.webhooks.test_providers import iso, mailgun_event, ses_mail

PROVIDERS = ["postmark", "sendgrid", "mailgun", "resend", "ses"]
DEEP = b"[" * 100_000 + b"]" * 100_000


def test_a_mailgun_token_first_seen_with_an_ignored_event_cannot_carry_another_body(hooks_lite):
    hooks = hooks_lite
    hooks.add("mg-victim@example.com")
    opened = mailgun_event("mg-victim@example.com", "opened")
    signature = hooks.mailgun_signature()
    first = hooks.mailgun(opened, signature)
    assert first.status_code == 200 and first.json()["ignored"] == 1
    before = hooks.snapshot()
    # The captured token with a forged bounce, even under the same event id: refused.
    forged = mailgun_event("mg-victim@example.com", "failed", severity="permanent", reason="bounce")
    for body in ({**forged, "id": opened["id"]}, forged, {**opened, "recipient": "mg-other@example.com"}):
        assert hooks.mailgun(body, signature).status_code == 401
    assert hooks.snapshot() == before and hooks.status("mg-victim@example.com") == "active"
    assert hooks.mailgun(opened, signature).status_code == 200  # Mailgun's own retry of the same body


def _signed(hooks: Hooks, provider: str, body: bytes) -> tuple[dict, bytes]:
    """Headers (and body) with which `provider` would post `body` correctly signed."""
    if provider == "postmark":
        return {"Authorization": "Basic " + base64.b64encode(":".join(hooks.postmark_auth).encode()).decode()}, body
    if provider == "sendgrid":
        return hooks.sendgrid_headers(body), body
    if provider == "resend":
        return hooks.svix_headers(body, f"msg_{secrets.token_hex(8)}"), body
    return {"Content-Type": "application/json"}, body


@pytest.mark.parametrize("provider", PROVIDERS)
def test_deep_huge_and_malformed_bodies_get_a_4xx_never_a_500(hooks_lite, provider):
    client = TestClient(hooks_lite.live.app, raise_server_exceptions=False)
    url = f"/webhooks/{provider}"
    before = hooks_lite.snapshot()
    bodies = [
        DEEP,  # 100k nested arrays
        b'{"a":' * 50 + b"1" + b"}" * 50,  # parseable, but deeper than any real payload
        b"[" + b"9" * 5000 + b"]",  # an integer beyond Python's conversion limit
        b"\xff\xfe not json",
    ]
    for body in bodies:
        headers, data = _signed(hooks_lite, provider, body)
        answer = client.post(url, content=data, headers=headers)
        assert 400 <= answer.status_code < 500, (provider, body[:40], answer.status_code, answer.text)
    # Valid JSON with fields of the wrong types: whatever the answer, never a 500 and no change.
    for odd in [b'{"signature": [], "event-data": {"event": "failed", "id": {"x": [1]}, "tags": [{"name": {}}]}}',
                json.dumps([{"event": "bounce", "email": ["x"], "timestamp": 1e308, "RecordType": 7, "type": {},
                             "data": [], "event-data": {"id": []}, "Message": 5}]).encode()]:
        assert client.post(url, content=odd, headers=_signed(hooks_lite, provider, odd)[0]).status_code < 500
    # Over the limit: refused by the declared length, and by counting when none is declared.
    big = b" " * (MAX_BODY + 1)
    assert client.post(url, content=big).status_code == 413
    assert client.post(url, content=iter([b" " * 65536] * (MAX_BODY // 65536 + 1))).status_code == 413
    assert hooks_lite.snapshot() == before


def test_odd_bytes_in_a_genuine_batch_are_stored_cleaned_and_applied(hooks):
    """SendGrid signs the raw bytes; a NUL, a broken UTF-8 byte and a lone surrogate in three
    events' texts, and one unreadable record, must not lose the batch (PostgreSQL refuses NUL)."""
    readers = ["nul@example.com", "utf8@example.com", "surrogate@example.com", "plain@example.com"]
    hooks.add(*readers)
    events = [{"email": email, "timestamp": 1764000000, "event": "bounce", "type": "bounce",
               "sg_event_id": f"odd-{n}", "reason": reason, "status": "5.1.1"}
              for n, (email, reason) in enumerate(zip(readers, ["550 no\u0000such user", "550 UTF8MARK",
                                                                 "550 \ud800 lone", "550 fine"]))]
    body = json.dumps(events[:3] + ["not an object", {"event": "bounce", "email": {"x": 1}}] + events[3:])
    raw = body.encode().replace(b"UTF8MARK", b"caf\xe9 \xff broken")
    answer = hooks.live.http.post(hooks.url("sendgrid"), data=raw, headers=hooks.sendgrid_headers(raw), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["applied"] == 4
    assert all(hooks.status(email) == "bounced" for email in readers)
    with session_scope(hooks.live.engine) as session:
        details = dict(session.execute(select(WebhookEvent.email, WebhookEvent.detail)).all())
    assert "\x00" not in details["nul@example.com"] and "such user" in details["nul@example.com"]
    assert "\ufffd broken" in details["utf8@example.com"]
    assert "lone" in details["surrogate@example.com"]


# --- SNS certificates -----------------------------------------------------------------------------

def _sns_bounce(hooks: Hooks) -> dict:
    message = {"notificationType": "Bounce", "mail": ses_mail("ses-cert@example.com"),
               "bounce": {"bounceType": "Permanent", "timestamp": iso(),
                          "bouncedRecipients": [{"emailAddress": "ses-cert@example.com", "status": "5.1.1"}]}}
    return hooks.sns(message=message)


def test_sns_certificate_urls_only_from_sns_hosts(hooks_lite):
    hooks = hooks_lite
    doc = _sns_bounce(hooks)
    for url in ["https://sns.s3.amazonaws.com/SimpleNotificationService-x.pem",  # an S3 bucket named sns
                "https://sns.s3-us-west-2.amazonaws.com/SimpleNotificationService-x.pem",
                "https://sns.s3-website-us-east-1.amazonaws.com/x.pem",
                "https://sns.execute-api.amazonaws.com/x.pem", "https://sns.us-east-1.amazonaws.com:8443/x.pem"]:
        fetched = len(hooks.fetched)
        assert hooks.post_sns({**doc, "SigningCertURL": url}).status_code == 401, url
        assert len(hooks.fetched) == fetched
    assert hooks.post_sns({**doc, "SigningCertURL": CERT_URL.replace("us-east-1", "cn-north-1") + ""}
                          ).status_code == 200  # a regional host is fine (the test serves its certificate)


def _serve(hooks: Hooks, certificates: dict[str, bytes]) -> None:
    serve_certificates(hooks, lambda url: certificates[url])


def test_the_sns_certificate_itself_is_checked(hooks_lite):
    hooks, keys = hooks_lite, hooks_lite.keys
    other_root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_root = make_certificate("Someone's Root", other_root_key, ca=True)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM)  # noqa: E731
    refused = {
        "self-signed": make_certificate("sns.amazonaws.com", keys.sns_key),
        "another name": make_certificate("attacker.example", keys.sns_key, keys.sns_root.subject, keys.sns_root_key),
        "expired": make_certificate("sns.amazonaws.com", keys.sns_key, keys.sns_root.subject, keys.sns_root_key,
                                    days=(-60, -1)),
        "untrusted CA": make_certificate("sns.amazonaws.com", keys.sns_key, other_root.subject, other_root_key),
    }
    before = hooks.snapshot()
    for reason, cert in refused.items():
        _serve(hooks, {CERT_URL: pem(cert)})
        answer = hooks.post_sns(_sns_bounce(hooks))
        assert answer.status_code == 401 and "certificate" in answer.json()["error"], reason
    assert hooks.snapshot() == before

    # Root → intermediate (fetched from the leaf's caIssuers URL, DER as CAs serve it) → leaf: accepted.
    inter_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter = make_certificate("Test Intermediate", inter_key, keys.sns_root.subject, keys.sns_root_key, ca=True)
    aia_url = "http://crt.ca.example/intermediate.cer"
    now = datetime.now(UTC)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                 "sns.amazonaws.com")]))
            .issuer_name(inter.subject).public_key(keys.sns_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(aia_url))]), critical=False)
            .sign(inter_key, hashes.SHA256()))
    _serve(hooks, {CERT_URL: pem(leaf), aia_url: inter.public_bytes(serialization.Encoding.DER)})
    assert hooks.post_sns(_sns_bounce(hooks)).json()["applied"] == 1
    assert hooks.status("ses-cert@example.com") is None  # not a subscriber; the event is recorded


# Mailgun's "failed" event as django-anymail's tests hold it (tests/test_mailgun_webhooks.py,
# test_failed_permanent_event), with an event id as Mailgun sends one and our reader's address.
ANYMAIL_MAILGUN_FAILED = {
    "event": "failed", "id": "ncV2XwymRUKbPek_MIM-Gw", "severity": "permanent", "reason": "bounce",
    "recipient": "invalid@example.com", "timestamp": 1534110422.389832, "log-level": "error",
    "message": {"headers": {"to": "invalid@example.com", "message-id": "20180812214658.1.0DF563D0B3597700@example.org",
                            "from": "Test Sender "}},
    "delivery-status": {"tls": True, "mx-host": "aspmx.l.example.org", "attempt-no": 1, "description": "",
                        "session-seconds": 2.952177047729492, "utf8": True, "code": 550,
                        "message": "5.1.1 The email account that you tried to reach does not exist. Please try\n"
                                   "5.1.1 double-checking the recipient's email address for typos",
                        "certificate-verified": True},
}


def test_a_real_mailgun_bounce_with_nul_and_broken_utf8_is_stored_cleaned(hooks):
    hooks.add("invalid@example.com")
    event = {**ANYMAIL_MAILGUN_FAILED, "timestamp": datetime.now(UTC).timestamp()}
    event["delivery-status"] = {**event["delivery-status"],
                                "message": event["delivery-status"]["message"] + " \u0000 BROKEN"}
    payload = {"signature": hooks.mailgun_signature(), "event-data": event}
    raw = json.dumps(payload).encode().replace(b"BROKEN", b"\xc3\x28 \xed\xa0\x80")  # invalid UTF-8 sequences
    answer = hooks.live.http.post(hooks.url("mailgun"), data=raw, headers={"Content-Type": "application/json"},
                                  timeout=10)
    assert answer.status_code == 200 and answer.json()["applied"] == 1, answer.text
    assert (hooks.status("invalid@example.com"), hooks.suppression("invalid@example.com")) == ("bounced", "hard_bounce")
    with session_scope(hooks.live.engine) as session:
        detail = session.execute(select(WebhookEvent.detail)).scalar_one()
    assert "does not exist" in detail and "\x00" not in detail and "\ufffd" in detail
