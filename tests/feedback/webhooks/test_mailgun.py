"""Mailgun's webhook over real HTTP: HMAC-signed tokens, single-use for one body; real
bounces with broken bytes stored cleaned."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime

import requests
from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.feedback.models import WebhookEvent


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
