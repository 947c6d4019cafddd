import pytest
from pydantic import SecretStr

from newsletter.config import ResendSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.resend import ResendTransport, idempotency_key
from newsletter.errors import ConfigError
from tests.fakes.provider_server import ProviderServer, parse, project_messages, small_messages

KEY = "re_test_key"
READERS = [("ann@example.com", "Ann Reader"), ("bad@example.com", ""), ("bob@example.com", "")]


@pytest.fixture
def server():
    with ProviderServer("resend", api_key=KEY) as running:
        yield running


def transport(server, key=KEY):
    made = ResendTransport(ResendSettings(api_key=SecretStr(key), base_url=server.url))
    made.retry_delays = (0.01, 0.01)
    return made


def test_a_batch_with_one_invalid_message(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    server.rejects["bad@example.com"] = "Invalid `to` field."
    results = transport(server).send(messages)

    assert [r.outcome for r in results] == [Outcome.sent, Outcome.failed, Outcome.sent]
    assert [results[0].provider_id, results[2].provider_id] == [a.id for a in server.accepted]
    assert [a.to for a in server.accepted] == ["ann@example.com", "bob@example.com"]
    assert "Invalid `to` field" in results[1].error

    (request,) = server.requests
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-batch-validation"] == "permissive"
    assert request.headers["idempotency-key"] == idempotency_key([m.reference for m in messages])
    first, original = request.json[0], parse(messages[0].data)
    assert first["from"] == "Weekly Verdicts <verdicts@weeklyverdicts.example>"
    assert first["to"] == ["Ann Reader <ann@example.com>"]
    assert first["subject"] == "Weekly Verdicts — Claude vs Gemini"
    assert first["text"] == original.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert first["html"] == original.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert first["tags"] == [{"name": "reference", "value": "i7-d1"}]
    assert first["headers"]["List-Unsubscribe"] == original["List-Unsubscribe"]
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["headers"]["Message-ID"] == original["Message-ID"]
    assert first["headers"]["X-Weekly-Verdicts-Delivery"] == messages[0].reference


def test_batches_are_split_at_100_with_a_key_per_batch(server):
    messages = small_messages(250)
    results = transport(server).send(messages)
    assert [len(r.json) for r in server.requests] == [100, 100, 50]
    assert [r.headers["idempotency-key"] for r in server.requests] == [
        idempotency_key([m.reference for m in messages[i:i + 100]]) for i in (0, 100, 200)]
    assert len({r.headers["idempotency-key"] for r in server.requests}) == 3
    assert [r.provider_id for r in results] == [a.id for a in server.accepted]
    assert [a.to for a in server.accepted] == [m.recipient for m in messages]


def test_a_repeated_batch_is_not_sent_twice(server):
    messages = small_messages(3)
    first = transport(server).send(messages)
    again = transport(server).send(messages)  # e.g. the answer was lost and the batch is sent again
    assert len(server.requests) == 2 and len(server.accepted) == 3
    assert [r.provider_id for r in again] == [r.provider_id for r in first]
    assert {r.outcome for r in again} == {Outcome.sent}


def test_a_5xx_retried_in_call_keeps_the_key_and_body(server):
    server.respond(500)
    results = transport(server).send(small_messages(2))
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent]
    one, two = server.requests
    assert (one.headers["idempotency-key"], one.body) == (two.headers["idempotency-key"], two.body)


def test_the_same_deliveries_with_new_content_are_not_sent_again(server):
    transport(server).send(small_messages(2))
    changed = small_messages(2, domain="example.org")  # same references, different bodies
    results = transport(server).send(changed)
    assert {r.outcome for r in results} == {Outcome.failed}
    assert "HTTP 409" in results[0].error
    assert "submitted to Resend before" in results[0].error
    assert len(server.accepted) == 2


def test_429_is_retry_with_retry_after(server):
    server.respond(429, {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"},
                   {"Retry-After": "2"})
    results = transport(server).send(small_messages(150))
    assert len(server.requests) == 1
    assert {(r.outcome, r.retry_after) for r in results} == {(Outcome.retry, 2.0)}


def test_5xx_is_retry_and_4xx_is_failed(server):
    server.respond(503, times=3)
    assert {r.outcome for r in transport(server).send(small_messages(2))} == {Outcome.retry}
    server.respond(422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `from` field."})
    failed = transport(server).send(small_messages(2, start=10))
    assert {r.outcome for r in failed} == {Outcome.failed} and "Invalid `from` field" in failed[0].error


def test_concurrent_idempotent_request_is_retry(server):
    server.respond(409, {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"})
    assert transport(server).send(small_messages(1))[0].outcome == Outcome.retry


def test_missing_key_is_a_config_error():
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__RESEND__API_KEY"):
        ResendTransport(ResendSettings(api_key=SecretStr("  ")))
