"""A retry far behind the front no longer holds the claims' floor (retry_side.py, migration 0033).

Before, the floor was the lowest id not final: one retry due in an hour at the start of the issue
kept it there, and every rescan's claim walked every row sent since (PostgreSQL's count of rows it
read, below, grew with the rows behind the retry). Now the retry is kept beside the walk: the
rescan walks from the front, and the retry is still found, claimed once, counted as pending,
and keeps the issue from being finished, until it is final.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from newsletter.db import session_scope, utcnow
from newsletter.delivery import claim_batch, outbox, worker
from newsletter.delivery.claim_batch import ClaimCursor
from newsletter.delivery.models import DeliveryRetry
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.delivery.sender import _finish_if_done
from newsletter.issues.models import Issue
from tests.delivery.test_claims import _enqueue

LEASE = timedelta(minutes=5)
TAKE = 50


def _ids(rows: list[tuple]) -> list[int]:
    return [row[0] for row in rows]


def _behind_a_retry(engine, settings, readers: int):
    """An issue whose first row waits for a retry due in an hour and whose rows up to the last
    2 * TAKE are sent: (issue id, ids, the worker's cursor after its first rescan, now)."""
    claim_batch._FLOORS.clear()  # this process's floors of other tests' databases
    issue_id, ids = _enqueue(engine, settings, readers)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    with session_scope(engine) as session:
        first, _ = cursor.claim(session, now, TAKE, LEASE, None)
        outbox.record(session, now, [(i, f"<{i}@x>", None) for i in _ids(first)[1:]],
                      [(ids[0], now + timedelta(hours=1), "451 later")], [])
    with engine.begin() as connection:  # the send went on: everything but the last rows is sent
        connection.execute(text("UPDATE delivery SET state = 'sent', sent_at = :now "
                                "WHERE issue_id = :issue AND id > :first AND id < :front"),
                           {"now": now, "issue": issue_id, "first": ids[TAKE - 1], "front": ids[-2 * TAKE]})
        connection.execute(text("ANALYZE delivery"))
    return issue_id, ids, cursor, now


def _rows_read(session) -> int:
    """The `delivery` rows this transaction has read so far (PostgreSQL's own count)."""
    return session.execute(text(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
        "WHERE relid = 'delivery'::regclass")).scalar_one()


def test_a_rescan_reads_about_the_rows_it_takes_however_many_lie_behind_a_retry(sample_engine, settings):
    if sample_engine.dialect.name != "postgresql":
        return  # the count of rows read is PostgreSQL's; the behaviour is checked on both below
    read, taken = {}, {}
    for readers in (1000, 4000):
        issue_id, ids, cursor, now = _behind_a_retry(sample_engine, settings, readers)
        cursor.rescan_at = 0.0  # the send's previous rescan (RESCAN_SECONDS before): the floor moves on
        with session_scope(sample_engine) as session:
            cursor.claim(session, now, 0, LEASE, None)
        cursor.rescan_at = 0.0  # the next claim rescans: measured
        with session_scope(sample_engine) as session:
            before = _rows_read(session)
            rows, _ = cursor.claim(session, now + timedelta(seconds=1), TAKE, LEASE, None)
            read[readers] = _rows_read(session) - before
        taken[readers] = (_ids(rows) == ids[-2 * TAKE:-TAKE], cursor.floor == ids[-2 * TAKE])
        with sample_engine.begin() as connection:
            connection.execute(text("DELETE FROM issue WHERE id = :issue"), {"issue": issue_id})
            connection.execute(text("DELETE FROM subscriber"))
    # The rescan's floor, the walk and its claim: about TAKE rows each, not the thousands behind.
    assert read[4000] <= 3 * TAKE + 20, read
    assert read[4000] - read[1000] <= 20, read
    # It took the front's rows, and its floor is the front, not the retry at ids[0].
    assert taken == {1000: (True, True), 4000: (True, True)}, taken


def test_a_retry_behind_the_floor_is_claimed_once_when_due_and_keeps_the_issue_open(sample_engine, settings):
    issue_id, ids, cursor, now = _behind_a_retry(sample_engine, settings, 400)
    retry = ids[0]
    cursor.rescan_at = 0.0
    with session_scope(sample_engine) as session:
        rows, _ = cursor.claim(session, now + timedelta(seconds=1), 2 * TAKE, LEASE, None)
        assert _ids(rows) == ids[-2 * TAKE:]  # the retry is not due: not taken
        outbox.record(session, now, [(i, f"<{i}@x>", None) for i in _ids(rows)], [], [])
        assert not _finish_if_done(session, issue_id, now, cursor.floor)  # it is still pending
        assert outbox.counts_from(session, issue_id, cursor.floor).get("retry") == 1
    assert worker.outstanding(sample_engine, now + timedelta(hours=2)) == 1  # due then: work to do
    later = now + timedelta(hours=2)
    with session_scope(sample_engine) as session:  # due: the walk from the floor finds nothing, the kept row
        rows, _ = cursor.claim(session, later, TAKE, LEASE, None)
        assert _ids(rows) == [retry] and rows[0][1] == 2  # its second attempt
        assert cursor.claim(session, later, TAKE, LEASE, None) == ([], 0)  # claimed once
    # Its worker stopped: the lease ran out, and the row below the floor is found again.
    expired = later + LEASE + timedelta(seconds=1)
    other = ClaimCursor(issue_id, "w2", floor=cursor.floor, rescan_at=float("inf"))
    with session_scope(sample_engine) as session:
        rows, _ = other.claim(session, expired, TAKE, LEASE, None)
        assert _ids(rows) == [retry]
        assert not _finish_if_done(session, issue_id, expired, other.floor)
        outbox.record(session, expired, [(retry, f"<{retry}@x>", None)], [], [], "w2")
    other.rescan_at = 0.0
    with session_scope(sample_engine) as session:  # final: swept at the rescan, and the issue is done
        assert other.claim(session, expired, TAKE, LEASE, None) == ([], 0)
        assert session.execute(select(func.count()).select_from(DeliveryRetry)).scalar_one() == 0
        assert _finish_if_done(session, issue_id, expired, other.floor)
        assert session.get(Issue, issue_id).state == "sent"


def test_a_retry_again_moves_its_due_time(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 3)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    for attempt, wait in enumerate((timedelta(minutes=1), timedelta(minutes=30))):
        at = now + timedelta(minutes=2 * attempt)
        with session_scope(sample_engine) as session:
            cursor.rescan_at = 0.0
            rows, _ = cursor.claim(session, at, 1, LEASE, None)
            assert _ids(rows) == [ids[0]]
            outbox.record(session, at, [], [(ids[0], at + wait, "451 later")], [])
    with session_scope(sample_engine) as session:
        kept = session.get(DeliveryRetry, ids[0])
        assert kept.issue_id == issue_id and kept.due_at == now + timedelta(minutes=32)


def test_a_batch_records_every_value_as_given(sample_engine, settings):
    """outbox.record's one statement (text arrays on PostgreSQL, a column of one repeated value
    quoted once): quotes, backslashes, commas, braces and the word NULL come back as they went in;
    mixed columns and all-equal columns alike."""
    issue_id, ids = _enqueue(sample_engine, settings, 6)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    odd = ['451 "quoted" \\ back, {brace}', "NULL", "", '\\"']
    with session_scope(sample_engine) as session:
        rows, _ = cursor.claim(session, now, 6, LEASE, None)
        got = _ids(rows)
        moved = outbox.record(session, now, [(got[0], '<a"b\\c@x>', "prov,1"), (got[1], "<b@x>", None)],
                              [(got[2], now + timedelta(hours=1), odd[0]), (got[3], now + timedelta(hours=1), odd[1])],
                              [(got[4], odd[2]), (got[5], odd[3])], "w")
    assert moved == {"sent": 2, "retry": 2, "failed": 2}
    with session_scope(sample_engine) as session:
        found = {row[0]: row[1:] for row in session.execute(text(
            "SELECT id, state, message_id, provider_message_id, last_error FROM delivery WHERE issue_id = :i"),
            {"i": issue_id})}
    assert found[got[0]] == ("sent", '<a"b\\c@x>', "prov,1", None)
    assert found[got[1]] == ("sent", "<b@x>", None, None)
    assert [found[i][3] for i in got[2:]] == odd
    assert [found[i][0] for i in got[2:]] == ["retry", "retry", "failed", "failed"]


def _entries(engine, issue_id: int) -> int:
    with session_scope(engine) as session:
        return session.execute(select(func.count()).select_from(DeliveryRetry).where(
            DeliveryRetry.issue_id == issue_id)).scalar_one()


def test_a_cancelled_issue_leaves_no_entries_beside_the_walk(sample_engine, settings):
    """Cancel is final: the entries of its retries go at once, and a batch that was in flight
    when it came and records a retry afterwards (a late result, skipped in the same transaction)
    leaves none behind either. Nothing else would ever sweep them: nobody claims the issue again."""
    from newsletter.delivery.control import cancel_issue
    from newsletter.delivery.sender import _record

    issue_id, ids = _enqueue(sample_engine, settings, 6)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    with session_scope(sample_engine) as session:
        first, _ = cursor.claim(session, now, 2, LEASE, None)
        outbox.record(session, now, [], [(i, now + timedelta(minutes=1), "451 later") for i in _ids(first)], [], "w")
    assert _entries(sample_engine, issue_id) == 2
    with session_scope(sample_engine) as session:
        in_flight, _ = cursor.claim(session, now, 2, LEASE, None)  # claimed before the cancel
    assert cancel_issue(sample_engine, issue_id).state == "cancelled"
    assert _entries(sample_engine, issue_id) == 0
    late = [((row[0], row[1], None, row[3]), SendResult(Outcome.retry, error="451 busy")) for row in in_flight]
    with session_scope(sample_engine) as session:
        assert _record(session, late, now, "smtp", settings.delivery, issue_id, "w") == (0, 2, 0, 2)
    assert _entries(sample_engine, issue_id) == 0
    with session_scope(sample_engine) as session:
        states = session.execute(text("SELECT state, count(*) FROM delivery WHERE issue_id = :i GROUP BY state"),
                                 {"i": issue_id}).all()
    assert dict(states) == {"skipped": 6}


@pytest.fixture
def pg_sample(tmp_path, pg_url):
    """The sample store on PostgreSQL only: the race below needs two writers at once."""
    from newsletter.config import load_settings
    from newsletter.db import make_engine
    from tests.conftest import write_config
    from tests.db_templates import migrate_fresh, sample_content

    settings = load_settings(write_config(tmp_path, pg_url))
    engine = make_engine(settings.database.url)
    migrate_fresh(engine)
    sample_content(engine)
    yield engine, settings
    engine.dispose()


def test_a_cancel_that_commits_inside_a_batchs_record_still_skips_its_retries(pg_sample):
    """The worker's record transaction has run its own skip (the issue still sending) when the
    cancel commits; the cancel's skip cannot see the batch's uncommitted retries, so both commit
    and the retries stay pending, kept beside the walk, on a cancelled issue nobody claims again.
    The worker's finish, after that commit, skips them and drops their entries."""
    from sqlmodel import Session

    from newsletter.delivery.control import cancel_issue
    from newsletter.delivery.sender import DeliverReport, _claim, _finish, _prepare, _record
    from newsletter.delivery.transports.file import FileTransport

    engine, settings = pg_sample
    issue_id, ids = _enqueue(engine, settings, 6)
    report = DeliverReport(issue_id)
    job = _prepare(engine, settings, FileTransport(settings.mail.file.dir), "secret-" + "x" * 40, issue_id, "w",
                   None, report)
    rows, _ = _claim(job, 4, utcnow(), report)
    late = [((row[0], row[1], None, row[3]), SendResult(Outcome.retry, error="451 busy")) for row in rows]
    with Session(engine) as batch:  # the worker's record, not yet committed
        assert _record(batch, late, utcnow(), "file", settings.delivery, issue_id, "w") == (0, 4, 0, 0)
        assert cancel_issue(engine, issue_id).skipped == 2  # the two rows nobody had claimed
        batch.commit()
    with session_scope(engine) as session:
        states = dict(session.execute(text("SELECT state, count(*) FROM delivery WHERE issue_id = :i GROUP BY state"),
                                      {"i": issue_id}).all())
    assert states == {"retry": 4, "skipped": 2} and _entries(engine, issue_id) == 4  # the race, as it was
    _finish(job, report, utcnow)
    with session_scope(engine) as session:
        states = dict(session.execute(text("SELECT state, count(*) FROM delivery WHERE issue_id = :i GROUP BY state"),
                                      {"i": issue_id}).all())
    assert states == {"skipped": 6} and _entries(engine, issue_id) == 0
    assert report.counts.get("skipped") == 6 and not report.finished


def test_a_cancel_with_nothing_left_to_skip_still_drops_the_entries(sample_engine, settings):
    """Every retry claimed again (in flight, `sending`) when the cancel comes: the cancel skips
    nothing, yet the issue's entries go, since nothing claims a cancelled issue again."""
    from newsletter.delivery.control import cancel_issue

    issue_id, ids = _enqueue(sample_engine, settings, 2)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    with session_scope(sample_engine) as session:
        first, _ = cursor.claim(session, now, 2, LEASE, None)
        outbox.record(session, now, [], [(i, now, "451 later") for i in _ids(first)], [], "w")
    later = now + timedelta(seconds=1)
    with session_scope(sample_engine) as session:
        again, _ = ClaimCursor(issue_id, "w2").claim(session, later, 2, LEASE, None)
    assert sorted(_ids(again)) == sorted(_ids(first)) and _entries(sample_engine, issue_id) == 2
    result = cancel_issue(sample_engine, issue_id)
    assert (result.state, result.skipped) == ("cancelled", 0)
    assert _entries(sample_engine, issue_id) == 0
