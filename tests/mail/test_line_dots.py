"""No line of a message the builder makes begins with "." (static chunks and recipients' values
alike write a leading dot as "=2E"), so SMTP's dot-stuffing (RFC 5321 4.5.2) never applies and the
transport sends the pieces as built. These tests hold the builder to it for any template and
values, signed or not: the bytes are CRLF-only, line-aligned, decode to the filled template, and
such messages cross a real SMTP server byte for byte."""

from __future__ import annotations

import re

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsletter.config import SmtpSettings
from newsletter.delivery.transports.base import Outcome
from newsletter.delivery.transports.smtp import SmtpTransport, _stuffed
from newsletter.mail.compose import assemble
from newsletter.mail import dkim as wv_dkim
from newsletter.mail.mime import message_template
from newsletter.mail.slots import SlotMarker
from tests.fakes.smtp_server import start_server
from tests.mail.test_dkim import dns_stub, issue_settings, rsa_key

# Lines that begin with dots, lone CRs and LFs, "=" (always encoded), long runs (soft breaks at 75).
body_text = st.lists(st.sampled_from(["a", ".", ".", "\n", "\r", "\r\n", " ", "=", "ü", "\t", "a" * 70]),
                     max_size=60).map("".join)
# Values in the encoder's fast path (printable ASCII, no "="): a dot can land at a soft-break line start.
url_like = st.lists(st.sampled_from(["a", ".", "a" * 70]), max_size=30).map("".join)
any_value = st.one_of(url_like, body_text)


def scanned(data: bytes) -> list[int]:
    """The oracle, found another way than the code under test: a regex over the whole message."""
    return [match.start() for match in re.finditer(rb"(?:\A|(?<=\r\n))\.", data)]


def template_with(statics: list[str]):
    """A two-part template whose slots `a` and `b` alternate between the static chunks."""
    marker = SlotMarker()
    slots = [str(marker("a")), str(marker("b"))]
    source = statics[0] + "".join(slots[n % 2] + chunk for n, chunk in enumerate(statics[1:]))
    return marker.split(source)


@settings(max_examples=150, deadline=None)
@given(st.lists(body_text, min_size=1, max_size=5), st.lists(body_text, min_size=1, max_size=4), any_value,
       any_value)
def test_no_line_of_a_built_message_begins_with_a_dot(text_statics, html_statics, a, b):
    template = message_template(["From: a@sender.example", "Subject: dots"], template_with(text_statics),
                                template_with(html_statics))
    pieces = template.render_pieces(["To: reader@example.com"], {"a": a, "b": b})
    data = b"".join(pieces)
    assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")  # CRLF only
    assert all(piece.endswith(b"\r\n") for piece in pieces if piece)  # line-aligned
    assert not scanned(data)
    assert b"".join(_stuffed(data)) == data + b".\r\n"  # what SMTP sends: the bytes as they are


@given(st.lists(st.sampled_from([".", "a", "-", "_", "/"]), min_size=1, max_size=200).map("".join))
def test_a_value_at_a_line_start_or_after_a_soft_break_never_begins_a_line_with_a_dot(value):
    """Links and tokens (printable ASCII, the encoder's fast path) with dots anywhere: at the start
    of the value and at every 75-character soft break."""
    import binascii

    from newsletter.mail.mime import qp_value

    encoded = qp_value(value)
    assert not scanned(encoded)
    assert binascii.a2b_qp(encoded) == value.encode()
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))


def dotted_message(settings_, signer, n: int):
    template = message_template(["From: verdicts@weeklyverdicts.example", "Subject: dots"],
                                template_with([".first line\n", "\n.after a value\n..two\n", "\n.\n"]),
                                template_with(["<p>", "</p>\n.x\n", "\n"]))
    values = {"a": f".value {n}", "b": "." + "x" * 74 + ".soft-broken"}
    personal = [("To", f"reader{n}@example.com"), ("Message-ID", f"<{n}@weeklyverdicts.example>"),
                ("Date", "Thu, 26 Nov 2026 08:00:00 +0000")]
    return assemble(settings_, template, "", f"reader{n}@example.com", personal, values, f"i1-d{n}", signer)


@pytest.mark.parametrize("pipelining", [False, True], ids=["sequential", "pipelined"])
def test_signed_messages_with_dotted_text_cross_smtp_intact_and_verify(tmp_path, pipelining):
    """Over one session (pool_size 1). Pipelined, the third message's commands go out in the same
    gathered write as the second's data (smtp_pipeline.py; the first opens the session alone), a
    write whose length comes from the message's size instead of a sum over its pieces."""
    key, record = rsa_key(tmp_path)
    config = issue_settings(tmp_path, key, "rsa-sha256")
    signer = wv_dkim.make_signer(config.mail.dkim, config.mail.from_address)
    messages = [dotted_message(config, signer, n) for n in range(3)]
    for message in messages:  # the signature header goes first; no line begins with a dot
        assert message.stuffed is None and not scanned(message.data)
        assert b"=2Efirst line" in message.data and b"=2Evalue" in message.data
    controller, handler = start_server(pipelining=pipelining)
    try:
        transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=5, pool_size=1))
        assert [r.outcome for r in transport.send(messages)] == [Outcome.sent] * 3
        transport.close()
    finally:
        controller.stop()
    assert handler.chained == (1 if pipelining else 0)
    received = {m.rcpt_tos[0]: m.data for m in handler.messages}
    for message in messages:
        assert received[message.recipient] == message.data  # every doubled dot undone by the server
        assert dkim.verify(received[message.recipient], dnsfunc=dns_stub(record))


@settings(max_examples=150, deadline=None)
@given(body_text)
def test_static_chunks_write_a_line_leading_dot_as_an_escape_that_decodes_the_same(text):
    """undotted: no line of an encoded static chunk begins with "." (so nothing is stuffed), it
    decodes to the same bytes, and no line grows past 76 characters (or past what it was)."""
    import binascii

    from newsletter.mail.mime import qp_encode, undotted

    encoded = qp_encode(text)
    clean = undotted(encoded)
    assert binascii.a2b_qp(clean) == binascii.a2b_qp(encoded)
    assert not scanned(clean)
    limit = max([76] + [len(line) for line in encoded.split(b"\r\n")])
    assert all(len(line) <= limit for line in clean.split(b"\r\n"))
