"""Outgoing webhooks end to end on SQLite and PostgreSQL: an endpoint registered, an event
emitted in a transaction, the queue posting it signed to a real local HTTP receiver, retries
with backoff against a failing one, and nothing sent for a rolled-back change."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.delivery import webhook_endpoints, webhooks_out
from newsletter.editors import audit
from newsletter.editors.models import AuditEntry
from newsletter.migrate import upgrade
from newsletter.outgoing import WebhookDelivery, emit
from tests.conftest import write_config
from tests.fakes.webhook_receiver import Receiver, refused_url

HOOKS = """
[outgoing_webhooks]
allow_loopback_http = true
timeout_seconds = 1
max_attempts = 3
retry_base_seconds = 10
retry_max_seconds = 100
"""


@pytest.fixture
def hooks(tmp_path, db_url):
    settings = load_settings(write_config(tmp_path, db_url, HOOKS))
    engine = make_engine(settings.database.url)
    upgrade(engine)
    yield settings, engine
    engine.dispose()


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


def register(engine, settings, url, events=("reader.confirmed",)):
    with session_scope(engine) as session:
        endpoint, secret = webhook_endpoints.register(session, url, list(events), "test", settings.outgoing_webhooks,
                                                      audit.Actor.cli())
        return endpoint.id, secret


def rows(engine):
    with session_scope(engine) as session:
        found = list(session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        session.expunge_all()
        return found


def test_a_delivery_is_signed_as_documented_and_recorded(hooks, receiver):
    settings, engine = hooks
    endpoint_id, secret = register(engine, settings, receiver.url, ["reader.confirmed", "vote.recorded"])
    receiver.secret = secret
    assert secret.startswith("whsec_")
    with session_scope(engine) as session:
        assert emit(session, "reader.confirmed", {"email": "ada@example.com"}) == 1
        assert emit(session, "issue.started", {"issue_id": 1}) == 0  # nobody listens to it
    report = webhooks_out.send_due(engine, settings)
    assert (report.sent, report.retry, report.failed) == (1, 0, 0)
    [got] = receiver.received
    assert got.valid, "the receiver's documented check refused the signature"
    assert got.event["type"] == "reader.confirmed" and got.event["data"] == {"email": "ada@example.com"}
    assert got.headers["X-WV-Event"] == "reader.confirmed" and got.headers["Content-Type"] == "application/json"
    [row] = rows(engine)
    assert row.state == "sent" and row.last_status == 204 and row.attempts == 1 and row.last_attempt_at
    assert got.headers["X-WV-Event-Id"] == row.event_id == got.event["id"]
    # A forged or altered body fails the same check.
    assert not webhooks_out.verify(secret, got.headers["X-WV-Signature"], got.body + b" ")
    assert webhooks_out.verify(secret, got.headers["X-WV-Signature"], got.body)


def test_an_event_in_a_rolled_back_transaction_is_never_sent(hooks, receiver):
    settings, engine = hooks
    register(engine, settings, receiver.url)
    with pytest.raises(RuntimeError):
        with session_scope(engine) as session:
            emit(session, "reader.confirmed", {"email": "ghost@example.com"})
            raise RuntimeError("the change failed after the event was emitted")
    assert rows(engine) == []
    assert webhooks_out.send_due(engine, settings).worked == 0
    assert receiver.received == []


@pytest.mark.parametrize("failure", ["fail", "slow", "refused"])
def test_a_failing_receiver_is_retried_with_backoff_then_given_up(hooks, receiver, failure):
    settings, engine = hooks
    receiver.mode = failure if failure != "refused" else "ok"
    url = refused_url() if failure == "refused" else receiver.url
    register(engine, settings, url)
    with session_scope(engine) as session:
        emit(session, "reader.confirmed", {"email": "ada@example.com"})
    now, delays = utcnow(), []
    for attempt in (1, 2, 3):
        report = webhooks_out.send_due(engine, settings, now=now)
        [row] = rows(engine)
        assert row.attempts == attempt
        if attempt < 3:
            assert report.retry == 1 and row.state == "retry"
            delays.append((row.next_attempt_at - row.last_attempt_at).total_seconds())
            # Not due before its time: a claim now takes nothing.
            assert webhooks_out.send_due(engine, settings, now=now).worked == 0
            now = row.next_attempt_at + timedelta(seconds=1)
        else:
            assert report.failed == 1 and row.state == "failed" and row.next_attempt_at is None
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20, delays  # base 10 s, doubled, with jitter
    if failure == "fail":
        assert row.last_status == 500 and "receiver is down" in row.last_response
    else:
        assert row.last_status is None and row.last_error  # timeout or refused: no answer
    assert webhooks_out.send_due(engine, settings, now=now + timedelta(days=1)).worked == 0  # given up for good
    expected_posts = 0 if failure == "refused" else 3
    assert len(receiver.received) == expected_posts


def test_registration_refuses_bad_urls_and_events(hooks):
    settings, engine = hooks
    strict = settings.outgoing_webhooks.model_copy(update={"allow_loopback_http": False})
    cases = [("http://127.0.0.1:9/x", strict, "https://"), ("http://example.com/x", settings.outgoing_webhooks,
             "https://"), ("ftp://example.com", strict, "https://"), ("https://user:pw@example.com", strict,
             "user name"), ("not a url", strict, "without spaces"), ("https://", strict, "host")]
    for url, cfg, reason in cases:
        with pytest.raises(webhook_endpoints.EndpointError, match=reason) as caught:
            webhook_endpoints.check_url(url, cfg)
        assert str(caught.value).startswith("url:")
    assert webhook_endpoints.check_url("https://hooks.example.com/in", strict) == "https://hooks.example.com/in"
    with pytest.raises(webhook_endpoints.EndpointError, match="events: unknown"):
        webhook_endpoints.check_events(["reader.exploded"])
    with pytest.raises(webhook_endpoints.EndpointError, match="events: choose"):
        webhook_endpoints.check_events([])


def test_remove_skips_queued_deliveries_and_everything_is_audited(hooks, receiver):
    settings, engine = hooks
    endpoint_id, _secret = register(engine, settings, receiver.url)
    with session_scope(engine) as session:
        emit(session, "reader.confirmed", {"email": "ada@example.com"})
        webhook_endpoints.queue_test(session, endpoint_id, audit.Actor.cli())
    with session_scope(engine) as session:
        webhook_endpoints.remove(session, endpoint_id, audit.Actor.cli())
        assert emit(session, "reader.confirmed", {"email": "bob@example.com"}) == 0
    assert {row.state for row in rows(engine)} == {"skipped"}
    assert webhooks_out.send_due(engine, settings).worked == 0 and receiver.received == []
    with session_scope(engine) as session:
        actions = [entry.action for entry in session.exec(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["webhook.create", "webhook.test", "webhook.remove"]


def test_the_worker_and_the_serve_sender_deliver_them(hooks, receiver, monkeypatch):
    """Nothing calls send_due by hand here: `newsletter worker --until-idle` and the sender
    thread inside `serve` take the rows like every other queue."""
    import time

    from newsletter.delivery.background import BackgroundSender
    from newsletter.delivery.worker import run_worker
    from tests.conftest import TEST_SECRET

    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", TEST_SECRET)
    settings, engine = hooks
    _endpoint_id, receiver.secret = register(engine, settings, receiver.url)
    with session_scope(engine) as session:
        emit(session, "reader.confirmed", {"email": "by-worker@example.com"})
    lines = []
    run_worker(engine, settings, until_idle=True, echo=lines.append)
    assert [got.event["data"]["email"] for got in receiver.received] == ["by-worker@example.com"]
    assert any(line.startswith("webhooks: 1 delivered") for line in lines), lines

    sender = BackgroundSender(engine, settings, TEST_SECRET, interval=60)
    sender.start()
    try:
        with session_scope(engine) as session:
            emit(session, "reader.confirmed", {"email": "by-serve@example.com"})
        sender.wake.set()
        deadline = time.monotonic() + 10
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sender.shutdown()
    assert receiver.received[-1].event["data"]["email"] == "by-serve@example.com"
    assert all(got.valid for got in receiver.received)
    assert {row.state for row in rows(engine)} == {"sent"}
