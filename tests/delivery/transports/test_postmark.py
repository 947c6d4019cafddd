import socket
import time

import pytest
from pydantic import SecretStr
from sqlmodel import select

from newsletter.config import PostmarkSettings, load_settings
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.postmark import PostmarkTransport
from newsletter.errors import ConfigError
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import Subscriber, Suppression
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET, write_config
from tests.fakes.provider_server import ProviderServer, parse, project_messages, small_messages

TOKEN = "pm-server-token-test"
READERS = [("ann@example.com", "Ann Reader"), ("bob@example.com", ""), ("gone@example.com", "Gone")]


@pytest.fixture
def server():
    with ProviderServer("postmark", token=TOKEN) as running:
        yield running


def transport(server, token=TOKEN, **settings):
    made = PostmarkTransport(PostmarkSettings(token=SecretStr(token), base_url=server.url, **settings))
    made.retry_delays = (0.01, 0.01)
    return made


def test_a_batch_of_issue_messages(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    server.rejects["gone@example.com"] = 406
    results = transport(server).send(messages)

    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent, Outcome.failed]
    assert [r.provider_id for r in results[:2]] == [a.id for a in server.accepted]
    assert [a.to for a in server.accepted] == ["ann@example.com", "bob@example.com"]
    assert results[2].hard_bounce and "406" in results[2].error and "inactive" in results[2].error
    assert not results[0].hard_bounce and results[0].error is None

    (request,) = server.requests
    assert request.headers["accept"] == "application/json"
    batch = request.json
    assert len(batch) == 3
    first, original = batch[0], parse(messages[0].data)
    assert first["From"] == "Weekly Verdicts <verdicts@weeklyverdicts.example>"
    assert first["To"] == "Ann Reader <ann@example.com>" and batch[1]["To"] == "bob@example.com"
    assert first["Subject"] == "Weekly Verdicts — Claude vs Gemini"
    assert first["MessageStream"] == "broadcast"
    assert first["Metadata"] == {"reference": messages[0].reference}
    headers = {h["Name"]: h["Value"] for h in first["Headers"]}
    assert headers["List-Unsubscribe"] == original["List-Unsubscribe"]
    assert headers["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"] == original["List-Id"]
    assert headers["Message-ID"] == original["Message-ID"]
    assert headers["X-Weekly-Verdicts-Delivery"] == messages[0].reference
    assert set(headers) == {"List-Unsubscribe", "List-Unsubscribe-Post", "List-Id", "Message-ID",
                            "X-Weekly-Verdicts-Delivery"}
    assert first["TextBody"].startswith("Hi ann@example.com — this week")
    assert first["TextBody"] == original.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert first["HtmlBody"] == original.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert 'href="https://verdicts.example/unsubscribe/' in first["HtmlBody"]


def test_batches_are_split_at_500(server):
    messages = small_messages(1001)
    results = transport(server).send(messages)
    assert [len(r.json) for r in server.requests] == [500, 500, 1]
    assert all(r.outcome == Outcome.sent for r in results)
    assert [a.to for a in server.accepted] == [m.recipient for m in messages]
    assert [r.provider_id for r in results] == [a.id for a in server.accepted]
    assert len(set(r.provider_id for r in results)) == 1001


def test_429_is_retry_with_retry_after_and_stops_the_call(server):
    server.respond(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}, {"Retry-After": "7"})
    results = transport(server).send(small_messages(501))
    assert len(server.requests) == 1  # the second chunk is not tried against a throttling API
    assert len(results) == 501
    assert {r.outcome for r in results} == {Outcome.retry}
    assert {r.retry_after for r in results} == {7.0}
    assert "429" in results[0].error


def test_5xx_is_retried_briefly_in_call_then_retry(server):
    server.respond(500, times=3)
    results = transport(server).send(small_messages(2))
    assert len(server.requests) == 3  # the first try and two short in-call retries
    assert [r.outcome for r in results] == [Outcome.retry, Outcome.retry]
    assert results[0].retry_after is None and "HTTP 500" in results[0].error


