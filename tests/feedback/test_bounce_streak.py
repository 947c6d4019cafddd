"""Soft bounces that match no stored provider id still make a streak (issue 14, point 7)."""

from __future__ import annotations

import time

from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from tests.conftest import TEST_SECRET
from tests.feedback.conftest import Hooks
from tests.feedback.webhooks.test_mailgun import mailgun_event


def send_week(hooks: Hooks, week: str) -> None:
    settings, engine = hooks.live.settings, hooks.live.engine
    issue = draft_issue(engine, settings, week).issue
    start_send(engine, issue.id)
    transport = make_transport(settings)
    deliver(engine, settings, transport, TEST_SECRET, issue.id)
    transport.close()


def test_unmatched_soft_bounces_after_three_sends_suspend_the_address(hooks):
    """Three issues, each soft-bounced by a Mailgun event that carries no reference and no id we
    stored: each is attributed to the last message sent to the address, so a later clean-looking
    send no longer ends the streak, and the third suspends the reader (soft_bounce_limit 3)."""
    hooks.add("mg-full@example.com", "mg-fine@example.com")
    for n, week in enumerate(["2026-W46", "2026-W47", "2026-W48"], start=1):
        send_week(hooks, week)
        assert hooks.status("mg-full@example.com") == "active"
        full = mailgun_event("mg-full@example.com", "failed", message_id=f"unknown-{n}@mg.example",
                             severity="temporary", reason="generic", timestamp=time.time(),
                             **{"delivery-status": {"code": 452, "message": "4.2.2 The email account that you "
                                                                            "tried to reach is over quota."}})
        assert hooks.mailgun(full).json()["applied"] == 1
    events = hooks.events("mg-full@example.com")
    assert [kind for _provider, kind, _delivery in events] == ["bounced_soft"] * 3
    assert len({delivery for _provider, _kind, delivery in events}) == 3 and None not in {e[2] for e in events}
    assert hooks.status("mg-full@example.com") == "bounced"
    assert hooks.suppression("mg-full@example.com") == "soft_bounce_limit"
    assert hooks.status("mg-fine@example.com") == "active"
