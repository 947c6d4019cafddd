"""No message can block a queue: unbuildable rows between good rows, in every outbound queue
(issue deliveries, confirmation/welcome mails, editors' notices, test sends), on SQLite and
PostgreSQL, sent by a real `newsletter worker` process. Every good row is delivered, every bad row
ends `failed` with its error after `max_attempts`, and the worker is still running afterwards.

The bad rows are ones no builder may accept whatever it does with names: an address with a line
break in it (header injection), and a transactional row of a kind no template exists for. The
last tests, in process: a variant of the issue that cannot be compiled, and an issue whose whole
send raises, hold up nobody else (found by an outside review).
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from email import message_from_bytes, policy

from sqlalchemy import insert, select

from newsletter.db import session_scope, utcnow
from newsletter.delivery.models import Delivery
from newsletter.subscribers.models import Subscriber, TransactionalMail
from tests.delivery.test_workers import finish, popen, setup_issue, wait_for, worker_cmd

MAX_ATTEMPTS = 3
EXTRA = f"""
    [delivery]
    batch_size = 4
    max_attempts = {MAX_ATTEMPTS}
    retry_base_seconds = 0
    retry_max_seconds = 0
    heartbeat_seconds = 0.5

    [schedule]
    notify = ["editor@example.com"]
    """


def _is_bad(email: str) -> bool:
    return "\n" in email


def _fill_queues(engine, issue_id: int) -> None:
    """Readers and transactional rows, a bad one after every two good ones in each queue."""
    with session_scope(engine) as session:
        session.execute(insert(Subscriber), [
            {"email": f"bad{n}\nBcc: victim{n}@example.com" if n % 3 == 2 else f"good{n}@example.com",
             "name": "", "status": "active", "created_at": utcnow()} for n in range(12)])
        readers = session.execute(select(Subscriber.id, Subscriber.email)
                                  .where(Subscriber.email.not_like("reader%")).order_by(Subscriber.id)).all()
        mails = []
        for n, (subscriber_id, email) in enumerate(readers):
            kind = "bogus" if n % 3 == 1 else ("confirm", "welcome")[n % 2]  # bogus: no such template
            mails.append(dict(subscriber_id=subscriber_id, kind=kind, to_email=email))
        for n in range(6):
            to = f"ed{n}\n@example.com" if n % 3 == 2 else f"ed{n}@example.com"
            mails.append(dict(issue_id=issue_id, kind="notice", to_email=to))
            mails.append(dict(issue_id=issue_id, kind="test", to_email=to.replace("ed", "tester")))
        session.add_all([TransactionalMail(**mail) for mail in mails])


def _all_rows(engine, issue_id):
    with session_scope(engine) as session:
        deliveries = session.execute(
            select(Delivery.id, Delivery.state, Delivery.attempts, Delivery.last_error, Subscriber.email)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id).where(Delivery.issue_id == issue_id)).all()
        mails = session.execute(select(TransactionalMail.id, TransactionalMail.state, TransactionalMail.attempts,
                                       TransactionalMail.last_error, TransactionalMail.to_email,
                                       TransactionalMail.kind)).all()
    return deliveries, mails


def _settled(engine, issue_id) -> bool:
    deliveries, mails = _all_rows(engine, issue_id)
    return all(row.state in ("sent", "failed") for row in [*deliveries, *mails])


def test_bad_rows_fail_alone_in_every_queue_and_the_worker_keeps_running(tmp_path, db_url):
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 1, EXTRA, start=False)  # reader0000: one more good reader
    _fill_queues(engine, issue_id)
    from newsletter.delivery.sender import start_send

    assert start_send(engine, issue_id).enqueued == 13
    process = popen(worker_cmd(), tmp_path / "config.toml")  # a worker that runs until stopped
    try:
        wait_for(lambda: _settled(engine, issue_id) or process.poll() is not None, timeout=180,
                 what="every row of every queue sent or failed")
        assert process.poll() is None, "the worker exited"
    finally:
        process.send_signal(signal.SIGTERM)
        code, output = finish(process, timeout=60)
    assert code == 0, output
    deliveries, mails = _all_rows(engine, issue_id)
    assert not [row for row in [*deliveries, *mails] if row.state not in ("sent", "failed")]
    for row in deliveries:
        bad = _is_bad(row.email)
        assert row.state == ("failed" if bad else "sent"), row
        if bad:
            assert row.attempts == MAX_ATTEMPTS and "could not build the message" in row.last_error, row
    for row in mails:
        bad = _is_bad(row.to_email) or row.kind == "bogus"
        assert row.state == ("failed" if bad else "sent"), row
        if bad:
            assert row.attempts == MAX_ATTEMPTS and "could not build the message" in row.last_error, row
    # Every queue had both: good rows sent and bad rows failed.
    assert {row.state for row in deliveries} == {"sent", "failed"}
    for kind in ("confirm", "notice", "test"):
        assert {row.state for row in mails if row.kind == kind} == {"sent", "failed"}, kind

    # What reached the outbox: exactly the good rows, each to its own address.
    outbox = {path.stem: message_from_bytes(path.read_bytes(), policy=policy.default)
              for path in settings.mail.file.dir.glob("*.eml")}
    expected = {f"i{issue_id}-d{row.id}": row.email for row in deliveries if row.state == "sent"}
    for row in mails:
        if row.state == "sent":
            reference = {"notice": f"notice-i{issue_id}-t{row.id}", "test": f"test-i{issue_id}-t{row.id}"}
            expected[reference.get(row.kind, f"t{row.id}")] = row.to_email
    # The issue finished meanwhile (its bad deliveries failed), which queued the configured notice.
    assert [(row.state, row.kind) for row in mails if row.to_email == "editor@example.com"] == [("sent", "notice")]
    assert {name: str(mail["To"]) for name, mail in outbox.items()} == expected
    assert not any("victim" in str(mail) for mail in outbox.values())
    engine.dispose()


def _readers_with_topics(engine, readers: list[tuple[str, list[str]]]) -> None:
    from newsletter.subscribers.service import UpsertResult, upsert_active

    with session_scope(engine) as session:
        for email, topics in readers:
            upsert_active(session, email, "", topics, "import", UpsertResult())


class Accepting:
    """A transport that takes every message at once and notes whom it was for."""

    name, needs_bytes = "recording", True

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, messages):
        from newsletter.delivery.transports.base import Outcome, SendResult

        self.sent.extend(message.recipient for message in messages)
        return [SendResult(Outcome.sent) for _ in messages]

    def close(self) -> None:
        pass


def test_a_variant_that_cannot_be_compiled_fails_its_readers_alone(sample_engine, settings, monkeypatch):
    """An operator's template that fails for one variant of the issue (a reader's topic set): that
    variant's readers get `failed` after max_attempts, the batch's other readers get the issue at
    once. The variant's error used to escape the per-message isolation: the whole batch went back
    to the queue every pass, nobody got anything, and deliver raised."""
    from newsletter.delivery import variants
    from newsletter.delivery.sender import deliver, start_send
    from newsletter.issues.drafting import draft_issue
    from tests.conftest import TEST_SECRET

    _readers_with_topics(sample_engine, [("all1@example.com", []), ("dev@example.com", ["Developer Tools"]),
                                         ("all2@example.com", [])])
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    compile_one = variants.issue_template

    def failing_for_a_cut(settings_, view):
        if view.positions is not None:  # the cut-down variant (dev@ follows one topic)
            raise RuntimeError("the operator's template fails for this variant")
        return compile_one(settings_, view)

    monkeypatch.setattr(variants, "issue_template", failing_for_a_cut)
    transport = Accepting()
    for attempt in range(settings.delivery.max_attempts):
        deliver(sample_engine, settings, transport, TEST_SECRET, issue.id,
                clock=lambda: utcnow() + timedelta(days=attempt))  # each pass a day later: the retry due
    assert sorted(transport.sent) == ["all1@example.com", "all2@example.com"]  # once each, at the first pass
    with session_scope(sample_engine) as session:
        rows = dict(session.execute(select(Subscriber.email, Delivery.state)
                                    .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                                    .where(Delivery.issue_id == issue.id)).all())
        error = session.execute(select(Delivery.last_error).join(Subscriber, Delivery.subscriber_id == Subscriber.id)
                                .where(Subscriber.email == "dev@example.com")).scalar_one()
    assert rows == {"all1@example.com": "sent", "all2@example.com": "sent", "dev@example.com": "failed"}
    assert "the operator's template fails for this variant" in error


def test_a_builder_that_cannot_be_made_fails_its_messages_alone_and_deliver_returns(sample_engine, settings):
    """A variant's builder that cannot be made (a base URL so long that the List-Unsubscribe line
    would pass 998 characters): each message of the batch fails on its own, retried and then
    failed, and deliver returns. Made outside the per-message isolation, its error went back to
    the queue with the whole batch at every pass (an outside review found it)."""
    from newsletter.delivery.sender import deliver, start_send
    from newsletter.issues.drafting import draft_issue
    from tests.conftest import TEST_SECRET

    _readers_with_topics(sample_engine, [("one@example.com", []), ("two@example.com", [])])
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    site = settings.site.model_copy(update={"base_url": "https://" + "a" * 900 + ".example"})
    long = settings.model_copy(update={"site": site})
    transport = Accepting()
    for attempt in range(settings.delivery.max_attempts):
        deliver(sample_engine, long, transport, TEST_SECRET, issue.id, clock=lambda: utcnow() + timedelta(days=attempt))
    assert transport.sent == []
    with session_scope(sample_engine) as session:
        rows = session.execute(select(Delivery.state, Delivery.attempts, Delivery.last_error)
                               .where(Delivery.issue_id == issue.id)).all()
    assert [(state, attempts) for state, attempts, _error in rows] == [("failed", settings.delivery.max_attempts)] * 2
    assert all("List-Unsubscribe" in error and "998" in error for _state, _attempts, error in rows)


def test_an_issue_whose_send_fails_holds_up_nothing_else(sample_engine, settings, monkeypatch):
    """One sending issue whose deliver raises (a bug, a broken issue): the worker's pass goes on to
    the confirmations queued behind it instead of starting over at that issue every time."""
    from newsletter.delivery import worker
    from newsletter.delivery.ratelimit import SendRateLimiter
    from newsletter.delivery.sender import start_send
    from newsletter.delivery.transports import make_transport
    from newsletter.issues.drafting import draft_issue
    from tests.conftest import TEST_SECRET

    _readers_with_topics(sample_engine, [("reader@example.com", [])])
    issue = draft_issue(sample_engine, settings, "2026-W48").issue
    start_send(sample_engine, issue.id)
    with session_scope(sample_engine) as session:
        session.add(TransactionalMail(kind="confirm", to_email="newcomer@example.com",
                                      subscriber_id=session.execute(select(Subscriber.id)).scalar_one()))

    def broken(*args, **kwargs):
        raise RuntimeError("this issue cannot be sent")

    monkeypatch.setattr(worker, "deliver", broken)
    transport = make_transport(settings)
    lines = []
    w = worker._Worker(sample_engine, settings, transport, TEST_SECRET,
                       SendRateLimiter.from_settings(sample_engine, settings, transport.name), "w1",
                       threading.Event(), lines.append)
    assert worker._one_pass(w)  # the confirmation went out in this pass
    assert any(f"issue {issue.id}: error: this issue cannot be sent" in line for line in lines), lines
    with session_scope(sample_engine) as session:
        assert session.execute(select(TransactionalMail.state)).scalar_one() == "sent"
    assert [path.name for path in settings.mail.file.dir.glob("*.eml")]  # in the file outbox
