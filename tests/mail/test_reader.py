"""The fast path of parse_message (header blocks through the stdlib parser, bodies cut at the
boundary) gives exactly what the full stdlib parse gives, for our messages and odd ones."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.mail.message import OutgoingMessage
from newsletter.mail.reader import _fast_parse, parse_message


def outgoing(message: EmailMessage, to: str = "reader@example.com") -> OutgoingMessage:
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    return OutgoingMessage("bounces@example.com", to, data, "ref-1")


def build(text: str | None, html: str | None, charset: str = "utf-8", cte: str | None = None,
          attachment: bool = False) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Weekly Verdicts <verdicts@example.com>"
    message["To"] = "Zoë <reader@example.com>"
    message["Subject"] = "Résumé of the week"
    message["List-Unsubscribe"] = "<https://example.com/u/1>"
    if text is not None:
        message.set_content(text, charset=charset, cte=cte)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html", charset=charset, cte=cte)
        else:
            message.add_alternative(html, subtype="html", charset=charset, cte=cte)
    if attachment:
        message.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="a.pdf")
    return message


@pytest.mark.parametrize("cte", ["quoted-printable", "base64", "8bit", None])
@pytest.mark.parametrize("shape", ["both", "text", "html", "attachment"])
def test_the_fast_path_equals_the_full_parse(cte, shape):
    text = "Verdict: ships.\n.leading dot\nümlauts — and a long line " + "x" * 120 + "\n"
    html = "<p>Verdict: <b>ships</b> — ü</p>\n" * 20
    message = build(None if shape == "html" else text, None if shape == "text" else html, cte=cte,
                    attachment=shape == "attachment")
    item = outgoing(message)
    assert parse_message(item) == parse_message(item, fast=False)
    fast = _fast_parse(item.data)
    assert (fast is None) == (shape == "attachment")  # multipart/mixed: the full parser


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=300), st.text(min_size=1, max_size=300))
def test_any_text_parses_the_same_on_both_paths(text, html):
    item = outgoing(build(text, html))
    assert parse_message(item) == parse_message(item, fast=False)


def test_a_real_issue_message_takes_the_fast_path(tmp_path):
    from bench.sample import SECRET, sample_issue_view
    from newsletter.issues.links import IssueRecipient, issue_message
    from newsletter.mail.compose import build_template
    from newsletter.issues.render import compile_issue

    config, view = sample_issue_view(tmp_path)
    template = build_template(config, compile_issue(view))
    item = issue_message(config, SECRET, template, IssueRecipient("reader@example.com", "Zoë Ä", 7, "i1-d7"),
                         datetime.now(UTC), signer=None)[0]
    assert _fast_parse(item.data) is not None
    fast, full = parse_message(item, use_content=False), parse_message(item, fast=False, use_content=False)
    assert fast == full and fast.html and fast.text and fast.recipient_name == "Zoë Ä"
