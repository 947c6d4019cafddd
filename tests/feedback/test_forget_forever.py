"""Forget is forever (issue 14.5): after `subscribers forget`, later webhook events, bounces,
imports and signups for the address store it nowhere in plain text; every text column of every
table is searched for it."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from email import message_from_bytes, policy

from sqlalchemy import MetaData, String, Text, func, select

from newsletter.db import session_scope
from newsletter.feedback.bounces import process_mailbox
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.forgotten import forget
from newsletter.subscribers.service import hashed_email
from tests.conftest import TEST_SECRET
from tests.feedback.conftest import Hooks, iso
from tests.feedback.test_bounces import dsn
from tests.feedback.webhooks.test_mailgun import mailgun_event
from tests.feedback.webhooks.test_postmark import postmark_bounce
from tests.feedback.webhooks.test_sendgrid import sendgrid_event
from tests.feedback.webhooks.test_ses import ses_mail

GONE = "gone.reader@example.com"


def plain_hits(engine, address: str) -> list[str]:
    """table.column of every text cell in the database that holds `address` (any case)."""
    meta = MetaData()
    meta.reflect(bind=engine)
    hits = []
    with engine.connect() as connection:
        for table in meta.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text))]
            for column in columns:
                where = func.lower(column).contains(address.lower())
                if connection.execute(select(func.count()).select_from(table).where(where)).scalar_one():
                    hits.append(f"{table.name}.{column.name}")
    return hits


def forgotten_reader(hooks: Hooks) -> dict:
    """GONE and a bystander got an issue (rows to match), then GONE was forgotten."""
    hooks.add(GONE, "stays@example.com")
    deliveries = hooks.send_issue()
    mails = {}
    for path in hooks.live.settings.mail.file.dir.glob("i*.eml"):
        data = path.read_bytes()
        mails[message_from_bytes(data, policy=policy.default)["To"].addresses[0].addr_spec] = data
    forget(hooks.live.engine, GONE)
    assert plain_hits(hooks.live.engine, GONE) == []
    return {"deliveries": deliveries, "mails": mails}


def test_webhook_events_after_forget_store_only_the_hash(hooks):
    old = forgotten_reader(hooks)["deliveries"][GONE]
    loud = GONE.upper()
    reference = f"i{old.issue_id}-d{old.id}"  # the delivery was erased with the person
    bounce = {**postmark_bounce(loud, reference, "b7bc2f4a-forgotten", 77),
              "Details": f"smtp;550 5.1.1 <{loud}>: user unknown", "Description": f"{GONE} bounced"}
    assert hooks.postmark(bounce).status_code == 200
    assert hooks.sendgrid([sendgrid_event(GONE, "bounce", reason=f"550 {GONE} does not exist",
                                          sg_event_id=f"evt-{GONE}")]).status_code == 200
    failed = mailgun_event(GONE, "failed", severity="permanent", reason="bounce",
                           **{"delivery-status": {"code": 550, "message": f"No such user {loud}"}})
    assert hooks.mailgun(failed).status_code == 200
    ses_bounce = {"notificationType": "Bounce", "mail": ses_mail(GONE),
                  "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "timestamp": iso(),
                             "bouncedRecipients": [{"emailAddress": GONE, "status": "5.1.1",
                                                    "diagnosticCode": f"smtp; 550 {GONE} unknown"}]}}
    assert hooks.post_sns(hooks.sns(message=ses_bounce)).status_code == 200
    complaint = {"type": "email.complained", "created_at": iso(),
                 "data": {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "to": [GONE], "subject": "x",
                          "from": "verdicts@weeklyverdicts.example", "created_at": iso(), "tags": []}}
    assert hooks.resend(complaint).status_code == 200

    engine = hooks.live.engine
    assert plain_hits(engine, GONE) == []
    with session_scope(engine) as session:
        rows = session.execute(select(WebhookEvent.provider, WebhookEvent.consequence)
                               .where(WebhookEvent.email == hashed_email(GONE))).all()
    # Every provider's event was recorded (against the hash) and none re-created the person.
    assert {provider for provider, _ in rows} >= {"postmark", "sendgrid", "mailgun", "ses", "resend"}
    assert hooks.status(GONE) is None


def test_forget_clears_the_provider_records_of_earlier_events(hooks):
    """An event recorded before the reader is forgotten: its stored provider record names the
    address, so forget drops the record along with replacing the address by its hash."""
    hooks.add(GONE)
    delivery = hooks.send_issue()[GONE]
    assert hooks.postmark(postmark_bounce(GONE, f"i{delivery.issue_id}-d{delivery.id}", "pm-before", 78)).status_code == 200
    with session_scope(hooks.live.engine) as session:
        assert GONE in session.execute(select(WebhookEvent.payload)).scalar_one()
    forget(hooks.live.engine, GONE)
    assert plain_hits(hooks.live.engine, GONE) == []
    with session_scope(hooks.live.engine) as session:
        assert session.execute(select(WebhookEvent.email, WebhookEvent.payload)).one() == (hashed_email(GONE), None)


def test_bounces_after_forget_are_ignored_or_hashed(hooks, tmp_path):
    sent = forgotten_reader(hooks)
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    # A signed reference to the erased delivery: it names no delivery now, so it is ignored,
    # not attributed to whoever Final-Recipient names (here: the bystander).
    box.add(dsn(sent["mails"][GONE], "stays@example.com", "failed", "5.1.1", "550 5.1.1 user unknown"))
    # The bystander's mail, forwarded to the forgotten address: recorded for the bystander, with
    # the forgotten address in its diagnostic and Final-Recipient replaced by the hash.
    box.add(dsn(sent["mails"]["stays@example.com"], GONE, "failed", "4.2.2",
                f"452 4.2.2 <{GONE.upper()}>: mailbox full", original_recipient="stays@example.com"))
    box.close()
    report = process_mailbox(hooks.live.engine, hooks.live.settings, TEST_SECRET, tmp_path / "bounces.mbox")
    assert (report.reports, report.not_ours, report.applied) == (2, 1, 1)
    assert plain_hits(hooks.live.engine, GONE) == []
    assert hooks.status("stays@example.com") == "active"  # one soft bounce, nothing more
    with session_scope(hooks.live.engine) as session:
        detail = session.execute(select(WebhookEvent.detail).where(WebhookEvent.email == "stays@example.com")
                                 ).scalar_one()
    assert hashed_email(GONE) in detail


def test_imports_and_signups_after_forget_store_nothing_plain(hooks, tmp_path):
    forgotten_reader(hooks)
    live = hooks.live
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(f"email,name,topics\n{GONE.title()},Gone Again,\nnew@example.com,New,\n")
    config = tmp_path / "config.toml"  # the live server's (tests/conftest.py write_config)
    result = subprocess.run([sys.executable, "-m", "newsletter", "--config", str(config), "subscribers", "import",
                             str(csv_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    answer = live.subscribe(GONE.upper(), name="Gone Again")
    assert answer.status_code in (200, 303)
    assert live.subscribe("someone.new@example.com").status_code in (200, 303)
    assert plain_hits(live.engine, GONE) == []
    assert plain_hits(live.engine, "someone.new@example.com")  # the check does find addresses
    assert plain_hits(live.engine, "new@example.com")


def test_the_search_finds_a_plain_address(hooks):
    """The search above can fail: without forget, a bounce stores the address in plain text."""
    hooks.add(GONE)
    hooks.send_issue()
    bounce = {**postmark_bounce(GONE, None, "b7bc2f4a-kept", 78), "Details": f"smtp;550 <{GONE}>: user unknown"}
    assert hooks.postmark(bounce).status_code == 200
    hits = plain_hits(hooks.live.engine, GONE.upper())
    assert {"subscriber.email", "suppression.email", "webhook_event.email", "webhook_event.detail"} <= set(hits)


def test_either_form_of_an_internationalised_address_is_hashed(hooks):
    hooks.add("leser@bücher.de")
    forget(hooks.live.engine, "leser@bücher.de")
    bounce = {**postmark_bounce("Leser@XN--BCHER-KVA.DE", None, "b7bc2f4a-idn", 79),
              "Details": "smtp;550 5.1.1 <leser@xn--bcher-kva.de> (leser@bücher.de): user unknown"}
    assert hooks.postmark(bounce).status_code == 200
    for form in ("leser@bücher.de", "leser@xn--bcher-kva.de"):
        assert plain_hits(hooks.live.engine, form) == [], form
    with session_scope(hooks.live.engine) as session:
        assert session.execute(select(WebhookEvent.email)).scalar_one() == hashed_email("leser@bücher.de")
