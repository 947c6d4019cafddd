"""Consent records (issue 5.6): every change names its source, IP, User-Agent and consent text version."""

import pytest
from sqlmodel import select

from newsletter.db import session_scope
from newsletter.web.abuse import client_address
from newsletter.subscribers.consent import CONSENT_TEXT, CONSENT_VERSION, MAX_USER_AGENT
from newsletter.subscribers.models import ConsentEvent, Subscriber
from newsletter.tokens import Purpose
from tests.conftest import link_token


def events(live, email):
    with session_scope(live.engine) as session:
        reader = session.exec(select(Subscriber).where(Subscriber.email == email)).one()
        return session.exec(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader.id)
                            .order_by(ConsentEvent.id)).all(), reader.id


def test_signup_and_confirm_record_ip_user_agent_source_and_text_version(live):
    page = live.http.get(live.url + "/").text
    assert CONSENT_TEXT.format(site="Weekly Verdicts") in page and f'data-consent-version="{CONSENT_VERSION}"' in page
    agent = "Mozilla/5.0\t(X11)" + "x" * 400  # a tab (control character) and far too long
    live.http.headers["User-Agent"] = agent
    assert live.subscribe("consent@example.com").status_code == 200
    assert live.deliver_mail() == 1
    assert live.http.post(live.link_in(live.mails()[-1], "confirm")).status_code == 200
    rows, reader = events(live, "consent@example.com")
    assert [(e.kind, e.source, e.consent_version) for e in rows] == [
        ("signup_requested", "form", CONSENT_VERSION), ("confirmed", "link", CONSENT_VERSION)]
    for event in rows:
        assert event.ip == "127.0.0.1"
        assert event.user_agent.startswith("Mozilla/5.0(X11)xxx") and len(event.user_agent) == MAX_USER_AGENT
        assert event.created_at is not None
    # Preferences and unsubscribe through their links: source link, what happened in the detail.
    prefs = f"{live.url}/preferences/{link_token(live.engine, Purpose.preferences, reader)}"
    assert live.http.post(prefs, data={"pause_weeks": "2"}).status_code == 200
    leave = f"{live.url}/unsubscribe/{link_token(live.engine, Purpose.unsubscribe, reader)}"
    assert live.http.post(leave, data={"source": "page"}).status_code == 200
    rows, _ = events(live, "consent@example.com")
    assert [(e.kind, e.source) for e in rows[2:]] == [("preferences_changed", "link"), ("unsubscribed", "link")]
    assert "pause_weeks=2" in rows[2].detail and "page" in rows[3].detail and rows[3].ip == "127.0.0.1"


@pytest.mark.parametrize("env, header, expected", [
    ({}, "2001:db8::7, 10.0.0.1", "127.0.0.1"),  # no trusted proxy: the header is the client's own text
    ({"WEB__TRUST_FORWARDED_FOR": "true"}, "2001:db8::7, 10.0.0.1", "10.0.0.1"),  # deprecated alias: one hop
    ({"WEB__TRUSTED_PROXY_HOPS": "2"}, "6.6.6.6, 198.51.100.9, 10.0.0.1", "198.51.100.9"),
    ({"WEB__TRUSTED_PROXY_HOPS": "1"}, "203.0.113.5, 2001:db8::zz", "127.0.0.1"),  # not an IP: the peer
])
def test_forwarded_for_trusts_only_the_configured_proxy_hops(live_factory, db_url, env, header, expected):
    live = live_factory(db_url, **env)
    live.http.headers["X-Forwarded-For"] = header
    assert live.subscribe("fwd@example.com").status_code == 200
    rows, _ = events(live, "fwd@example.com")
    assert [e.ip for e in rows] == [expected]


def test_client_address_takes_the_entry_the_outermost_trusted_proxy_wrote():
    # The client forged "1.1.1.1" at the left; proxies appended what they saw on the right.
    chain = ["1.1.1.1, 203.0.113.9", "10.0.0.2"]  # two headers, as two proxies may send them
    assert client_address("10.0.0.3", chain, 0) == "10.0.0.3"
    assert client_address("10.0.0.3", chain, 1) == "10.0.0.2"
    assert client_address("10.0.0.3", chain, 2) == "203.0.113.9"
    assert client_address("10.0.0.3", chain, 3) == "1.1.1.1"
    assert client_address("10.0.0.3", chain, 4) == "10.0.0.3"  # fewer entries than hops: the peer
    assert client_address("10.0.0.3", ["[2001:DB8::1]"], 1) == "2001:db8::1"  # validated and normalised
    assert client_address("10.0.0.3", ["203.0.113.9:4711"], 1) == "10.0.0.3"
    assert client_address(None, ["<script>"], 1) == "unknown"
