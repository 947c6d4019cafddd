"""Consent record rules (issue 5.6) without the web: known sources only, User-Agent cleaned.
The records a signup, confirmation and unsubscribe leave through the pages: tests/web/test_consent_records.py."""

import pytest

from newsletter.db import session_scope
from newsletter.subscribers.consent import MAX_USER_AGENT, clean_user_agent
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import record_consent


def test_only_known_sources_are_recorded(engine):
    with session_scope(engine) as session:
        reader = Subscriber(email="src@example.com")
        session.add(reader)
        session.flush()
        with pytest.raises(ValueError, match="consent source"):
            record_consent(session, reader, "subscribed", "web")


def test_user_agent_is_cleaned():
    assert clean_user_agent("a\x00b\r\nc\x7fd\u2028e") == "abcde"
    assert clean_user_agent(None) == "" and len(clean_user_agent("y" * 1000)) == MAX_USER_AGENT
