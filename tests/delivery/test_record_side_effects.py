"""A batch's record commits its results together with their side effects (a hard bounce's
suppression, a retry's due time). When a side effect raised, the whole record rolled back: every
message the transport had accepted stayed `sending`, and after the lease each was claimed and sent
a second time. These tests feed the record what real traffic feeds it (found by an outside review):
another transaction suppressing the same address at the same moment, a provider's Retry-After of
years, a cancel followed by a worker's stop in mid-batch."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, select, text

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.delivery import control
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.delivery.transports.http import retry_after_seconds
from tests.conftest import TEST_SECRET
from tests.delivery.test_workers import counts, setup_issue

BOUNCING = "reader0002@example.com"


class Scripted:
    """A transport that answers each recipient as `answer` says and remembers every message."""

    name = "scripted"
    needs_bytes = True

    def __init__(self, answer=lambda recipient: SendResult(Outcome.sent)) -> None:
        self.answer, self.sent = answer, []

    def send(self, messages):
        self.sent += [message.recipient for message in messages]
        return [self.answer(message.recipient) for message in messages]

    def close(self) -> None:
        pass


def bounce_one(recipient: str) -> SendResult:
    if recipient == BOUNCING:
        return SendResult(Outcome.failed, error="550 5.1.1 user unknown", hard_bounce=True)
    return SendResult(Outcome.sent)


@pytest.mark.postgres
def test_a_suppression_made_meanwhile_elsewhere_does_not_undo_the_batch(tmp_path, pg_url):
    """A provider's webhook suppresses the address in its own transaction while the batch that
    bounced it records: both insert the same address. The record must still commit, so each
    reader got the issue once, and the address stays suppressed once."""
    settings, engine, issue_id = setup_issue(tmp_path, pg_url, 5, "[delivery]\nbatch_size = 10\n")
    other = create_engine(pg_url)
    try:
        with other.connect() as connection:
            webhook = connection.begin()
            connection.execute(text("INSERT INTO suppression (email, reason, created_at) "
                                    "VALUES (:email, 'hard_bounce', now())"), {"email": BOUNCING})
            threading.Timer(1.0, webhook.commit).start()  # the record's insert waits on this row meanwhile
            transport = Scripted(bounce_one)
            report = deliver(engine, settings, transport, TEST_SECRET, issue_id)
    finally:
        other.dispose()
    assert (report.sent, report.failed) == (4, 1)
    assert counts(engine, issue_id) == {"sent": 4, "failed": 1}
    # A later pass, past any lease, finds nothing to send again.
    deliver(engine, settings, transport, TEST_SECRET, issue_id, clock=lambda: utcnow() + timedelta(hours=1))
    assert set(Counter(transport.sent).values()) == {1}
    with session_scope(engine) as session:
        assert session.execute(text("SELECT count(*) FROM suppression WHERE email = :e"),
                               {"e": BOUNCING}).scalar_one() == 1


def test_a_retry_after_of_years_waits_retry_max_seconds_and_loses_nothing(tmp_path):
    """A 429 whose Retry-After is 10^12 seconds (a broken proxy): the due time overflowed and the
    batch's whole record raised. Now every row is recorded, the deferred one due within
    `retry_max_seconds`, and a later pass sends nobody twice."""
    settings, engine, issue_id = setup_issue(tmp_path, None, 5, "[delivery]\nbatch_size = 10\n")
    assert retry_after_seconds("1000000000000") == 1e12  # what the HTTP transports hand on

    def deferred(recipient: str) -> SendResult:
        if recipient == BOUNCING:
            return SendResult(Outcome.retry, error="429 slow down", retry_after=retry_after_seconds("1000000000000"))
        return SendResult(Outcome.sent)

    transport = Scripted(deferred)
    started = utcnow()
    report = deliver(engine, settings, transport, TEST_SECRET, issue_id)
    assert (report.sent, report.retry) == (4, 1)
    assert counts(engine, issue_id) == {"sent": 4, "retry": 1}
    with session_scope(engine) as session:
        due = session.execute(select(Delivery.next_attempt_at).where(Delivery.state == "retry")).scalar_one()
    due = due if due.tzinfo else due.replace(tzinfo=started.tzinfo)
    assert due <= started + timedelta(seconds=settings.delivery.retry_max_seconds + 60)
    deliver(engine, settings, transport, TEST_SECRET, issue_id, clock=lambda: utcnow() + timedelta(minutes=10))
    assert set(Counter(transport.sent).values()) == {1}  # due later: nobody had it twice meanwhile


class CancelThenStop:
    """The editor cancels while the batch is with the transport, and the worker is then stopped at
    once (a second SIGTERM: KeyboardInterrupt inside the send)."""

    name = "scripted"
    needs_bytes = True

    def __init__(self, engine, issue_id) -> None:
        self.engine, self.issue_id = engine, issue_id

    def send(self, messages):
        control.cancel_issue(self.engine, self.issue_id)
        raise KeyboardInterrupt("stopped at once")

    def close(self) -> None:
        pass


def test_a_batch_given_back_after_a_cancel_is_skipped_not_queued_for_good(tmp_path, db_url):
    """The stopping worker gives its batch back; the issue is cancelled, so no worker claims it again:
    those rows used to stay `queued` for good and the issue's pending count never reached 0."""
    settings, engine, issue_id = setup_issue(tmp_path, db_url, 6, "[delivery]\nbatch_size = 3\n")
    with pytest.raises(KeyboardInterrupt):
        deliver(engine, settings, CancelThenStop(engine, issue_id), TEST_SECRET, issue_id)
    assert counts(engine, issue_id) == {"skipped": 6}
    with session_scope(engine) as session:
        figures = tallies.Deliveries.of(tallies.read(session, [issue_id])[issue_id])
    assert (figures.pending, figures.skipped) == (0, 6)


def test_late_results_of_a_batch_taken_over_count_nothing(tmp_path, db_url):
    """A worker whose batch another worker took over (its lease ran out) records late: no row moves,
    and its report says so. It used to count what it tried (an outside review saw two workers
    report 45 sent for 25 rows), and those figures feed the worker's summary and `--wait`'s bar."""
    from newsletter.delivery import outbox
    from newsletter.delivery.sender import _record

    settings, engine, issue_id = setup_issue(tmp_path, db_url, 3)
    lease, now = timedelta(seconds=settings.delivery.lease_seconds), utcnow()
    with session_scope(engine) as session:
        first = outbox.claim(session, issue_id, now, 3, lease, "first")
    with session_scope(engine) as session:  # after the lease: the second worker takes them
        assert sorted(outbox.claim(session, issue_id, now + lease * 2, 3, lease, "second")) == sorted(first)
    late = [((delivery_id, 1, f"<{delivery_id}@x>", f"reader{n:04d}@example.com"), SendResult(Outcome.sent))
            for n, delivery_id in enumerate(first)]
    with session_scope(engine) as session:
        assert _record(session, late, now, "scripted", settings.delivery, issue_id, "first") == (0, 0, 0, 0)
        assert _record(session, late, now, "scripted", settings.delivery, issue_id, "second") == (3, 0, 0, 0)
    assert counts(engine, issue_id) == {"sent": 3}
