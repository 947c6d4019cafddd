"""Resend's webhook over real HTTP: Svix-signed events in Resend's documented shape."""

from __future__ import annotations

import json
import logging
import time

import requests

from tests.feedback.conftest import iso


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
