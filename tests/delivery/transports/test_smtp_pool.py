"""The SMTP connection pool against a real aiosmtpd server: concurrency, the per-session cap, RSET."""

import re
import smtplib
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport, _stuffed
from tests.fakes.smtp_server import start_server
from tests.delivery.transports.test_smtp import message


@pytest.fixture
def slow_server():
    controller, handler = start_server(delay=0.05)
    yield controller, handler
    controller.stop()


@pytest.fixture
def server():
    controller, handler = start_server()
    yield controller, handler
    controller.stop()


def test_a_batch_goes_over_pool_size_sessions_at_once(slow_server):
    controller, handler = slow_server
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=3))
    outgoing = [message(f"reader{n}@example.com", n) for n in range(12)]
    results = transport.send(outgoing)
    assert [r.outcome for r in results] == [Outcome.sent] * 12
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == sorted(m.recipient for m in outgoing)
    assert {m.data for m in handler.messages} == {m.data for m in outgoing}
    sessions = {m.session for m in handler.messages}
    assert len(sessions) == 3  # never more than pool_size ...
    assert handler.max_active == 3  # ... and really concurrent
    # A second batch reuses the same sessions instead of opening new ones.
    assert all(r.outcome == Outcome.sent for r in transport.send(outgoing[:6]))
    assert {m.session for m in handler.messages} == sessions
    transport.close()
    assert set(handler.quits) == sessions and transport.open_connections == 0


def test_the_per_connection_cap_quits_and_reconnects(server):
    controller, handler = server
    settings = SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1,
                            max_messages_per_connection=3)
    transport = SmtpTransport(settings)
    results = transport.send([message(f"reader{n}@example.com", n) for n in range(7)])
    assert all(r.outcome == Outcome.sent for r in results)
    per_session = Counter(m.session for m in handler.messages)
    assert sorted(per_session.values(), reverse=True) == [3, 3, 1]
    ordered = list(dict.fromkeys(m.session for m in handler.messages))
    assert [handler.quits[s] for s in ordered] == [1, 1, 0]  # the capped sessions ended with QUIT
    transport.close()
    assert handler.quits[ordered[-1]] == 1


def test_a_refused_recipient_resets_the_session_and_keeps_it(server):
    controller, handler = server
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1))
    results = transport.send([message("unknown1@example.com", 1), message("fine1@example.com", 2),
                              message("later@example.com", 3), message("fine2@example.com", 4)])
    transport.close()
    assert [r.outcome for r in results] == [Outcome.failed, Outcome.sent, Outcome.retry, Outcome.sent]
    assert results[0].hard_bounce and not results[2].hard_bounce
    sessions = {m.session for m in handler.messages}
    assert len(sessions) == 1  # the same session carried on after each refusal
    assert handler.rsets[sessions.pop()] == 2  # one RSET after each refused transaction


@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n."]), max_size=40).map(b"".join))
def test_dot_stuffing_matches_smtplib(data):
    expected = smtplib._quote_periods(re.sub(rb"\r\n|\n|\r(?!\n)", b"\r\n", data))
    expected += (b"" if expected.endswith(b"\r\n") else b"\r\n") + b".\r\n"
    assert b"".join(_stuffed(data)) == expected


def test_no_message_starts_after_the_time_budget(slow_server):
    """A slow relay must not keep a batch past its lease: what is left is handed back as retry,
    never sent, so a later claim sends each message once."""
    controller, handler = slow_server  # every DATA takes 50 ms
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=2))
    transport.time_budget = 0.3  # ~6 messages per session fit
    outgoing = [message(f"reader{n}@example.com", n) for n in range(60)]
    results = transport.send(outgoing)
    transport.close()
    sent = {m.recipient for m, r in zip(outgoing, results) if r.outcome == Outcome.sent}
    left = [r for r in results if r.outcome != Outcome.sent]
    assert 0 < len(sent) < 40 and len(sent) + len(left) == 60
    assert all(r.outcome == Outcome.retry and "ran out of time" in r.error for r in left)
    assert Counter(m.rcpt_tos[0] for m in handler.messages) == Counter(sent)  # the rest never reached it
