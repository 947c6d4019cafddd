"""Consequences across the pipeline: what a webhook reports decides who gets the next issue."""

from __future__ import annotations

import json
import secrets
import time

from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.subscribers.models import Subscriber
from tests.feedback.conftest import Hooks
from tests.feedback.webhooks.test_mailgun import mailgun_event


def test_a_complaint_by_webhook_keeps_the_address_out_of_the_next_send(hooks: Hooks):
    hooks.add("reader@example.com", "angry@example.com")
    complaint = [{"email": "angry@example.com", "timestamp": int(time.time()), "event": "spamreport",
                  "sg_event_id": secrets.token_urlsafe(16), "sg_message_id": "unknown.filter0001.1.2.0"}]
    body = json.dumps(complaint).encode()
    answer = hooks.live.http.post(hooks.url("sendgrid"), data=body, headers=hooks.sendgrid_headers(body))
    assert answer.status_code == 200 and answer.json()["applied"] == 1  # no delivery matches: suppressed anyway
    assert hooks.suppression("angry@example.com") == "complaint"

    deliveries = hooks.send_issue()
    assert set(deliveries) == {"reader@example.com"}
    mailed = [p.read_text() for p in hooks.live.settings.mail.file.dir.glob("i*.eml")]
    assert len(mailed) == 1 and "reader@example.com" in mailed[0]
    assert not any("angry@example.com" in text for text in mailed)
    with session_scope(hooks.live.engine) as session:
        angry = session.execute(select(Subscriber.id).where(Subscriber.email == "angry@example.com")).scalar_one()
        assert session.execute(select(Delivery.id).where(Delivery.subscriber_id == angry)).first() is None


def test_webhook_secrets_come_from_the_environment_only(tmp_path, monkeypatch):
    import pytest

    from newsletter.config import load_settings
    from newsletter.errors import ConfigError
    from tests.conftest import write_config

    in_file = write_config(tmp_path, extra='[webhooks.mailgun]\nsigning_key = "key-in-a-file"\n')
    with pytest.raises(ConfigError, match="NEWSLETTER_WEBHOOKS__MAILGUN__SIGNING_KEY"):
        load_settings(in_file)
    monkeypatch.setenv("NEWSLETTER_WEBHOOKS__MAILGUN__SIGNING_KEY", "key-from-env")
    monkeypatch.setenv("NEWSLETTER_FEEDBACK__SOFT_BOUNCE_LIMIT", "5")
    settings = load_settings(write_config(tmp_path, extra='[webhooks.ses]\ntopic_arn = "arn:aws:sns:eu-west-1:1:t"\n'))
    assert settings.webhooks.mailgun.signing_key.get_secret_value() == "key-from-env"
    assert "key-from-env" not in repr(settings)
    assert settings.webhooks.ses.topic_arn == "arn:aws:sns:eu-west-1:1:t" and settings.feedback.soft_bounce_limit == 5


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
