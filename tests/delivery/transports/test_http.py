"""The shared mechanics of the HTTP provider transports, and their configuration."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
from pydantic import SecretStr

from newsletter.config import PostmarkSettings, load_settings
from newsletter.delivery.transports import make_transport
from newsletter.mail.message import OutgoingMessage, format_address
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.http import http_failure, retry_after_seconds
from newsletter.mail.reader import parse_message
from newsletter.delivery.transports.mailgun import MailgunTransport
from newsletter.delivery.transports.postmark import PostmarkTransport
from newsletter.delivery.transports.resend import ResendTransport
from newsletter.delivery.transports.sendgrid import SendgridTransport
from newsletter.delivery.transports.ses import SesTransport
from newsletter.errors import ConfigError
from newsletter.mail.headers import encode_address, encode_text, header_line
from newsletter.mail.mime import message_template
from newsletter.mail.slots import SlotMarker
from tests.conftest import write_config
from tests.fakes.provider_server import ProviderServer, small_messages

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("-4") == 0.0
    assert retry_after_seconds(format_datetime(NOW + timedelta(seconds=90), usegmt=True), now=NOW) == 90.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 0.0  # in the past
    for unreadable in (None, "", "soon", "nan", "inf"):
        assert retry_after_seconds(unreadable) is None


def response(status, body=b"", headers=None):
    made = requests.Response()
    made.status_code = status
    made._content = body
    made.headers.update(headers or {})
    return made


@pytest.mark.parametrize("status, outcome", [
    (200, None), (202, None),
    (400, Outcome.failed), (404, Outcome.failed), (413, Outcome.failed), (422, Outcome.failed),
    (401, Outcome.retry), (403, Outcome.retry), (408, Outcome.retry), (429, Outcome.retry),
    (500, Outcome.retry), (502, Outcome.retry), (503, Outcome.retry),
])
def test_status_to_outcome(status, outcome):
    result = http_failure("p", response(status, b'{"message": "why"}'))
    assert (result.outcome if result else None) == outcome
    if result:
        assert result.error.startswith(f"p: HTTP {status}: why")


def test_429_carries_retry_after():
    result = http_failure("p", response(429, b"slow down", {"Retry-After": "12"}))
    assert (result.outcome, result.retry_after, result.error) == (Outcome.retry, 12.0, "p: HTTP 429: slow down")


def test_addresses_for_json_apis():
    assert format_address("", "a@example.com") == "a@example.com"
    assert format_address("Ann Reader", "a@example.com") == "Ann Reader <a@example.com>"
    assert format_address('Doe, Jane "JD"', "j@example.com") == '"Doe, Jane \\"JD\\"" <j@example.com>'


def one_message(headers, text="plain ü\nline 2\n", html="<p>html ü</p>", recipient="doe@example.com"):
    marker = SlotMarker()
    template = message_template(headers, marker.split(text), marker.split(html))
    return OutgoingMessage("verdicts@weeklyverdicts.example", recipient, template.render([], {})[0], "i1-d1")


def test_parse_decodes_names_and_subject_and_keeps_list_headers_as_written():
    message = one_message([
        header_line("From", encode_address("Wöchentliche Urteile <verdicts@weeklyverdicts.example>")),
        header_line("To", encode_address('"Dœ, Jäne" <doe@example.com>')),
        header_line("Reply-To", encode_address("Desk <desk@weeklyverdicts.example>")),
        header_line("Subject", encode_text("Subject", "Ünïcode — " + "long subject " * 8)),
        header_line("List-Id", '"Wöchentliche Urteile" <wu.weeklyverdicts.example>'),  # raw UTF-8
        header_line("List-Unsubscribe", "<https://verdicts.example/unsubscribe/" + "t" * 120 + ">"),
        header_line("X-Other", "not passed through"),
    ])
    assert b"=?utf-8?" in message.data  # the names and subject really are encoded words
    parsed = parse_message(message)
    assert parsed.from_header == "Wöchentliche Urteile <verdicts@weeklyverdicts.example>"
    assert parsed.to_header == '"Dœ, Jäne" <doe@example.com>'
    assert parsed.reply_to_header == "Desk <desk@weeklyverdicts.example>"
    assert parsed.subject == "Ünïcode — " + "long subject " * 8
    assert parsed.text.text == "plain ü\nline 2\n" and parsed.html.text == "<p>html ü</p>"
    assert parsed.headers == {
        "List-Id": '"Wöchentliche Urteile" <wu.weeklyverdicts.example>',
        "List-Unsubscribe": "<https://verdicts.example/unsubscribe/" + "t" * 120 + ">",
    }


def test_an_unusable_message_fails_alone():
    good = small_messages(2)
    broken = OutgoingMessage("x@example.com", "x@example.com", b"Subject: no sender\r\n\r\nbody\r\n", "i1-dx")
    with ProviderServer("postmark", token="t") as server:
        sender = PostmarkTransport(PostmarkSettings(token=SecretStr("t"), base_url=server.url))
        results = sender.send([good[0], broken, good[1]])
    assert [r.outcome for r in results] == [Outcome.sent, Outcome.failed, Outcome.sent]
    assert "no From" in results[1].error
    assert [len(r.json) for r in server.requests] == [2]


def test_a_call_out_of_time_tries_nothing_more():
    with ProviderServer("postmark", token="t") as server:
        sender = PostmarkTransport(PostmarkSettings(token=SecretStr("t"), base_url=server.url))
        sender.time_budget = -1
        results = sender.send(small_messages(3))
    assert server.requests == []
    assert {r.outcome for r in results} == {Outcome.retry} and "out of time" in results[0].error


ENV = {
    "postmark": {"TOKEN": "x"},
    "sendgrid": {"API_KEY": "x"},
    "mailgun": {"API_KEY": "x", "DOMAIN": "mg.weeklyverdicts.example"},
    "resend": {"API_KEY": "x"},
    "ses": {"ACCESS_KEY_ID": "AKIDX", "SECRET_ACCESS_KEY": "x", "REGION": "eu-central-1"},
}
CLASSES = {"postmark": PostmarkTransport, "sendgrid": SendgridTransport, "mailgun": MailgunTransport,
           "resend": ResendTransport, "ses": SesTransport}


@pytest.mark.parametrize("kind", sorted(ENV))
def test_make_transport_builds_each_provider_from_the_environment(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_MAIL__TRANSPORT", kind)
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=f"NEWSLETTER_MAIL__{kind.upper()}__"):
        make_transport(load_settings(path))
    for key, value in ENV[kind].items():
        monkeypatch.setenv(f"NEWSLETTER_MAIL__{kind.upper()}__{key}", value)
    made = make_transport(load_settings(path))
    try:
        assert isinstance(made, CLASSES[kind]) and made.name == kind
        assert made.url.startswith("https://")
    finally:
        made.close()


def test_ses_endpoint_follows_the_region(tmp_path, monkeypatch):
    for key, value in {**ENV["ses"], "": ""}.items():
        if key:
            monkeypatch.setenv(f"NEWSLETTER_MAIL__SES__{key}", value)
    monkeypatch.setenv("NEWSLETTER_MAIL__TRANSPORT", "ses")
    made = make_transport(load_settings(write_config(tmp_path)))
    assert made.url == "https://email.eu-central-1.amazonaws.com/v2/email/outbound-emails"


@pytest.mark.parametrize("section, key", [("postmark", "token"), ("ses", "secret_access_key")])
def test_api_keys_in_the_config_file_are_refused(section, key, tmp_path):
    path = write_config(tmp_path, extra=f'\n[mail.{section}]\n{key} = "leaked"\n')
    with pytest.raises(ConfigError, match=f"NEWSLETTER_MAIL__{section.upper()}__{key.upper()}"):
        load_settings(path)


def test_provider_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="mail.postmark.base_url"):
        load_settings(write_config(tmp_path, extra='\n[mail.postmark]\nbase_url = "api.postmarkapp.com"\n'))
    with pytest.raises(ConfigError, match="mail.ses.region"):
        load_settings(write_config(tmp_path, extra='\n[mail.ses]\nregion = "eu-west-1/evil"\n'))
    settings = load_settings(write_config(tmp_path, extra='\n[mail.postmark]\nmessage_stream = "weekly"\n'))
    assert settings.mail.postmark.message_stream == "weekly"
