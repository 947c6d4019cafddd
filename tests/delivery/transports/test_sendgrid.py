import pytest
from pydantic import SecretStr

from newsletter.config import SendgridSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.sendgrid import SendgridTransport
from newsletter.errors import ConfigError
from tests.fakes.provider_server import ProviderServer, parse, project_messages, small_messages

KEY = "SG.test-key"
READERS = [("ann@example.com", "Ann Reader"), ("bob@example.com", ""), ("bad@example.com", "")]


@pytest.fixture
def server():
    with ProviderServer("sendgrid", api_key=KEY) as running:
        yield running


def transport(server, key=KEY):
    made = SendgridTransport(SendgridSettings(api_key=SecretStr(key), base_url=server.url))
    made.retry_delays = (0.01, 0.01)
    return made


def test_readers_of_one_issue_share_one_request_with_personal_substitutions(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    results = transport(server).send(messages)

    assert [r.outcome for r in results] == [Outcome.sent] * 3
    assert len(server.requests) == 1 and {r.headers["authorization"] for r in server.requests} == {f"Bearer {KEY}"}
    payload = server.requests[0].json
    assert [p["to"] for p in payload["personalizations"]] == [
        [{"email": "ann@example.com", "name": "Ann Reader"}], [{"email": "bob@example.com"}],
        [{"email": "bad@example.com"}]]
    assert payload["from"] == {"email": "verdicts@weeklyverdicts.example", "name": "Weekly Verdicts"}
    assert payload["subject"] == "Weekly Verdicts — Claude vs Gemini"
    assert [c["type"] for c in payload["content"]] == ["text/plain", "text/html"]
    # The body went once, with tags where the readers' values go.
    assert not any(email in c["value"] for c in payload["content"] for email, _ in READERS)
    # What each reader gets once SendGrid substitutes: exactly their own message.
    assert [a.to for a in server.accepted] == [email for email, _ in READERS]
    assert {r.provider_id for r in results} == {server.accepted[0].id}
    for message, accepted in zip(messages, server.accepted):
        original = parse(message.data)
        text, html = (c["value"] for c in accepted.fields["content"])
        assert html == original.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert text == original.get_body(("plain",)).get_content().replace("\r\n", "\n")
        personalization = accepted.fields["personalizations"][0]
        assert personalization["custom_args"] == {"reference": message.reference}
        headers = personalization["headers"]
        assert headers["List-Unsubscribe"] == original["List-Unsubscribe"]
        assert headers["List-Unsubscribe"][1:-1] in html  # the reader's own link, in their body
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert headers["Message-ID"] == original["Message-ID"]
        assert headers["X-Weekly-Verdicts-Delivery"] == message.reference


def test_one_bad_reader_fails_alone_when_sendgrid_refuses_the_request(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    server.rejects["bad@example.com"] = "Does not contain a valid address."
    results = transport(server).send(messages)

    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent, Outcome.failed]
    assert "HTTP 400" in results[2].error and "valid address" in results[2].error
    # The refused batch, then one request per reader; nobody got it twice.
    assert [len(r.json["personalizations"]) for r in server.requests] == [3, 1, 1, 1]
    assert [a.to for a in server.accepted] == ["ann@example.com", "bob@example.com"]
    assert [r.provider_id for r in results[:2]] == [a.id for a in server.accepted]
    alone = server.requests[1].json
    assert alone["custom_args"] == {"reference": messages[0].reference}
    assert alone["headers"]["Message-ID"] == parse(messages[0].data)["Message-ID"]


def test_a_batch_over_a_thousand_readers_is_cut_at_the_limit(server, tmp_path):
    readers = [(f"r{n}@example.com", "") for n in range(1001)]
    results = transport(server).send(project_messages(tmp_path, readers))
    assert [r.outcome for r in results] == [Outcome.sent] * 1001
    assert [len(r.json["personalizations"]) for r in server.requests] == [1000, 1]
    assert sorted(a.to for a in server.accepted) == sorted(email for email, _ in readers)


def test_429_is_retry_with_retry_after_and_stops_the_call(server):
    server.respond(429, {"errors": [{"message": "too many requests"}]}, {"Retry-After": "30"})
    results = transport(server).send(small_messages(5))
    assert len(server.requests) == 1
    assert [(r.outcome, r.retry_after) for r in results] == [(Outcome.retry, 30.0)] * 5
    assert "too many requests" in results[0].error and "not tried" in results[1].error


def test_5xx_is_retry(server):
    server.respond(502, "Bad Gateway", times=3)
    results = transport(server).send(small_messages(1))
    assert len(server.requests) == 3
    assert results[0].outcome == Outcome.retry and "HTTP 502" in results[0].error


def test_4xx_is_failed_and_the_next_message_still_goes(server):
    server.respond(413, {"errors": [{"message": "payload too large"}]})
    results = transport(server).send(small_messages(2))
    assert [r.outcome for r in results] == [Outcome.failed, Outcome.sent]
    assert "payload too large" in results[0].error


def test_a_rejected_key_is_retry(server):
    results = transport(server, key="SG.wrong").send(small_messages(1))
    assert results[0].outcome == Outcome.retry and "HTTP 401" in results[0].error
    assert server.accepted == []


def test_missing_key_is_a_config_error():
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__SENDGRID__API_KEY"):
        SendgridTransport(SendgridSettings())
