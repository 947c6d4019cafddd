"""Consequences across the pipeline: what a webhook reports decides who gets the next issue."""

from __future__ import annotations

import json
import secrets
import time

from sqlalchemy import select

from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.subscribers.models import Subscriber
from tests.webhooks.conftest import Hooks


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
