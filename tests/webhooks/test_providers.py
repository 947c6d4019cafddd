"""Each provider's webhook over real HTTP: payloads in the provider's documented shape, signed
here the way the provider signs them; what is accepted changes the right rows once, what is not
authentic changes nothing."""

from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import UTC, datetime

import requests

from tests.webhooks.conftest import TOPIC


def iso(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, UTC).isoformat().replace("+00:00", "Z")


# --- Postmark -------------------------------------------------------------------------------------

def postmark_bounce(email, reference, message_id, bounce_id, kind="HardBounce"):
    return {"RecordType": "Bounce", "ID": bounce_id, "Type": kind, "TypeCode": 1, "Name": "Hard bounce",
            "Tag": "", "MessageID": message_id, "ServerID": 23, "MessageStream": "broadcast",
            "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email, "From": "verdicts@weeklyverdicts.example", "BouncedAt": iso(),
            "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "This week",
            "Metadata": {"reference": reference}}


def test_postmark(hooks):
    hooks.add("pm-hard@example.com", "pm-spam@example.com", "pm-leaves@example.com", "pm-ok@example.com")
    deliveries = hooks.send_issue()
    hard = deliveries["pm-hard@example.com"]
    hooks.set_provider_id(hard, "b7bc2f4a-e38e-4336-af7d-e6c392c2f817")
    record = postmark_bounce("pm-hard@example.com", f"i{hard.issue_id}-d{hard.id}",
                             "b7bc2f4a-e38e-4336-af7d-e6c392c2f817", 4323372036854775807)

    before = hooks.snapshot()
    for auth in [("nobody", "wrong"), (hooks.postmark_auth[0], hooks.postmark_auth[1] + "x")]:
        assert hooks.postmark(record, auth=auth).status_code == 401
    unauthenticated = requests.post(hooks.url("postmark"), json=record, timeout=10)
    assert unauthenticated.status_code == 401 and unauthenticated.headers["WWW-Authenticate"].startswith("Basic")
    assert hooks.snapshot() == before

    answer = hooks.postmark(record)
    assert answer.status_code == 200 and answer.json()["applied"] == 1
    assert hooks.status("pm-hard@example.com") == "bounced"
    assert hooks.suppression("pm-hard@example.com") == "hard_bounce"
    assert hooks.consents("pm-hard@example.com") == [("suppressed:hard_bounce", "postmark")]
    assert hooks.events("pm-hard@example.com") == [("postmark", "bounced_hard", hard.id)]
    again = hooks.postmark(record)
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert hooks.consents("pm-hard@example.com") == [("suppressed:hard_bounce", "postmark")]

    spam = deliveries["pm-spam@example.com"]
    complaint = {**postmark_bounce("pm-spam@example.com", None, "0f4e7d2c-aaaa", 692560173, "SpamComplaint"),
                 "RecordType": "SpamComplaint", "Metadata": {}}
    hooks.set_provider_id(spam, "0f4e7d2c-aaaa")  # no reference echoed: matched by Postmark's MessageID
    assert hooks.postmark(complaint).status_code == 200
    assert (hooks.status("pm-spam@example.com"), hooks.suppression("pm-spam@example.com")) == ("complained", "complaint")
    assert hooks.events("pm-spam@example.com") == [("postmark", "complained", spam.id)]

    change = {"RecordType": "SubscriptionChange", "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
              "ServerID": 123456, "MessageStream": "broadcast", "ChangedAt": iso(), "Recipient": "pm-leaves@example.com",
              "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "ManualSuppression", "Tag": "",
              "Metadata": {}}
    assert hooks.postmark(change).json()["applied"] == 1
    assert hooks.status("pm-leaves@example.com") == "unsubscribed"
    assert hooks.consents("pm-leaves@example.com") == [("unsubscribed", "postmark")]
    assert hooks.suppression("pm-leaves@example.com") is None

    ok = deliveries["pm-ok@example.com"]
    delivered = {"RecordType": "Delivery", "ServerID": 23, "MessageStream": "broadcast", "MessageID": "00000000-ok",
                 "Recipient": "pm-ok@example.com", "Tag": "", "DeliveredAt": iso(),
                 "Details": "Test delivery webhook details", "Metadata": {"reference": f"i{ok.issue_id}-d{ok.id}"}}
    assert hooks.postmark(delivered).json()["applied"] == 1
    assert hooks.status("pm-ok@example.com") == "active"
    assert hooks.events("pm-ok@example.com") == [("postmark", "delivered", ok.id)]


