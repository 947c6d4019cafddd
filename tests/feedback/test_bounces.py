"""`newsletter bounces process PATH` on a maildir and an mbox of real RFC 3464 reports, built here
around the messages the pipeline really sent."""

from __future__ import annotations

import mailbox
import re
import os
from email import message_from_bytes, policy
from email.message import Message
from email.mime.message import MIMEMessage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from sqlalchemy import select

from newsletter.config import load_settings
from newsletter.db import make_engine, session_scope
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.issues.drafting import draft_issue
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.models import ConsentEvent, Subscriber, Suppression
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.cli_runner import run_cli
from tests.db_templates import migrate_fresh, sample_content
from tests.conftest import TEST_SECRET, write_config
from tests.feedback.conftest import WEEK

READERS = ["hard@example.com", "soft@example.com", "ok@example.com", "hard2@example.net", "soft2@example.net"]


def dsn(original: bytes, recipient: str, action: str, status: str, diagnostic: str, headers_only: bool = False,
        original_recipient: str | None = None) -> bytes:
    """A delivery status notification as an MTA (here: Postfix's wording) returns it."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@mx.example.net (Mail Delivery System)"
    report["To"] = "bounces@weeklyverdicts.example"
    report["Subject"] = "Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail (still being retried)"
    report["Date"] = formatdate()
    report["Message-ID"] = make_msgid(domain="mx.example.net")
    report.attach(MIMEText(f"This is the mail system at host mx.example.net.\n\n<{recipient}>: {diagnostic}\n"))
    per_message, per_recipient = Message(), Message()
    per_message["Reporting-MTA"] = "dns; mx.example.net"
    per_message["Arrival-Date"] = formatdate()
    if original_recipient:
        per_recipient["Original-Recipient"] = f"rfc822; {original_recipient}"
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = "dns; mx.example.com"
    per_recipient["Diagnostic-Code"] = f"smtp; {diagnostic}"
    status_part = Message()
    status_part.set_type("message/delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    returned = message_from_bytes(original)
    if headers_only:
        head = original.split(b"\r\n\r\n", 1)[0].decode().replace("\r\n", "\n") + "\n"
        report.attach(MIMEText(head, "rfc822-headers"))
    else:
        report.attach(MIMEMessage(returned))
    return report.as_bytes()


@pytest.fixture
def sent(tmp_path):
    """An issue sent through the file transport to READERS; the config file and the .eml by address."""
    config = write_config(tmp_path)
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    with session_scope(engine) as session:
        for email in READERS:
            upsert_active(session, email, "", [], "import", UpsertResult())
    issue = draft_issue(engine, settings, WEEK).issue
    start_send(engine, issue.id)
    transport = make_transport(settings)
    deliver(engine, settings, transport, TEST_SECRET, issue.id)
    transport.close()
    mails = {}
    for path in settings.mail.file.dir.glob("i*.eml"):
        data = path.read_bytes()
        mails[message_from_bytes(data, policy=policy.default)["To"].addresses[0].addr_spec] = data
    assert set(mails) == set(READERS)
    yield config, engine, mails
    engine.dispose()


def process(config: Path, path: Path) -> str:
    result = run_cli(["--config", str(config), "bounces", "process", str(path)], Path.cwd(), dict(os.environ))
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def state(engine, email: str):
    with session_scope(engine) as session:
        subscriber = session.execute(select(Subscriber).where(Subscriber.email == email)).scalar_one()
        reason = session.execute(select(Suppression.reason).where(Suppression.email == email)).scalar()
        rows = session.execute(select(ConsentEvent.kind, ConsentEvent.source, ConsentEvent.detail)
                               .where(ConsentEvent.subscriber_id == subscriber.id, ConsentEvent.source != "import")
                               ).all()
        assert {source for _kind, source, _detail in rows} <= {"webhook"}
        consents = [(kind, detail.split(":", 1)[0]) for kind, _source, detail in rows]
        events = session.execute(select(WebhookEvent.kind, Delivery.subscriber_id == subscriber.id)
                                 .outerjoin(Delivery, Delivery.id == WebhookEvent.delivery_id)
                                 .where(WebhookEvent.email == email)).all()  # a maildir has no order
        return subscriber.status, reason, [tuple(c) for c in consents], sorted(tuple(e) for e in events)


def test_maildir_of_reports(sent, tmp_path):
    config, engine, mails = sent
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(dsn(mails["hard@example.com"], "hard@example.com", "failed", "5.1.1",
                "550 5.1.1 <hard@example.com>: Recipient address rejected: User unknown"))
    # Forwarded: the final recipient is another address; the one we mailed is what counts.
    box.add(dsn(mails["soft@example.com"], "soft.fwd@example.org", "failed", "4.2.2",
                "452 4.2.2 Mailbox full, giving up after 5 days", headers_only=True,
                original_recipient="soft@example.com"))
    box.add(dsn(mails["soft@example.com"], "soft@example.com", "delayed", "4.4.1",
                "connect to mx.example.com[192.0.2.1]:25: Connection timed out", headers_only=True))
    # A forged report: our delivery header, but a Message-ID we did not make.
    forged = re.sub(rb"(Message-ID: <i\d+-d\d+\.)[0-9a-f]{24}", rb"\g<1>" + b"0" * 24, mails["ok@example.com"])
    assert forged != mails["ok@example.com"]
    box.add(dsn(forged, "ok@example.com", "failed", "5.1.1", "550 5.1.1 User unknown"))
    box.add(MIMEText("I am out of the office until Monday.").as_bytes())
    box.close()

    out = process(config, tmp_path / "Maildir")
    assert "5 messages, 4 bounce reports, 1 skipped (not a bounce), 0 unreadable" in out
    assert "recipients: bounced_hard 1, bounced_soft 1, deferred 1; 3 applied (3 matched to a delivery)" in out
    assert "0 processed before, 1 not ours" in out
    assert state(engine, "hard@example.com") == ("bounced", "hard_bounce", [("suppressed:hard_bounce", "mailbox")],
                                                 [("bounced_hard", True)])
    assert state(engine, "soft@example.com") == ("active", None, [], [("bounced_soft", True), ("deferred", True)])
    assert state(engine, "ok@example.com") == ("active", None, [], [])

    again = process(config, tmp_path / "Maildir")  # the same mailbox again: nothing changes twice
    assert "0 applied (0 matched to a delivery), 3 processed before, 1 not ours" in again
    assert state(engine, "hard@example.com")[2] == [("suppressed:hard_bounce", "mailbox")]
    assert len(state(engine, "soft@example.com")[3]) == 2


def test_mbox_of_reports(sent, tmp_path):
    config, engine, mails = sent
    box = mailbox.mbox(tmp_path / "bounces.mbox", create=True)
    box.add(MIMEText("Thanks for the newsletter!").as_bytes())
    box.add(dsn(mails["hard2@example.net"], "hard2@example.net", "failed", "5.1.10",
                "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
                headers_only=True))
    box.add(dsn(mails["soft2@example.net"], "soft2@example.net", "failed", "4.7.0",
                "421 4.7.0 Try again later, closing connection"))
    box.add(b"Subject: broken\n\nnot a report, not even MIME")
    box.flush()
    box.close()

    out = process(config, tmp_path / "bounces.mbox")
    assert "4 messages, 2 bounce reports, 2 skipped (not a bounce)" in out
    assert "recipients: bounced_hard 1, bounced_soft 1; 2 applied (2 matched to a delivery)" in out
    assert state(engine, "hard2@example.net")[:3] == ("bounced", "hard_bounce", [("suppressed:hard_bounce", "mailbox")])
    assert state(engine, "soft2@example.net") == ("active", None, [], [("bounced_soft", True)])


def test_a_missing_mailbox_is_an_error_not_a_crash(sent, tmp_path):
    config, _engine, _mails = sent
    result = run_cli(["--config", str(config), "bounces", "process", str(tmp_path / "nowhere")], Path.cwd(),
                     dict(os.environ))
    assert result.returncode == 1 and "no such maildir or mbox" in result.stderr
