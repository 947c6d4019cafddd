import pytest
from pydantic import SecretStr

from newsletter.config import MailgunSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.mailgun import MailgunTransport
from newsletter.errors import ConfigError
from tests.fakes.provider_server import ProviderServer, parse, project_messages, small_messages

KEY = "key-test"
DOMAIN = "mg.weeklyverdicts.example"
READERS = [("ann@example.com", "Ann Reader"), ("bob@example.com", ""), ("bad@example.com", "")]


@pytest.fixture
def server():
    with ProviderServer("mailgun", api_key=KEY, domain=DOMAIN) as running:
        yield running


def transport(server, key=KEY, domain=DOMAIN):
    made = MailgunTransport(MailgunSettings(api_key=SecretStr(key), domain=domain, base_url=server.url))
    made.retry_delays = (0.01, 0.01)
    return made


def test_the_mime_bytes_go_as_they_are(server, tmp_path):
    messages = project_messages(tmp_path, READERS)
    server.rejects["bad@example.com"] = "invalid"
    results = transport(server).send(messages)

    assert [r.outcome for r in results] == [Outcome.sent, Outcome.sent, Outcome.failed]
    assert [r.provider_id for r in results[:2]] == [f"{a.id}@{DOMAIN}" for a in server.accepted]
    assert "HTTP 400" in results[2].error and "not a valid address" in results[2].error
    assert [r.path for r in server.requests] == [f"/v3/{DOMAIN}/messages.mime"] * 3
    for accepted, message in zip(server.accepted, messages):
        assert accepted.mime == message.data  # byte for byte
        assert accepted.fields["to"] == message.recipient
        assert accepted.fields["v:reference"] == message.reference
    sent = parse(server.accepted[0].mime)
    assert sent["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
    assert sent["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_429_is_retry_with_retry_after(server):
    server.respond(429, {"message": "rate limited"}, {"Retry-After": "3"})
    results = transport(server).send(small_messages(3))
    assert len(server.requests) == 1
    assert {(r.outcome, r.retry_after) for r in results} == {(Outcome.retry, 3.0)}


def test_5xx_is_retry_and_4xx_is_failed(server):
    server.respond(500, times=3)
    server.respond(400, {"message": "'from' parameter is missing"})
    results = transport(server).send(small_messages(1)) + transport(server).send(small_messages(1))
    assert [r.outcome for r in results] == [Outcome.retry, Outcome.failed]
    assert "'from' parameter is missing" in results[1].error
    assert len(server.requests) == 4


def test_a_wrong_key_or_domain(server):
    assert transport(server, key="key-wrong").send(small_messages(1))[0].outcome == Outcome.retry
    result = transport(server, domain="other.example").send(small_messages(1))[0]
    assert result.outcome == Outcome.failed and "HTTP 404" in result.error


def test_missing_key_or_domain_is_a_config_error():
    with pytest.raises(ConfigError, match="NEWSLETTER_MAIL__MAILGUN__API_KEY"):
        MailgunTransport(MailgunSettings(domain=DOMAIN))
    with pytest.raises(ConfigError, match="mail.mailgun.domain"):
        MailgunTransport(MailgunSettings(api_key=SecretStr(KEY)))
