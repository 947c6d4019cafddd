"""VERP over a real SMTP server (aiosmtpd), and the one hard/soft classification of every path."""

from __future__ import annotations

import pytest

from newsletter.delivery.bounce_class import BounceClass, classify
from newsletter.config import load_settings
from newsletter.delivery.transports.smtp import classify as smtp_reply
from newsletter.errors import ConfigError
from newsletter.mail.verp import reference_in_address
from newsletter.feedback.events import EventKind
from newsletter.feedback.webhooks.mailgun import parse_event as mailgun_event
from newsletter.feedback.webhooks.sendgrid import parse_event as sendgrid_event
from tests.conftest import TEST_SECRET, write_config
from tests.fakes.smtp_server import start_server
from tests.delivery.test_delivery import add_readers, send_all

VERP = """
    [mail]
    transport = "smtp"
    from_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"
    bounce_address = "bounces@bounce.weeklyverdicts.example"
    verp = true
    """


def test_with_verp_each_message_leaves_with_its_own_signed_envelope_sender(sample_engine, tmp_path, db_url,
                                                                           monkeypatch):
    controller, handler = start_server()
    monkeypatch.setenv("NEWSLETTER_MAIL__SMTP__PORT", str(controller.port))
    config = write_config(tmp_path, db_url).read_text().replace(
        '[mail]\ntransport = "file"\nfrom_address = "Weekly Verdicts <verdicts@weeklyverdicts.example>"\n',
        VERP.replace("\n    ", "\n").lstrip("\n"))
    (tmp_path / "config.toml").write_text(config)
    settings = load_settings(tmp_path / "config.toml")
    assert settings.mail.verp and settings.mail.transport == "smtp"
    try:
        add_readers(sample_engine, [("ann@example.com", []), ("bob@example.com", [])])
        _issue, _start, report = send_all(sample_engine, settings)
    finally:
        controller.stop()
    assert report.sent == 2
    senders = {m.rcpt_tos[0]: m.mail_from for m in handler.messages}
    assert len(set(senders.values())) == 2
    for sender in senders.values():
        assert sender.startswith("bounces+i") and sender.endswith("@bounce.weeklyverdicts.example")
        assert sender == sender.lower()
        reference = reference_in_address(TEST_SECRET, sender)
        assert reference is not None and reference.startswith("i")
        local, _, domain = sender.partition("@")
        forged = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"  # one digit of the digest
        assert reference_in_address(TEST_SECRET, forged) is None
        assert reference_in_address("another-secret-key-" + "y" * 40, sender) is None


def test_verp_without_a_bounce_address_is_a_clear_config_error(tmp_path):
    config = write_config(tmp_path).read_text().replace('transport = "file"', 'transport = "file"\nverp = true')
    (tmp_path / "config.toml").write_text(config)
    with pytest.raises(ConfigError, match="bounce_address"):
        load_settings(tmp_path / "config.toml")


# Real replies as servers send them (Gmail, Microsoft 365, Yahoo, Postfix, qmail).
REPLIES = [
    ("550", "5.7.1 [203.0.113.9] Our system has detected that this message is likely unsolicited mail. "
            "To reduce the amount of spam sent to Gmail, this message has been blocked.", BounceClass.soft),
    ("550", "5.1.1 The email account that you tried to reach does not exist.", BounceClass.hard),
    ("552", "5.2.2 The email account that you tried to reach is over quota.", BounceClass.soft),
    ("452", "4.2.2 The email account that you tried to reach is over quota.", BounceClass.soft),
    ("550", "5.4.1 Recipient address rejected: Access denied. AS(201806281)", BounceClass.hard),
    ("554", "5.7.1 Service unavailable; Client host [192.0.2.7] blocked using zen.spamhaus.org", BounceClass.soft),
    ("553", "5.7.1 [BL21] Connections will not be accepted from 192.0.2.7, because the ip is in "
            "Spamhaus's list", BounceClass.soft),
    ("550", "Requested action not taken: mailbox unavailable", BounceClass.hard),
    ("550", "unknown user <x@example.com>", BounceClass.hard),
    ("554", "5.2.1 The email account that you tried to reach is disabled.", BounceClass.hard),
    ("421", "4.7.0 Try again later, closing connection.", BounceClass.soft),
]


