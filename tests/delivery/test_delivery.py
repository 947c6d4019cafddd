from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy

import pytest
from sqlmodel import select

from newsletter.config import load_settings
from newsletter.db import session_scope
from newsletter.delivery import outbox
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports import make_transport
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.errors import UserError
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue
from newsletter.subscribers.models import Subscriber, Suppression
from newsletter.subscribers.service import UpsertResult, upsert_active
from tests.conftest import TEST_SECRET, write_config
from tests.fakes.smtp_server import start_server

WEEK = "2026-W48"


def add_readers(engine, readers):
    with session_scope(engine) as session:
        for email, topics in readers:
            upsert_active(session, email, "", topics, "import", UpsertResult())


def send_all(engine, settings, transport=None):
    issue = draft_issue(engine, settings, WEEK).issue
    start = start_send(engine, issue.id)
    transport = transport or make_transport(settings)
    report = deliver(engine, settings, transport, TEST_SECRET, issue.id)
    transport.close()
    return issue, start, report


def test_enqueue_respects_status_suppression_pause_and_topics(sample_engine, settings):
    add_readers(sample_engine, [("all@example.com", []), ("dev@example.com", ["Developer Tools"]),
                                ("none@example.com", ["Nothing This Week"]), ("paused@example.com", []),
                                ("gone@example.com", []), ("blocked@example.com", [])])
    with session_scope(sample_engine) as session:
        paused = session.exec(select(Subscriber).where(Subscriber.email == "paused@example.com")).one()
        paused.paused_until = datetime.now(UTC) + timedelta(days=14)
        gone = session.exec(select(Subscriber).where(Subscriber.email == "gone@example.com")).one()
        gone.status = "unsubscribed"
        session.add(Suppression(email="blocked@example.com", reason="complaint"))
    issue, start, report = send_all(sample_engine, settings)
    assert start.enqueued == 2
    with session_scope(sample_engine) as session:
        rows = session.exec(select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)).all()
    assert sorted(rows) == ["all@example.com", "dev@example.com"]
    assert report.sent == 2 and report.finished
    files = sorted(settings.mail.file.dir.glob("*.eml"))
    assert len(files) == 2
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["To"] in ("all@example.com", "dev@example.com")


def test_sending_again_never_mails_anyone_twice(sample_engine, settings):
    add_readers(sample_engine, [(f"r{i}@example.com", []) for i in range(7)])
    issue, start, report = send_all(sample_engine, settings)
    assert (start.enqueued, report.sent) == (7, 7)
    again = start_send(sample_engine, issue.id)
    assert not again.started and again.enqueued == 0
    with session_scope(sample_engine) as session:
        assert outbox.enqueue(session, issue.id, datetime.now(UTC)) == 0  # the unique key holds
    second = deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)
    assert second.sent == 0 and second.counts == {"sent": 7}
    assert len(list(settings.mail.file.dir.glob("*.eml"))) == 7
    with session_scope(sample_engine) as session:
        assert session.get(Issue, issue.id).state == "sent"


def test_unsubscribed_after_enqueue_is_skipped(sample_engine, settings):
    add_readers(sample_engine, [("stays@example.com", []), ("leaves@example.com", [])])
    issue = draft_issue(sample_engine, settings, WEEK).issue
    start_send(sample_engine, issue.id)
    with session_scope(sample_engine) as session:
        leaver = session.exec(select(Subscriber).where(Subscriber.email == "leaves@example.com")).one()
        leaver.status = "unsubscribed"
    report = deliver(sample_engine, settings, make_transport(settings), TEST_SECRET, issue.id)
    assert (report.sent, report.skipped) == (1, 1)
    assert report.counts == {"sent": 1, "skipped": 1}


class FlakyTransport:
    """A transport double for one test: it answers retry for the first attempt of each message."""

    name = "flaky"

    def __init__(self):
        self.seen = {}

    def send(self, messages):
        results = []
        for message in messages:
            self.seen[message.reference] = self.seen.get(message.reference, 0) + 1
            ok = self.seen[message.reference] > 1
            results.append(SendResult(Outcome.sent if ok else Outcome.retry, error=None if ok else "451 later"))
        return results

    def close(self):
        pass


def test_temporary_failures_retry_with_backoff_then_send(sample_engine, settings):
    add_readers(sample_engine, [("a@example.com", []), ("b@example.com", [])])
    issue = draft_issue(sample_engine, settings, WEEK).issue
    start_send(sample_engine, issue.id)
    transport = FlakyTransport()
    first = deliver(sample_engine, settings, transport, TEST_SECRET, issue.id)
    assert (first.sent, first.retry, first.finished) == (0, 2, False)
    with session_scope(sample_engine) as session:
        rows = session.exec(select(Delivery)).all()
        assert {r.state for r in rows} == {"retry"} and all(r.last_error == "451 later" for r in rows)
        due = max(r.next_attempt_at for r in rows)
    assert due > datetime.now(UTC) + timedelta(seconds=settings.delivery.retry_base_seconds * 0.49)
    later = deliver(sample_engine, settings, transport, TEST_SECRET, issue.id, clock=lambda: due + timedelta(seconds=1))
    assert (later.sent, later.finished) == (2, True)


def test_smtp_end_to_end_with_hard_bounce(sample_engine, tmp_path, db_url, monkeypatch):
    controller, handler = start_server()
    monkeypatch.setenv("NEWSLETTER_MAIL__TRANSPORT", "smtp")
    monkeypatch.setenv("NEWSLETTER_MAIL__SMTP__PORT", str(controller.port))
    monkeypatch.setenv("NEWSLETTER_MAIL__SMTP__TIMEOUT", "5")
    settings = load_settings(write_config(tmp_path, db_url))
    try:
        add_readers(sample_engine, [("ok1@example.com", []), ("unknown-user@example.com", []),
                                    ("ok2@example.com", [])])
        issue, start, report = send_all(sample_engine, settings)
    finally:
        controller.stop()
    assert (report.sent, report.failed) == (2, 1)
    assert sorted(m.rcpt_tos[0] for m in handler.messages) == ["ok1@example.com", "ok2@example.com"]
    parsed = message_from_bytes(handler.messages[0].data, policy=policy.default)
    assert parsed["List-Unsubscribe"].startswith("<https://verdicts.example/unsubscribe/")
    assert parsed.get_body(("html",)) is not None and parsed.get_body(("plain",)) is not None
    with session_scope(sample_engine) as session:
        bounced = session.exec(select(Subscriber).where(Subscriber.email == "unknown-user@example.com")).one()
        assert bounced.status == "bounced"
        assert session.exec(select(Suppression).where(Suppression.email == bounced.email)).one().reason == "hard_bounce"


def test_a_cancelled_or_missing_issue_cannot_be_sent(sample_engine, settings):
    issue = draft_issue(sample_engine, settings, WEEK).issue
    with session_scope(sample_engine) as session:
        session.get(Issue, issue.id).state = "cancelled"
    with pytest.raises(UserError, match="cancelled"):
        start_send(sample_engine, issue.id)
    with pytest.raises(UserError, match="does not exist"):
        start_send(sample_engine, 999)
