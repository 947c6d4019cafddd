"""Internationalised addresses end to end (issue 14.2): what the configured transport cannot carry is
refused by the signup form at once; what it can is delivered in its wire form, and a server that
lacks SMTPUTF8 fails that one message with a clear error while the others go on."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_string, policy

from sqlmodel import select

from newsletter.config import SmtpSettings
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports.smtp import SmtpTransport
from newsletter.issues.drafting import draft_issue
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.delivery.mailqueue import send_pending
from newsletter.delivery.transactional import template_for
from newsletter.subscribers.models import Subscriber, TransactionalMail
from newsletter.subscribers.forgotten import forget
from tests.conftest import TEST_SECRET
from tests.fakes.smtp_server import start_server

UTF8_LOCAL, IDN = "üser@bücher.de", "user@bücher.de"


def stored_emails(live) -> list[str]:
    with session_scope(live.engine) as session:
        return sorted(session.exec(select(Subscriber.email)).all())


def test_an_http_provider_gets_the_refusal_on_the_form_not_a_lost_mail(live_factory):
    live = live_factory(MAIL__TRANSPORT="postmark")
    refused = live.subscribe(UTF8_LOCAL)
    assert refused.status_code == 422
    assert "cannot deliver to an address with accented or non-latin letters before the @" in refused.text
    assert live.subscribe("User@Bücher.DE").status_code == 200  # an IDN domain is fine: IDNA on the wire
    assert live.subscribe("other@xn--bcher-kva.de").status_code == 200
    assert stored_emails(live) == ["other@bücher.de", IDN]  # one stored form, whatever was typed


def test_the_file_outbox_takes_a_utf8_local_part(live):
    """(SMTP with SMTPUTF8: tests/test_address_properties.py.) Headers are UTF-8 (RFC 6532)."""
    assert live.subscribe(UTF8_LOCAL, name="Ünïcode").status_code == 200
    assert stored_emails(live) == [UTF8_LOCAL]
    assert live.deliver_mail() == 1
    raw = next(live.settings.mail.file.dir.glob("t*.eml")).read_bytes().decode("utf-8")
    to = message_from_string(raw, policy=policy.default)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [("Ünïcode", "üser@xn--bcher-kva.de")]
    assert forget(live.engine, "ÜSER@xn--bcher-kva.de").counts["subscriber"] == 1  # any spelling finds them
    assert stored_emails(live) == []


def add_reader(engine, email: str, with_confirmation: bool) -> None:
    with session_scope(engine) as session:
        reader = Subscriber(email=email, name="Doe, Jane", status="active", confirmed_at=datetime.now(UTC))
        session.add(reader)
        session.flush()
        if with_confirmation:
            session.add(TransactionalMail(subscriber_id=reader.id, kind="welcome", to_email=email))


def test_a_server_without_smtputf8_fails_that_message_cleanly_and_the_rest_go_on(sample_engine, settings):
    add_reader(sample_engine, UTF8_LOCAL, True)
    add_reader(sample_engine, IDN, True)
    controller, handler = start_server(smtputf8=False)
    transport = SmtpTransport(SmtpSettings(host="127.0.0.1", port=controller.port, timeout=10, pool_size=1))
    try:
        assert send_pending(sample_engine, settings, transport, TEST_SECRET) == 1
        issue = draft_issue(sample_engine, settings, "2026-W48").issue
        start_send(sample_engine, issue.id)
        report = deliver(sample_engine, settings, transport, TEST_SECRET, issue.id)
    finally:
        transport.close()
        controller.stop()
    assert [m.rcpt_tos for m in handler.messages] == [["user@xn--bcher-kva.de"]] * 2
    assert (report.sent, report.failed) == (1, 1)
    with session_scope(sample_engine) as session:
        failed = [session.exec(select(model.last_error).where(model.state == "failed")).one()
                  for model in (TransactionalMail, Delivery)]
    for error in failed:
        assert "needs SMTPUTF8, which the SMTP server does not offer" in error and "üser@xn--bcher-kva.de" in error


def test_json_providers_get_the_wire_form_and_the_name_as_data(settings):
    recipient = IssueRecipient(IDN, 'Doe, Jane <x@evil.example>', 7, "i1-d7", "0123456789abcdef")
    message, _ = issue_message(settings, TEST_SECRET, template_for(settings, "welcome"), recipient,
                               datetime.now(UTC))
    assert message.recipient == message.content.recipient == "user@xn--bcher-kva.de"
    assert message.content.to_header == '"Doe, Jane <x@evil.example>" <user@xn--bcher-kva.de>'


def test_provider_events_naming_the_a_label_form_find_the_stored_reader():
    from newsletter.feedback.events import clean_email

    assert clean_email("Jane <User@XN--BCHER-KVA.DE>") == IDN
    assert clean_email("reader@example.com") == "reader@example.com"
    assert clean_email("x@xn--broken-.de") == "x@xn--broken-.de"  # not IDNA: kept, matches nobody
