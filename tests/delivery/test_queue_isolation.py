"""No message can block a queue: unbuildable rows between good rows, in every outbound queue
(issue deliveries, confirmation/welcome mails, editors' notices, test sends), on SQLite and
PostgreSQL, sent by a real `newsletter worker` process. Every good row is delivered, every bad row
ends `failed` with its error after `max_attempts`, and the worker is still running afterwards.

The bad rows are ones no builder may accept whatever it does with names: an address with a line
break in it (header injection), and a transactional row of a kind no template exists for.
"""

from __future__ import annotations

import signal
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
