"""Amazon SES through SNS over real HTTP: SNS-signed messages, subscription confirmation, and
the signing certificate's URL and chain checked (the test's own CA stands in for Amazon's)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from tests.feedback.conftest import CERT_URL, Hooks, TOPIC, iso, make_certificate, serve_certificates


def ses_mail(email, reference=None, message_id="0100018c1c0a7d2e-5f7f-4f3d-9c1b-aaaaaaaaaaaa-000000"):
    return {"timestamp": iso(-120), "source": "verdicts@weeklyverdicts.example", "messageId": message_id,
            "destination": [email], "headersTruncated": False,
            "headers": [{"name": "To", "value": email}, {"name": "Subject", "value": "This week"}],
            "tags": {"ses:configuration-set": ["verdicts"], **({"reference": [reference]} if reference else {})}}


def test_ses(hooks):
    hooks.add("ses-hard@example.com", "ses-spam@example.com", "ses-ok@example.com")
    deliveries = hooks.send_issue()
    hard = deliveries["ses-hard@example.com"]
    bounce = {"notificationType": "Bounce",
              "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": iso(-30),
                         "feedbackId": "0100018c-feedback", "reportingMTA": "dsn; a8-55.smtp-out.amazonses.com",
                         "bouncedRecipients": [{"emailAddress": "ses-hard@example.com", "action": "failed",
                                                "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
              "mail": ses_mail("ses-hard@example.com", f"i{hard.issue_id}-d{hard.id}")}
    doc = hooks.sns(message=bounce, version="1", Subject="Amazon SES Email Event Notification")

    before = hooks.snapshot()
    tampered = json.dumps(doc).replace("ses-hard@", "ses-hord@").encode()
    assert hooks.post_sns(tampered).status_code == 401
    unsigned = {k: v for k, v in doc.items() if k != "Signature"}
    assert hooks.post_sns(unsigned).status_code == 401
    for url in ["https://sns.us-east-1.amazonaws.com.evil.example/cert.pem", "http://sns.us-east-1.amazonaws.com/c.pem",
                "https://evil.example/SimpleNotificationService.pem",
                "https://sns.us-east-1.amazonaws.com@evil.example/c.pem"]:
        fetched = len(hooks.fetched)
        assert hooks.post_sns({**doc, "SigningCertURL": url}).status_code == 401
        assert len(hooks.fetched) == fetched  # refused before anything was fetched
    foreign = hooks.sns(message=bounce, TopicArn="arn:aws:sns:us-east-1:999999999999:someone-else")
    assert hooks.post_sns(foreign).status_code == 403
    assert hooks.snapshot() == before

    assert hooks.post_sns(doc).json()["applied"] == 1
    assert (hooks.status("ses-hard@example.com"), hooks.suppression("ses-hard@example.com")) == ("bounced", "hard_bounce")
    assert hooks.consents("ses-hard@example.com") == [("suppressed:hard_bounce", "ses")]
    assert hooks.events("ses-hard@example.com") == [("ses", "bounced_hard", hard.id)]
    after = hooks.snapshot()
    assert hooks.post_sns(doc).json()["duplicates"] == 1 and hooks.snapshot() == after

    spam = deliveries["ses-spam@example.com"]
    hooks.set_provider_id(spam, "0100018c-spam-000000")  # no tag: matched by SES's messageId
    complaint = {"eventType": "Complaint",
                 "complaint": {"complainedRecipients": [{"emailAddress": "ses-spam@example.com"}],
                               "timestamp": iso(-5), "feedbackId": "0100018c-complaint",
                               "complaintFeedbackType": "abuse"},
                 "mail": ses_mail("ses-spam@example.com", message_id="0100018c-spam-000000")}
    assert hooks.post_sns(hooks.sns(message=complaint, version="2")).json()["applied"] == 1
    assert hooks.status("ses-spam@example.com") == "complained"
    assert hooks.events("ses-spam@example.com") == [("ses", "complained", spam.id)]
    assert set(hooks.fetched) == {"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"}

    ignored = hooks.post_sns(hooks.sns(message={"eventType": "Open", "mail": ses_mail("ses-ok@example.com")}))
    assert ignored.status_code == 200 and ignored.json()["ignored"] == 1


def test_ses_subscription_is_confirmed_only_when_authentic(hooks_lite):
    hooks = hooks_lite
    confirmation = hooks.sns("SubscriptionConfirmation",
                             message=f"You have chosen to subscribe to the topic {TOPIC}.")
    forged = {**confirmation, "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&x=1"}
    assert hooks.post_sns(forged).status_code == 401  # the URL is signed: changing it breaks the signature
    elsewhere = hooks.sns("SubscriptionConfirmation", message="hi", SubscribeURL="https://attacker.example/confirm")
    assert hooks.post_sns(elsewhere).status_code == 401
    assert hooks.confirmed == []
    answer = hooks.post_sns(confirmation)
    assert answer.status_code == 200 and answer.json()["note"] == "subscription confirmed"
    assert hooks.confirmed == [confirmation["SubscribeURL"]]


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