@pytest.mark.parametrize(("code", "text", "expected"), REPLIES, ids=[r[1][:30] for r in REPLIES])
def test_one_classification_for_smtp_replies_and_webhooks(code, text, expected):
    assert classify(code, text) == expected
    result = smtp_reply(int(code), text)
    assert result.hard_bounce == (expected == BounceClass.hard and code.startswith("5"))
    # Mailgun calls every 5xx "permanent"; SendGrid every bounce that is not "blocked" a bounce.
    mailgun = mailgun_event({"event": "failed", "id": "ev1", "severity": "permanent", "recipient": "x@example.com",
                             "delivery-status": {"code": int(code), "message": text}})
    sendgrid = sendgrid_event({"event": "bounce", "type": "bounce", "email": "x@example.com",
                               "status": text.split()[0], "reason": f"{code} {text}", "sg_event_id": "e1"})
    kind = EventKind.bounced_hard if expected == BounceClass.hard else EventKind.bounced_soft
    assert mailgun.kind == kind and sendgrid.kind == kind


def test_mailgun_events_carry_our_message_id():
    event = mailgun_event({"event": "failed", "id": "ev2", "severity": "temporary", "recipient": "x@example.com",
                           "message": {"headers": {"message-id": "i3-d42.0123456789abcdef01234567@weeklyverdicts.example"}}})
    assert event.message_id == "<i3-d42.0123456789abcdef01234567@weeklyverdicts.example>"


def test_a_confirmation_mail_bounce_is_attributed_by_its_verp_address_alone(tmp_path):
    """A confirmation mail (transactional) leaves with its own VERP envelope sender, which the file
    transport records as Return-Path; a bounce that returns nothing of it, delivered to that
    address, suppresses the address it was sent to, and nobody else."""
    from datetime import UTC, datetime
    from email import message_from_bytes, policy

    from sqlalchemy import select

    from newsletter.feedback.bounces import BounceReport, process_message
    from newsletter.db import make_engine, session_scope
    from newsletter.delivery.transports import make_transport
    from tests.db_templates import migrate_fresh
    from newsletter.delivery.mailqueue import send_pending
    from newsletter.subscribers.models import Suppression
    from newsletter.subscribers.signup import request_signup

    config = write_config(tmp_path).read_text().replace(
        'transport = "file"', 'transport = "file"\nbounce_address = "bounces@bounce.weeklyverdicts.example"\nverp = true')
    (tmp_path / "config.toml").write_text(config)
    settings = load_settings(tmp_path / "config.toml")
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    with session_scope(engine) as session:
        for email in ("gone@example.net", "here@example.net"):
            request_signup(session, settings.web, email, "", [], datetime.now(UTC))
    transport = make_transport(settings)
    assert send_pending(engine, settings, transport, TEST_SECRET) == 2
    paths = {}
    for path in settings.mail.file.dir.glob("t*.eml"):
        mail = message_from_bytes(path.read_bytes(), policy=policy.default)
        paths[mail["To"].addresses[0].addr_spec] = str(mail["Return-Path"]).strip("<>")
    verp = paths["gone@example.net"]
    assert reference_in_address(TEST_SECRET, verp).startswith("t") and verp != paths["here@example.net"]
    bounce = (f"Delivered-To: {verp}\nFrom: MAILER-DAEMON@mx.example.net\nTo: {verp}\n"  # qmail's wording
              "Subject: failure notice\n\nHi. This is the qmail-send program at mx.example.net.\n"
              "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
              "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
              "<gone.forwarded@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n").encode()
    report = BounceReport()
    events = process_message(engine, settings, TEST_SECRET, bounce, report)
    assert [(e.email, e.kind.value) for e in events] == [("gone@example.net", "bounced_hard")]
    with session_scope(engine) as session:
        assert session.execute(select(Suppression.email, Suppression.reason)).all() == [("gone@example.net",
                                                                                           "hard_bounce")]
    engine.dispose()
