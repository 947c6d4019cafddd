from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template, list_id
from newsletter.mail.compile import CompiledEmail
from newsletter.mail.headers import encode_address, header_line
from newsletter.mail.mime import qp_encode
from newsletter.mail.slots import SlotMarker
from newsletter.tokens import InvalidToken, Purpose, make_token, read_token
from tests.conftest import TEST_SECRET

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def compiled(subject="Ünïcode subject — Claude Haiku Open Weights vs Hugging Face Inference Providers v2"):
    marker = SlotMarker()
    html = marker.split(f"<p>Hi {marker('email')}</p><a href=\"{marker('unsubscribe_url')}\">Unsubscribe</a>"
                        f"<a href=\"{marker('preferences_url')}\">Prefs</a><p>{'Long line ' * 40}— ü</p>")
    text = marker.split(f"Hi {marker('email')}\nUnsubscribe: {marker('unsubscribe_url')}\n"
                        f"Prefs: {marker('preferences_url')}\n{'word ' * 30}— ü\n. leading dot\n")
    return CompiledEmail(subject, html, text)


def build(settings, recipient=IssueRecipient("reader@example.com", "Rëader Name", 42, "i7-d42")):
    template = build_template(settings, compiled())
    return issue_message(settings, TEST_SECRET, template, recipient, NOW)


def test_message_headers_and_parts(settings):
    message, msg_id = build(settings)
    raw = message.data
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["From"] == "Weekly Verdicts <verdicts@weeklyverdicts.example>"
    assert parsed["To"] == "Rëader Name <reader@example.com>"
    assert parsed["Subject"] == compiled().subject
    assert parsed["Date"] == "Thu, 26 Nov 2026 08:00:00 +0000"
    assert parsed["Message-ID"] == msg_id and msg_id.endswith("@weeklyverdicts.example>")
    assert parsed["List-Id"] == list_id(settings)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in parsed.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    # The List-Unsubscribe URL is one unfolded line, never an RFC 2047 encoded word.
    line = next(l for l in raw.split(b"\r\n") if l.startswith(b"List-Unsubscribe:"))
    url = line.split(b"<", 1)[1].rstrip(b">").decode()
    assert url.startswith("https://verdicts.example/unsubscribe/") and "=?" not in url
    token = url.rsplit("/", 1)[1]
    assert read_token(TEST_SECRET, Purpose.unsubscribe, token).subscriber_id == 42
    for raw_line in raw.split(b"\r\n"):
        assert len(raw_line) <= 998


def test_bodies_decode_to_the_filled_templates(settings):
    message, _ = build(settings)
    parsed = message_from_bytes(message.data, policy=policy.default)
    # Hard line breaks travel as CRLF; Python's decoder hands them back as CRLF.
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(("html",)).get_content()
    links = {"email": "reader@example.com"}
    unsub = message.data.split(b"List-Unsubscribe: <")[1].split(b">")[0].decode()
    expected_text = compiled().text.fill({**links, "unsubscribe_url": unsub, "preferences_url": "P"})
    assert text.split("Prefs: ")[0] == expected_text.split("Prefs: ")[0]
    assert text.endswith("— ü\n. leading dot\n")
    assert f'href="{unsub}"' in html and "— ü" in html
    for raw_line in message.data.split(b"\r\n"):
        assert len(raw_line) <= 78 or raw_line.startswith((b"List-Unsubscribe", b"Subject", b"To", b"From"))


def test_quoted_printable_pieces_concatenate_to_the_original():
    import quopri

    pieces = ["abc ", "x" * 200, "tail=é\n", "", "  ", "next\r\nline "]
    joined = b"".join(qp_encode(p) for p in pieces)
    assert quopri.decodestring(joined).decode() == "".join(pieces).replace("\r\n", "\n").replace("\n", "\r\n")


@pytest.mark.parametrize("value", ["Evil\r\nBcc: victim@example.com", "Tab\there", "Null\x00", "Line\u2028sep"])
def test_header_injection_is_rejected(value):
    with pytest.raises(ValueError, match="control character"):
        header_line("Subject", value)
    with pytest.raises(ValueError):
        encode_address(f"{value} <a@example.com>")


def test_a_name_with_control_characters_never_reaches_the_wire(settings):
    with pytest.raises(ValueError):
        build(settings, IssueRecipient("reader@example.com", "Bad\r\nBcc: x@example.com", 1, "r"))


def test_tokens_are_purpose_bound_and_tamper_evident():
    token = make_token(TEST_SECRET, Purpose.unsubscribe, 7)
    assert read_token(TEST_SECRET, Purpose.unsubscribe, token).subscriber_id == 7
    with pytest.raises(InvalidToken):
        read_token(TEST_SECRET, Purpose.preferences, token)
    with pytest.raises(InvalidToken):
        read_token("another-secret-" + "y" * 40, Purpose.unsubscribe, token)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(InvalidToken):
        read_token(TEST_SECRET, Purpose.unsubscribe, tampered)
    with pytest.raises(InvalidToken):
        read_token(TEST_SECRET, Purpose.unsubscribe, token, max_age=-1)
