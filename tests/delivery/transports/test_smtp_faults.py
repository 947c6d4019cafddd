"""The SMTP transport and the delivery loop against a faulty aiosmtpd server (tests/fakes/smtp_server.py):
421 service-closing replies, connections dropped after RCPT or during DATA, 451 and 550 replies,
a per-session limit. Every message ends `sent` or `retry` as its fault demands: none is lost,
none arrives twice. Every test runs twice: against a server that offers PIPELINING (RFC 2920, the
transport then sends MAIL, RCPT and DATA in one write) and against one that does not."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from newsletter.config import SmtpSettings, load_settings
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET, write_config
from tests.db_templates import migrate_fresh, sample_content
from tests.fakes.smtp_server import start_server
from tests.delivery.transports.test_smtp import message


@pytest.fixture(params=[False, True], ids=["sequential", "pipelined"])
def pipelining(request):
    return request.param


@pytest.fixture
def faulty(request, pipelining):
    """A server whose faults hit each address `fault_times` times (param; None: always)."""
    options = getattr(request, "param", {})
    controller, handler = start_server(**options, pipelining=pipelining)
    yield controller, handler
    # The transport pipelined exactly when the server offered it.
    assert (handler.pipelined > 0) == pipelining
    controller.stop()


def transport_for(controller, pool_size: int = 1) -> SmtpTransport:
    # Every fault here is an immediate reply or a closed connection, never a silence, so the socket
    # timeout only decides whether a stalled test thread on a loaded machine (seconds without CPU)
    # counts as a dropped session: 5 s once made a message look lost and be sent again.
    return SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=60, pool_size=pool_size))


def received(handler) -> Counter:
    return Counter(m.rcpt_tos[0] for m in handler.messages)


def test_a_421_is_retry_and_the_next_message_gets_a_new_session(faulty):
    controller, handler = faulty
    transport = transport_for(controller)
    outgoing = [message("fine1@example.com", 1), message("closing1@example.com", 2),
                message("fine2@example.com", 3), message("fine3@example.com", 4)]
    results = transport.send(outgoing)
    transport.close()
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.retry, Outcome.sent, Outcome.sent]
    assert "421" in results[1].error and not results[1].hard_bounce
    assert handler.faults["closing", "closing1@example.com"] == 2  # reopened once, closed again: give up
    assert received(handler) == {"fine1@example.com": 1, "fine2@example.com": 1, "fine3@example.com": 1}
    before, after = handler.messages[0].session, handler.messages[1].session
    assert before != after  # the 421 ended the first session; the pool opened another


def test_dropped_connections_are_retry_and_lose_nothing(faulty):
    controller, handler = faulty
    transport = transport_for(controller, pool_size=2)
    outgoing = [message(f"fine{n}@example.com", n) for n in range(6)]
    outgoing[1] = message("droprcpt1@example.com", 101)
    outgoing[4] = message("dropdata1@example.com", 104)
    results = transport.send(outgoing)
    transport.close()
    outcomes = {m.recipient: r.outcome for m, r in zip(outgoing, results)}
    assert outcomes.pop("droprcpt1@example.com") == Outcome.retry
    assert outcomes.pop("dropdata1@example.com") == Outcome.retry
    assert set(outcomes.values()) == {Outcome.sent}
    assert received(handler) == {address: 1 for address in outcomes}  # no drop cost another message
    assert handler.faults["dropdata", "dropdata1@example.com"] == 2


@pytest.mark.parametrize("faulty", [{"fault_times": 1}], indirect=True)
def test_a_flaky_server_is_got_through_by_reconnecting_in_the_same_call(faulty):
    controller, handler = faulty
    transport = transport_for(controller, pool_size=3)
    kinds = ["fine", "closing", "droprcpt", "dropdata"]
    outgoing = [message(f"{kinds[n % 4]}{n}@example.com", n) for n in range(40)]
    results = transport.send(outgoing)
    transport.close()
    assert [r.outcome for r in results] == [Outcome.sent] * 40
    assert received(handler) == {m.recipient: 1 for m in outgoing}  # each exactly once
    assert sum(handler.faults.values()) == 30  # every faulty address met its fault once
    assert {m.data for m in handler.messages} == {m.data for m in outgoing}


@pytest.mark.parametrize("faulty", [{"close_after": 3}], indirect=True)
def test_a_server_session_limit_421_reconnects_without_losing_a_message(faulty):
    controller, handler = faulty
    transport = transport_for(controller, pool_size=2)
    outgoing = [message(f"reader{n}@example.com", n) for n in range(20)]
    results = transport.send(outgoing) + transport.send(outgoing[:4])
    transport.close()
    assert {r.outcome for r in results} == {Outcome.sent}
    counts = received(handler)
    assert counts == {m.recipient: (2 if n < 4 else 1) for n, m in enumerate(outgoing)}
    assert max(handler.per_session.values()) == 3 and len(handler.per_session) >= 8
    # Every full session but the last one of each lane (QUIT at close) ended with the server's 421.
    assert sum(n for (kind, _), n in handler.faults.items() if kind == "close_after") >= 6


# --- the whole delivery loop: faults become retries, retries become exactly one copy -------------

@pytest.mark.parametrize("faulty", [{"fault_times": 2}], indirect=True)
def test_the_delivery_loop_ends_with_every_reader_exactly_once(faulty, tmp_path, db_url):
    controller, handler = faulty
    extra = f"""
        [mail.smtp]
        port = {controller.port}
        timeout = 5
        pool_size = 2

        [delivery]
        batch_size = 7
        retry_base_seconds = 1
        retry_max_seconds = 2
        """
    config = write_config(tmp_path, db_url, extra)
    config.write_text(config.read_text().replace('transport = "file"', 'transport = "smtp"'))
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    kinds = ["fine", "closing", "droprcpt", "dropdata", "later", "unknown"]
    emails = [f"{kinds[n % len(kinds)]}{n:03d}@example.com" for n in range(36)]
    with session_scope(engine) as session:
        session.execute(insert(Subscriber), [
            {"email": e, "name": "", "status": "active", "created_at": utcnow()} for e in emails])
    issue_id = draft_issue(engine, settings, "2026-W48").issue.id
    assert start_send(engine, issue_id).enqueued == 36
    transport = make_transport(settings)
    try:
        # A frozen clock: a retry (due 0.5-1 s later) never comes due within the first call, however
        # slow the machine.
        frozen = utcnow()
        first = deliver(engine, settings, transport, TEST_SECRET, issue_id, clock=lambda: frozen)
        # Flaky addresses met their fault twice in the first call (two sessions): retry, not lost.
        assert (first.sent, first.retry, first.failed) == (6, 24, 6), first
        later = frozen + timedelta(minutes=1)  # every retry of the first call is due; none of the second's
        second = deliver(engine, settings, transport, TEST_SECRET, issue_id, clock=lambda: later)
    finally:
        transport.close()
    # "later" addresses are refused with 451 every time: they keep retrying; the rest got through.
    assert (second.sent, second.retry) == (18, 6), second
    with session_scope(engine) as session:
        state = {email: (s, attempts) for email, s, attempts in session.execute(
            select(Subscriber.email, Delivery.state, Delivery.attempts)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id).where(Delivery.issue_id == issue_id))}
        assert outbox.counts(session, issue_id) == {"sent": 24, "retry": 6, "failed": 6}
    assert {e for e, (s, _) in state.items() if s == "failed"} == {e for e in emails if e.startswith("unknown")}
    assert {e for e, (s, _) in state.items() if s == "retry"} == {e for e in emails if e.startswith("later")}
    sent = {e for e, (s, _) in state.items() if s == "sent"}
    assert received(handler) == {e: 1 for e in sent}  # none lost, none doubled
    assert all(state[e][1] == (1 if e.startswith("fine") else 2) for e in sent)
    engine.dispose()


@pytest.mark.parametrize("faulty", [{"delay": 1.0}], indirect=True)
def test_a_slow_end_of_data_reply_is_waited_for_and_nothing_arrives_twice(faulty):
    """The server takes a second to answer each message's end of data (a content filter at work),
    longer than the session's timeout (0.3 s): the reply is waited for up to `data_done_timeout`.
    Given up on at the session's timeout, the message was sent again on a new session while the
    server went on to take the first copy: two copies for one reader."""
    controller, handler = faulty
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=0.3,
                                           data_done_timeout=20, pool_size=1))
    try:
        results = transport.send([message(f"slow{n}@example.com", n) for n in range(3)])
    finally:
        transport.close()
    assert [result.outcome for result in results] == [Outcome.sent] * 3
    assert received(handler) == Counter({f"slow{n}@example.com": 1 for n in range(3)})


@pytest.mark.parametrize("faulty", [{"delay": 3.0}], indirect=True)
def test_the_long_wait_for_an_end_of_data_reply_ends_with_the_sends_half_of_the_lease(faulty):
    """A batch must be sent within half its lease (the record has the other half), or another
    worker takes it over and its readers get it twice: the wait for an end-of-data reply ends
    there however long `data_done_timeout` is (`wait_limit`, made half the lease by
    make_transport; 1 s here), and the message is left to retry."""
    controller, handler = faulty
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=0.3,
                                           data_done_timeout=20, pool_size=1))
    transport.wait_limit = 1.0
    started = time.monotonic()
    try:
        results = transport.send([message("slow0@example.com", 0)])
    finally:
        transport.close()
    assert results[0].outcome == Outcome.retry  # waited the full 20 s, the server's 250 came after 3 s
    assert time.monotonic() - started < 10