def test_a_passing_5xx_is_absorbed_in_call(server):
    server.respond(503)
    results = transport(server).send(small_messages(2))
    assert len(server.requests) == 2
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent]
    assert len(server.accepted) == 2


def test_request_level_4xx_fails_the_messages(server):
    server.respond(422, {"ErrorCode": 300, "Message": "Invalid email request"})
    results = transport(server).send(small_messages(2))
    assert [r.outcome for r in results] == [Outcome.failed, Outcome.failed]
    assert not any(r.hard_bounce for r in results)
    assert "ErrorCode 300" in results[0].error


def test_per_message_codes(server):
    messages = small_messages(4)
    server.rejects[messages[1].recipient] = 300  # invalid request: this message only
    server.rejects[messages[2].recipient] = 405  # not allowed to send: the account, not the message
    results = transport(server).send(messages)
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.failed, Outcome.retry, Outcome.sent]
    assert not any(r.hard_bounce for r in results)


def test_a_rejected_token_is_retry_not_a_lost_list(server):
    results = transport(server, token="wrong").send(small_messages(2))
    assert [r.outcome for r in results] == [Outcome.retry, Outcome.retry]
    assert "HTTP 401" in results[0].error and "API key" in results[0].error


def test_no_server_is_retry(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = PostmarkTransport(PostmarkSettings(token=SecretStr(TOKEN), base_url=f"http://127.0.0.1:{port}"))
    made.retry_delays = (0.01,)
    started = time.monotonic()
    results = made.send(small_messages(2))
    assert [r.outcome for r in results] == [Outcome.retry, Outcome.retry]
    assert "connection" in results[0].error
    assert time.monotonic() - started < 5


def test_missing_token_is_a_config_error_at_creation():
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__POSTMARK__TOKEN"):
        PostmarkTransport(PostmarkSettings())


def add_readers(engine, emails):
    with session_scope(engine) as session:
        for email in emails:
            upsert_active(session, email, "", [], "import", UpsertResult())


def test_end_to_end_send_stores_provider_ids(sample_engine, tmp_path, db_url, monkeypatch, server):
    monkeypatch.setenv("NEWSLETTER_MAIL__TRANSPORT", "postmark")
    monkeypatch.setenv("NEWSLETTER_MAIL__POSTMARK__TOKEN", TOKEN)
    monkeypatch.setenv("NEWSLETTER_MAIL__POSTMARK__BASE_URL", server.url)
    settings = load_settings(write_config(tmp_path, db_url))
    add_readers(sample_engine, ["one@example.com", "two@example.com", "inactive@example.com"])
    server.rejects["inactive@example.com"] = 406

    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    assert start_send(sample_engine, issue.id).enqueued == 3
    sender = make_transport(settings)
    assert isinstance(sender, PostmarkTransport)
    try:
        report = deliver(sample_engine, settings, sender, TEST_SECRET, issue.id)
    finally:
        sender.close()

    assert (report.sent, report.failed, report.finished) == (2, 1, True)
    ids = {a.to: a.id for a in server.accepted}
    assert set(ids) == {"one@example.com", "two@example.com"}
    with session_scope(sample_engine) as session:
        rows = session.exec(select(Subscriber.email, Delivery.state, Delivery.provider_message_id)
                            .join(Delivery, Delivery.subscriber_id == Subscriber.id)).all()
        stored = {email: (state, provider_id) for email, state, provider_id in rows}
        assert stored["one@example.com"] == ("sent", ids["one@example.com"])
        assert stored["two@example.com"] == ("sent", ids["two@example.com"])
        assert stored["inactive@example.com"] == ("failed", None)
        assert session.exec(select(Suppression).where(Suppression.email == "inactive@example.com")).one()
    sent = server.accepted[0].fields
    headers = {h["Name"]: h["Value"] for h in sent["Headers"]}
    assert headers["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert sent["HtmlBody"].lstrip().lower().startswith(("<!doctype", "<html"))
