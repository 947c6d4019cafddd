"""SendGrid's signed event webhook over real HTTP: ECDSA-signed batches in SendGrid's shape;
one odd record or odd bytes never lose the batch."""

from __future__ import annotations

import json
import logging
import secrets
import time

import requests
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.feedback.models import WebhookEvent


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
