"""PersonalMail (newsletter.mail.personal), the per-reader builder an issue uses, makes exactly what
the general path makes: `compose.assemble` with the header lines and values written out one by
one, as issues/links.py did before. Compared for varied readers (Unicode and RFC 5322 special
names, quotes, commas, IDN and non-ASCII addresses, HTML specials in addresses) and settings
(tracking, a mailto: unsubscribe, VERP, fields only, DKIM): bytes, envelope, fields, Message-ID."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import format_datetime

import dkim
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsletter.issues.links import IssueRecipient, issue_mail, issue_message
from newsletter.mail import dkim as wv_dkim
from newsletter.mail.addresses import recipient_address
from newsletter.mail.compose import DELIVERY_HEADER, assemble, build_template, message_id
from newsletter.mail.headers import domain_of, list_unsubscribe
from newsletter.mail.verp import envelope_sender
from newsletter.issues.render import compile_issue
from newsletter.tokens import Purpose, token_signer, token_value
from tests.conftest import TEST_SECRET
from tests.mail.test_dkim import dns_stub, rsa_key

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
STAMP = 1_795_000_000


def reference_message(config, secret, template, recipient, now, stamp, signer=None, mime=True):
    """The general path, field by field: what every issue message was built with before."""
    signer_ = token_signer(secret)
    value = token_value(recipient.subscriber_id, recipient.token_key)
    token = {purpose: signer_.sign(purpose, value, stamp) for purpose in Purpose}
    base = config.site.base_url
    links = {"unsubscribe_url": f"{base}/unsubscribe/{token[Purpose.unsubscribe]}",
             "preferences_url": f"{base}/preferences/{token[Purpose.preferences]}",
             "vote_token": token[Purpose.vote],
             "track_token": token[Purpose.track] if config.tracking.opens or config.tracking.clicks else ""}
    msg_id = message_id(secret, recipient.reference, domain_of(config.mail.from_address))
    personal = [
        ("To", recipient_address(recipient.name, recipient.email)),
        ("Date", format_datetime(now)),
        ("Message-ID", msg_id),
        ("List-Unsubscribe", list_unsubscribe(links["unsubscribe_url"], config.mail.unsubscribe_mailbox,
                                              token[Purpose.unsubscribe])),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        (DELIVERY_HEADER, recipient.reference),
    ]
    message = assemble(config, template, recipient.name, recipient.email, personal,
                       {"email": recipient.email, **links}, recipient.reference, signer, mime,
                       envelope_sender(config, secret, recipient.reference))
    return message, msg_id


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from bench.sample import sample_issue_view

    config, view = sample_issue_view(tmp_path_factory.mktemp("personal"))
    return config, compile_issue(view)


def variant(config, compiled, case: str):
    """The sample's settings changed as `case` says, and their template."""
    mail, tracking = {}, {}
    if case == "tracking":
        tracking = {"opens": True, "clicks": True}
    elif case == "mailto":
        mail = {"unsubscribe_mailbox": "unsubscribe@weeklyverdicts.example",
                "reply_to": '"Desk, Editors" <desk@weeklyverdicts.example>'}
    elif case == "verp":
        mail = {"transport": "smtp", "bounce_address": "bounces@bounce.example", "verp": True}
    elif case == "names":
        mail = {"from_address": 'Wöchentliche "Urteile" <verdicts@weeklyverdicts.example>'}
    config = config.model_copy(update={"mail": config.mail.model_copy(update=mail),
                                       "tracking": config.tracking.model_copy(update=tracking)})
    return config, build_template(config, compiled)


def assert_same(ours, theirs) -> None:
    (message, msg_id), (reference, reference_id) = ours, theirs
    assert msg_id == reference_id
    assert message.data == reference.data
    assert message.size == len(message.data)  # the builder's own figure (PersonalMail), not a sum
    assert (message.envelope_from, message.recipient, message.reference) == (
        reference.envelope_from, reference.recipient, reference.reference)
    assert message.content == reference.content
    assert message.stuffed is None and not re.search(rb"(?:\A|\r\n)\.", message.data)
    assert all(piece.endswith(b"\r\n") for piece in message.pieces if piece)


