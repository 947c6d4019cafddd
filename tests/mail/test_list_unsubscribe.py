"""List-Unsubscribe: RFC 8058 one-click https first; a mailto: with a signed token when an
unsubscribe mailbox is configured. Read back with the stdlib email parser, as a client would."""

import re
from email import message_from_bytes, policy
from urllib.parse import unquote, urlsplit

import pytest

from newsletter.config import load_settings
from newsletter.errors import UserError
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.mail.headers import list_unsubscribe, unsubscribe_token_of
from newsletter.tokens import InvalidToken, Purpose, read_token
from tests.conftest import TEST_SECRET, write_config
from tests.mail.test_compose import NOW, compiled

MAILBOX = "unsubscribe@weeklyverdicts.example"


def header_uris(settings, subscriber_id=42):
    template = build_template(settings, compiled())
    message, _ = issue_message(settings, TEST_SECRET, template,
                               IssueRecipient("reader@example.com", "Reader", subscriber_id, "i7-d42"), NOW)
    parsed = message_from_bytes(message.data, policy=policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw_line = next(line for line in message.data.split(b"\r\n") if line.startswith(b"List-Unsubscribe:"))
    assert b"=?" not in raw_line  # one unfolded line, no encoded words
    return re.findall(r"<([^>]+)>", str(parsed["List-Unsubscribe"]))


def test_without_a_mailbox_only_the_one_click_link(tmp_path):
    settings = load_settings(write_config(tmp_path))
    uris = header_uris(settings)
    assert len(uris) == 1 and uris[0].startswith("https://verdicts.example/unsubscribe/")


def test_a_configured_mailbox_adds_a_mailto_after_the_https_link(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_MAIL__UNSUBSCRIBE_MAILBOX", MAILBOX)
    settings = load_settings(write_config(tmp_path))
    https, mailto = header_uris(settings, subscriber_id=42)
    assert https.startswith("https://verdicts.example/unsubscribe/")
    parts = urlsplit(mailto)
    assert parts.scheme == "mailto" and parts.path == MAILBOX
    subject = unquote(dict(p.split("=", 1) for p in parts.query.split("&"))["subject"])
    # The mailbox processor can act on the mail a client sends: the token is signed and names the reader.
    token = unsubscribe_token_of(f"Re: {subject}")
    assert token == https.rsplit("/", 1)[1]
    assert read_token(TEST_SECRET, Purpose.unsubscribe, token).subscriber_id == 42
    with pytest.raises(InvalidToken):
        read_token(TEST_SECRET, Purpose.preferences, token)  # purpose-bound


def test_the_mailbox_setting_is_checked(tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('[mail]\n', '[mail]\nunsubscribe_mailbox = "Unsub <u@x.example>, v@y"\n'))
    with pytest.raises(UserError, match="unsubscribe_mailbox"):
        load_settings(path)
    path.write_text(path.read_text().replace('"Unsub <u@x.example>, v@y"', f'"{MAILBOX}"'))
    assert load_settings(path).mail.unsubscribe_mailbox == MAILBOX


def test_a_token_that_is_not_url_safe_never_reaches_the_header():
    with pytest.raises(ValueError):
        list_unsubscribe("https://x.example/u/t", MAILBOX, "a b>\r\nBcc: x@y")
    assert unsubscribe_token_of("unsubscribe") is None
    assert unsubscribe_token_of("Please unsubscribe me") is None
