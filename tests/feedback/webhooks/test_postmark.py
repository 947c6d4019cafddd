"""Postmark's webhook over real HTTP: basic auth, records in Postmark's documented shape."""

from __future__ import annotations

import json

import requests
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.feedback.models import WebhookEvent
from tests.feedback.conftest import iso


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
    with session_scope(hooks.live.engine) as session:  # the record Postmark sent, kept for audit
        payload = session.execute(select(WebhookEvent.payload).where(WebhookEvent.email == "pm-hard@example.com")).scalar_one()
    assert json.loads(payload) == record
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