names = st.one_of(
    st.sampled_from(["", "Reader", "Zoë Ä", 'Doe, Jane "JD"', "O'Brien & <Sons>", "=?utf-8?q?x?=", "a@b.c",
                     "محمد", "李小龙 😀", "x" * 90, "Ünïcode " * 12, "back\\slash", "  spaced  "]),
    st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"),
                          blacklist_characters="\ufffe\uffff\u0085"), max_size=40),
)
locals_ = st.one_of(st.sampled_from(["reader", "reader+x", "o'brien", "a&b", "zoë", "first.last", "_.-",
                                     ".starts-with-dot", "x" * 64]),
                    st.text("abcXYZ019.!#$%&'*+-/=?^_`{|}~", min_size=1, max_size=30))
domains = st.sampled_from(["example.com", "bücher.de", "例え.jp", "xn--bcher-kva.de", "sub.domain.example",
                           "ÉCOLE.fr"])
readers = st.builds(lambda name, local, domain, n, key: IssueRecipient(f"{local}@{domain}", name, n, f"i3-d{n}", key),
                    names, locals_, domains, st.integers(1, 10**12), st.sampled_from(["", "0123456789abcdef"]))


@pytest.mark.parametrize("case", ["plain", "tracking", "mailto", "verp", "names"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reader=readers, mime=st.booleans())
def test_personal_mail_is_what_the_general_path_builds(sample, case, reader, mime):
    config, template = variant(*sample, case)
    ours = issue_message(config, TEST_SECRET, template, reader, NOW, signer=None, mime=mime, stamp=STAMP)
    assert_same(ours, reference_message(config, TEST_SECRET, template, reader, NOW, STAMP, mime=mime))


@pytest.mark.parametrize("name,email", [("Bad\r\nBcc: x", "a@example.com"), ("x", "a@exa\nmple.com"),
                                        ("x", "no-at-sign"), ("x", "a b@example.com"), ("\x00", "a@example.com")])
def test_bad_readers_are_refused_as_by_the_general_path(sample, name, email):
    config, template = variant(*sample, "plain")
    reader = IssueRecipient(email, name, 1, "i3-d1")
    with pytest.raises(ValueError) as theirs:
        reference_message(config, TEST_SECRET, template, reader, NOW, STAMP)
    with pytest.raises(ValueError) as ours:
        issue_message(config, TEST_SECRET, template, reader, NOW, signer=None, stamp=STAMP)
    assert str(ours.value) == str(theirs.value)


def test_a_signed_message_is_the_general_paths_and_verifies(sample, tmp_path):
    key, record = rsa_key(tmp_path)
    config, template = variant(*sample, "mailto")
    dkim_settings = config.mail.dkim.model_copy(update={"enabled": True, "selector": "wv2026",
                                                        "private_key_file": key, "domain": "weeklyverdicts.example"})
    signer = wv_dkim.make_signer(dkim_settings, config.mail.from_address)
    reader = IssueRecipient("zoë@bücher.de", 'Zoë "Z" Ä, Jr.', 42, "i3-d42", "0123456789abcdef")
    ours, _ = issue_message(config, TEST_SECRET, template, reader, NOW, signer=signer, stamp=STAMP)
    theirs, _ = reference_message(config, TEST_SECRET, template, reader, NOW, STAMP, signer=signer)
    assert ours.pieces[0].startswith(b"DKIM-Signature:") and b"".join(ours.pieces[1:]) == b"".join(theirs.pieces[1:])
    assert dkim.verify(ours.data, dnsfunc=dns_stub(record))
    assert ours.size == len(ours.data)  # the signature's header line counted too


def test_the_builder_is_made_once_per_template_settings_and_signer(sample):
    config, template = variant(*sample, "plain")
    first = issue_mail(config, TEST_SECRET, template, None)
    assert issue_mail(config, TEST_SECRET, template, None) is first
    assert issue_mail(config, TEST_SECRET, template, None, mime=False) is not first
    other, _ = variant(*sample, "tracking")
    assert issue_mail(other, TEST_SECRET, template, None) is not first