# --- SendGrid -------------------------------------------------------------------------------------

def sendgrid_event(email, event, **extra):
    return {"email": email, "timestamp": int(time.time()), "smtp-id": "<14c5d75ce93.dfd.64b469@ismtpd-555>",
            "event": event, "category": ["weekly"], "sg_event_id": secrets.token_urlsafe(16),
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0", **extra}


def test_sendgrid(hooks, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.web.webhooks")
    hooks.add("sg-ok@example.com", "sg-blocked@example.com", "sg-spam@example.com", "sg-group@example.com")
    deliveries = hooks.send_issue()
    ok, blocked = deliveries["sg-ok@example.com"], deliveries["sg-blocked@example.com"]
    hooks.set_provider_id(blocked, "W86EgYT6SQKk0lRflfLRsA")
    batch = [
        sendgrid_event("sg-ok@example.com", "delivered", response="250 OK", reference=f"i{ok.issue_id}-d{ok.id}"),
        sendgrid_event("sg-blocked@example.com", "bounce", type="blocked", status="4.0.0", reason="blocked",
                       sg_message_id="W86EgYT6SQKk0lRflfLRsA.filterdrecv-5645d9c87f-6r7lm-1-5DB8A1D0-15.0"),
        sendgrid_event("sg-spam@example.com", "spamreport"),
        sendgrid_event("sg-group@example.com", "group_unsubscribe", asm_group_id=10),
        sendgrid_event("sg-ok@example.com", "open", useragent="Mozilla/5.0"),
    ]
    body = json.dumps(batch).encode()

    before = hooks.snapshot()
    tampered = body.replace(b"sg-spam@", b"sg-spat@")
    assert requests.post(hooks.url("sendgrid"), data=tampered, headers=hooks.sendgrid_headers(body),
                         timeout=10).status_code == 401
    stale = int(time.time()) - 3600
    assert requests.post(hooks.url("sendgrid"), data=body, headers=hooks.sendgrid_headers(body, stale),
                         timeout=10).status_code == 401
    assert requests.post(hooks.url("sendgrid"), data=body, headers={"Content-Type": "application/json"},
                         timeout=10).status_code == 401
    assert hooks.snapshot() == before

    answer = requests.post(hooks.url("sendgrid"), data=body, headers=hooks.sendgrid_headers(body), timeout=10)
    assert answer.status_code == 200
    assert answer.json() == {"received": 4, "applied": 4, "duplicates": 0, "ignored": 1}
    assert "'open' acknowledged and ignored" in caplog.text
    assert hooks.events("sg-ok@example.com") == [("sendgrid", "delivered", ok.id)]
    assert hooks.events("sg-blocked@example.com") == [("sendgrid", "bounced_soft", blocked.id)]
    assert hooks.status("sg-blocked@example.com") == "active"  # one soft bounce is not the limit
    assert (hooks.status("sg-spam@example.com"), hooks.suppression("sg-spam@example.com")) == ("complained", "complaint")
    assert hooks.status("sg-group@example.com") == "unsubscribed"
    assert hooks.consents("sg-group@example.com") == [("unsubscribed", "sendgrid")]

    after = hooks.snapshot()
    replay = requests.post(hooks.url("sendgrid"), data=body, headers=hooks.sendgrid_headers(body), timeout=10)
    assert replay.json()["duplicates"] == 4 and hooks.snapshot() == after


# --- Mailgun --------------------------------------------------------------------------------------

def mailgun_event(email, event, reference=None, message_id="20130503182626.18666.16540@mg.weeklyverdicts.example",
                  timestamp=None, **extra):
    return {"event": event, "id": secrets.token_urlsafe(16), "timestamp": timestamp or time.time(),
            "log-level": "error" if event == "failed" else "info", "recipient": email,
            "recipient-domain": email.split("@")[1], "tags": [], "envelope": {"transport": "smtp"},
            "message": {"headers": {"to": email, "message-id": message_id,
                                    "from": "verdicts@weeklyverdicts.example", "subject": "This week"}},
            "user-variables": {"reference": reference} if reference else {}, **extra}


def test_mailgun(hooks):
    hooks.add("mg-hard@example.com", "mg-ok@example.com")
    deliveries = hooks.send_issue()
    hard = deliveries["mg-hard@example.com"]
    failed = mailgun_event("mg-hard@example.com", "failed", f"i{hard.issue_id}-d{hard.id}", severity="permanent",
                           reason="bounce", **{"delivery-status": {"code": 550, "message": "No such user"}})
    signature = hooks.mailgun_signature()

    before = hooks.snapshot()
    flipped = ("1" if signature["signature"][0] == "0" else "0") + signature["signature"][1:]  # one character
    assert hooks.mailgun(failed, {**signature, "signature": flipped}).status_code == 401
    assert hooks.mailgun(failed, {**signature, "token": signature["token"][:-1] + "x"}).status_code == 401
    assert hooks.mailgun(failed, hooks.mailgun_signature(timestamp=int(time.time()) - 3600)).status_code == 401
    assert requests.post(hooks.url("mailgun"), json={"event-data": failed}, timeout=10).status_code == 401
    assert hooks.snapshot() == before

    assert hooks.mailgun(failed, signature).json()["applied"] == 1
    assert (hooks.status("mg-hard@example.com"), hooks.suppression("mg-hard@example.com")) == ("bounced", "hard_bounce")
    assert hooks.consents("mg-hard@example.com") == [("suppressed:hard_bounce", "mailgun")]
    assert hooks.events("mg-hard@example.com") == [("mailgun", "bounced_hard", hard.id)]

    after = hooks.snapshot()
    redelivered = hooks.mailgun(failed, signature)  # the same request again: acknowledged, no change
    assert redelivered.status_code == 200 and redelivered.json()["duplicates"] == 1
    # A captured token and signature with another event in the body: refused, the token is single-use.
    other = mailgun_event("mg-ok@example.com", "complained")
    assert hooks.mailgun(other, signature).status_code == 401
    assert hooks.snapshot() == after and hooks.status("mg-ok@example.com") == "active"


def test_soft_bounces_in_a_row_suspend_and_a_delivery_ends_the_streak(hooks_lite):
    hooks = hooks_lite
    hooks.add("mg-soft@example.com")
    start = time.time() - 600

    def temporary(message, offset):
        return mailgun_event("mg-soft@example.com", "failed", message_id=f"{message}@mg.example", severity="temporary",
                             reason="generic", timestamp=start + offset)

    for offset, message in [(1, "m1"), (2, "m1"), (3, "m2")]:  # m1 failed twice: one soft-bounced message
        assert hooks.mailgun(temporary(message, offset)).status_code == 200
    assert hooks.status("mg-soft@example.com") == "active"
    delivered = mailgun_event("mg-soft@example.com", "delivered", message_id="m3@mg.example", timestamp=start + 4)
    assert hooks.mailgun(delivered).status_code == 200
    for offset, message in [(5, "m4"), (6, "m5")]:
        hooks.mailgun(temporary(message, offset))
    assert hooks.status("mg-soft@example.com") == "active" and hooks.consents("mg-soft@example.com") == []
    hooks.mailgun(temporary("m6", 7))
    assert hooks.status("mg-soft@example.com") == "bounced"
    assert hooks.suppression("mg-soft@example.com") == "soft_bounce_limit"
    assert hooks.consents("mg-soft@example.com") == [("suppressed:soft_bounce_limit", "mailgun")]


# --- Resend ---------------------------------------------------------------------------------------

def resend_payload(kind, email, reference=None, email_id="56761188-7520-42d8-8898-ff6fc54ce618", **data):
    return {"type": kind, "created_at": iso(),
            "data": {"broadcast_id": None, "created_at": iso(-60), "email_id": email_id,
                     "from": "Weekly Verdicts <verdicts@weeklyverdicts.example>", "to": [email],
                     "subject": "This week", "tags": [{"name": "reference", "value": reference}] if reference else [],
                     **data}}


def test_resend(hooks, caplog):
    caplog.set_level(logging.INFO, logger="newsletter.web.webhooks")
    hooks.add("rs-hard@example.com", "rs-late@example.com", "rs-spam@example.com")
    deliveries = hooks.send_issue()
    hard = deliveries["rs-hard@example.com"]
    bounced = resend_payload("email.bounced", "rs-hard@example.com", f"i{hard.issue_id}-d{hard.id}",
                             bounce={"message": "The recipient's email address does not exist.",
                                     "subType": "General", "type": "Permanent"})
    body = json.dumps(bounced).encode()
    headers = hooks.svix_headers(body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")

    before = hooks.snapshot()
    one_byte = bytearray(body)
    one_byte[body.index(b"Permanent")] = ord("p")
    for data, hdrs in [
        (bytes(one_byte), headers),
        (body, hooks.svix_headers(body, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int(time.time()) - 3600)),
        (body, {"Content-Type": "application/json"}),
        (body, {**headers, "svix-id": "msg_other"}),
    ]:
        assert requests.post(hooks.url("resend"), data=data, headers=hdrs, timeout=10).status_code == 401
    assert hooks.snapshot() == before

    # Key rotation: Svix may send several signatures; one valid is enough.
    rotated = {**headers, "svix-signature": "v1,bm90IGl0 " + headers["svix-signature"]}
    assert requests.post(hooks.url("resend"), data=body, headers=rotated, timeout=10).json()["applied"] == 1
    assert (hooks.status("rs-hard@example.com"), hooks.suppression("rs-hard@example.com")) == ("bounced", "hard_bounce")
    assert hooks.events("rs-hard@example.com") == [("resend", "bounced_hard", hard.id)]
    after = hooks.snapshot()
    assert requests.post(hooks.url("resend"), data=body, headers=headers, timeout=10).json()["duplicates"] == 1
    assert hooks.snapshot() == after

    late = deliveries["rs-late@example.com"]
    hooks.set_provider_id(late, "4ef9a417-02e9-4d39-ad75-9611e0fcc33c")  # no tag: matched by email_id
    assert hooks.resend(resend_payload("email.delivery_delayed", "rs-late@example.com",
                                       email_id="4ef9a417-02e9-4d39-ad75-9611e0fcc33c")).json()["applied"] == 1
    assert hooks.events("rs-late@example.com") == [("resend", "deferred", late.id)]
    assert hooks.status("rs-late@example.com") == "active" and hooks.consents("rs-late@example.com") == []

    assert hooks.resend(resend_payload("email.complained", "rs-spam@example.com")).status_code == 200
    assert hooks.status("rs-spam@example.com") == "complained"

    opened = hooks.resend(resend_payload("email.opened", "rs-late@example.com"))
    assert opened.status_code == 200 and opened.json()["ignored"] == 1
    assert "'email.opened' acknowledged and ignored" in caplog.text


# --- Amazon SES through SNS -----------------------------------------------------------------------

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


# --- Configuration --------------------------------------------------------------------------------

def test_unconfigured_provider_answers_503_and_unknown_404(live_factory):
    live = live_factory(None)
    assert requests.post(f"{live.url}/webhooks/mailgun", json={}, timeout=10).status_code == 503
    assert requests.post(f"{live.url}/webhooks/ses", data=b"{}", timeout=10).status_code == 503
    assert requests.post(f"{live.url}/webhooks/mandrill", json={}, timeout=10).status_code == 404
