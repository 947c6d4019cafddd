"""A message's `content` (the fields the JSON APIs take, built from the template) says exactly what
its bytes say, and `dumps` splices the bodies' ready JSON literals into valid, equal JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail.message import PlainBody
from newsletter.delivery.transports.http import dumps
from newsletter.mail.reader import parse_message
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.compose import build_template
from newsletter.issues.render import compile_issue
from newsletter.mail.mime import FilledBody, encode_part
from newsletter.mail.slots import SlotMarker, Slotted
from newsletter.delivery.transactional import build_message
from newsletter.subscribers.models import TransactionalMail
from tests.conftest import TEST_SECRET

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def assert_same_fields(content, parsed) -> None:
    assert content is not None and parsed is not content
    for name in ("sender_name", "sender", "recipient_name", "recipient", "subject", "reply_to", "headers"):
        assert getattr(content, name) == getattr(parsed, name), name
    for part in ("text", "html"):
        ours, theirs = getattr(content, part), getattr(parsed, part)
        assert ours.text == theirs.text, part
        assert ours.json == json.dumps(theirs.text, ensure_ascii=False).encode("utf-8"), part


@pytest.fixture(scope="module")
def issue_setup(tmp_path_factory):
    from bench.sample import sample_issue_view

    config, view = sample_issue_view(tmp_path_factory.mktemp("content"))
    mail = config.mail.model_copy(update={
        "from_address": 'Wöchentliche "Urteile" <verdicts@weeklyverdicts.example>',
        "reply_to": '"Desk, Editors" <desk@weeklyverdicts.example>'})
    config = config.model_copy(update={"mail": mail})
    return config, build_template(config, compile_issue(view))


@pytest.mark.parametrize("name", ["", "Zoë Ä", 'Doe, Jane "JD"'])
def test_an_issue_message_content_equals_its_bytes_read_back(issue_setup, name):
    config, template = issue_setup
    message, _ = issue_message(config, TEST_SECRET, template, IssueRecipient("reader+x@example.com", name, 7, "i1-d7"),
                               NOW, signer=None)
    parsed = parse_message(message, use_content=False)
    assert_same_fields(message.content, parsed)
    assert parse_message(message) is message.content  # the transports take the content
    assert set(message.content.headers) == {"List-Id", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
                                            "X-Weekly-Verdicts-Delivery"}
    assert message.content.reply_to == (("Desk, Editors", "desk@weeklyverdicts.example"),)
    # The per-recipient values really are in the bodies (the slots were filled).
    assert message.content.headers["List-Unsubscribe"][1:-1] in message.content.html.text


def test_a_transactional_message_content_equals_its_bytes_read_back(settings):
    row = TransactionalMail(id=5, subscriber_id=3, kind="confirm", to_email="new@example.com")
    values = {"email": "new@example.com", "action_url": "https://verdicts.example/confirm/abc",
              "preferences_url": "", "unsubscribe_url": "", "vote_token": "", "track_token": ""}
    message = build_message(settings, TEST_SECRET, row, "Nöw Reader", values, NOW)
    assert_same_fields(message.content, parse_message(message, use_content=False))
    assert "https://verdicts.example/confirm/abc" in message.content.text.text


def filled(statics: list[str], value: str, content_type: str) -> FilledBody:
    marker = SlotMarker()
    slot = str(marker("value"))
    slotted: Slotted = marker.split(slot.join(statics))
    return FilledBody(encode_part(content_type, slotted), {"value": value})


odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=80)


@settings(max_examples=80, deadline=None)
@given(st.lists(odd_text, min_size=1, max_size=4), odd_text, st.sampled_from(["text/plain", "text/html"]))
def test_spliced_json_decodes_to_the_filled_text(statics, value, content_type):
    body = filled(statics, value, content_type)
    payload = [{"HtmlBody": body, "To": value, "n": 1}, {"TextBody": PlainBody(value), "x": [body, None]}]
    decoded = json.loads(dumps(payload))
    assert decoded == [{"HtmlBody": body.text, "To": value, "n": 1},
                       {"TextBody": value, "x": [body.text, None]}]
    assert json.loads(body.json) == body.text


def test_a_value_that_looks_like_the_marker_is_only_a_value():
    body = PlainBody("real body")
    payload = {"a": "\x00wv-json-0000000000000000\x00", "b": body}
    assert json.loads(dumps(payload)) == {"a": payload["a"], "b": "real body"}


def test_dumps_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_a_fields_only_message_has_the_same_content_and_no_bytes(issue_setup):
    config, template = issue_setup
    recipient = IssueRecipient("reader@example.com", "Zoë", 9, "i1-d9")
    full, full_id = issue_message(config, TEST_SECRET, template, recipient, NOW, signer=None)
    fields, fields_id = issue_message(config, TEST_SECRET, template, recipient, NOW, signer=None, mime=False)
    assert fields.data == b"" and full.data and fields_id == full_id
    assert fields.content == full.content
    with pytest.raises(ValueError, match="control character"):  # the headers are still checked
        issue_message(config, TEST_SECRET, template, IssueRecipient("a@example.com", "Bad\r\nBcc: x", 1, "i1-d1"),
                      NOW, signer=None, mime=False)
