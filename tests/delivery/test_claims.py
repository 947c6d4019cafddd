"""Claims: near the end of a big send a claim from the cursor's floor reads about the rows it
takes, not every row already sent; a claim from a hint still finds what came due below it.

A claim that walked the primary key past every sent row took ~0.5 s at 700,000 sent on PostgreSQL
(a million-subscriber send slowed as it went). It walks the issue's rows (ix_delivery_issue_id)
from the lowest id not final (claim_batch.lowest_pending), which no index by state can give any
more: such an index would stop PostgreSQL updating the rows in place (migration 0032). The claim
statement is captured as the worker runs it and explained by the database itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import event, insert, select, text

from newsletter.config import load_settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import claim_batch, outbox
from newsletter.delivery.claim_batch import ClaimCursor
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import deliver, start_send
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from newsletter.issues.drafting import draft_issue
from newsletter.subscribers.models import Subscriber
from tests.conftest import TEST_SECRET, write_config

READERS, SENT, TAKE = 4000, 3800, 50


def _captured_claim(engine, issue_id: int, floor: int | None) -> tuple[str, object]:
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("UPDATE DELIVERY") and "LIMIT" in statement.upper():
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with session_scope(engine) as session:
            taken = outbox.claim(session, issue_id, utcnow(), TAKE, timedelta(minutes=5), "test-worker", from_id=floor)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(taken) == TAKE
    assert len(seen) == 1, seen
    return seen[0]


def _from_the_floor(plan: str) -> bool:
    """The plan walks an index by id from the floor: the issue's (issue_id, id) or, one issue's ids
    being consecutive, the primary key (SQLite: the rowid); never a scan of the table."""
    return any(name in plan for name in ("ix_delivery_issue_id", "pk_delivery", "INTEGER PRIMARY KEY (rowid>?)"))


def _filtered_rows(node: dict) -> int:
    """Rows a plan node (and its children) read and threw away."""
    return node.get("Rows Removed by Filter", 0) + sum(_filtered_rows(child) for child in node.get("Plans", []))


def test_a_late_claim_from_the_floor_reads_about_the_rows_it_takes(sample_engine, settings):
    issue_id, _ = _enqueue(sample_engine, settings, READERS)
    with sample_engine.begin() as connection:  # most of the send is done: the lowest ids are sent
        connection.execute(text(
            "UPDATE delivery SET state = 'sent' WHERE issue_id = :issue AND id < "
            "(SELECT min(id) FROM delivery WHERE issue_id = :issue) + :sent"), {"issue": issue_id, "sent": SENT})
        connection.execute(text("ANALYZE delivery"))  # not database-wide: that deadlocks with other tests'
    with session_scope(sample_engine) as session:
        floor = claim_batch.lowest_pending(session, issue_id, None)
    statement, parameters = _captured_claim(sample_engine, issue_id, floor)
    with sample_engine.connect() as connection:
        if sample_engine.dialect.name == "sqlite":
            plan = " | ".join(row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert _from_the_floor(plan), plan
        else:
            with connection.begin():
                (document,) = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar_one()
                connection.rollback()
            plan = json.dumps(document)
            assert _from_the_floor(plan), plan
            # Of the rows it looked at, it threw away at most the ones the first claim took.
            assert _filtered_rows(document["Plan"]) <= TAKE, plan


def _enqueue(engine, settings, readers: int) -> tuple[int, list[int]]:
    with session_scope(engine) as session:
        session.execute(insert(Subscriber), [
            {"email": f"h{n}@example.com", "name": "", "status": "active", "created_at": utcnow()}
            for n in range(readers)])
    issue_id = draft_issue(engine, settings, "2026-W48").issue.id
    assert start_send(engine, issue_id).enqueued == readers
    with session_scope(engine) as session:
        ids = sorted(session.execute(select(Delivery.id).where(Delivery.issue_id == issue_id)).scalars())
    return issue_id, ids


def _ids(rows: list[tuple]) -> list[int]:
    return [row[0] for row in rows]


def test_a_hinted_claim_skips_below_the_hint_until_the_queue_runs_short(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 20)
    lease = timedelta(minutes=5)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    with session_scope(sample_engine) as session:
        first, _ = cursor.claim(session, now, 5, lease, None)
    assert _ids(first) == ids[:5] and cursor.floor == ids[0]
    with session_scope(sample_engine) as session:  # the first batch: all sent but one, due again now
        outbox.mark_sent(session, now, [(i, f"<{i}@x>", None) for i in _ids(first) if i != ids[1]])
        outbox.mark_retry(session, [(ids[1], now, "451 try later")])
    later = now + timedelta(seconds=1)
    cursor.hint, cursor.rescan_at = ids[5], math.inf  # no rescan: from the hint, the retry below it waits
    with session_scope(sample_engine) as session:
        second, _ = cursor.claim(session, later, 5, lease, None)
    assert _ids(second) == ids[5:10]
    cursor.hint = ids[5]
    with session_scope(sample_engine) as session:  # 10 queued above the hint, 20 asked: the rest from the floor
        third, _ = cursor.claim(session, later, 20, lease, None)
    assert _ids(third) == sorted([ids[1], *ids[10:]])
    with session_scope(sample_engine) as session:  # nothing is due any more
        assert cursor.claim(session, later, 20, lease, None) == ([], 0)


class RetriesOneLater:
    """Accepts every message but one, which it asks to have again in 90 s."""

    name = "test"
    needs_bytes = False

    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.seen: list[str] = []

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in messages:
            again = message.reference == self.reference and self.reference not in self.seen
            self.seen.append(message.reference)
            results.append(SendResult(Outcome.retry, error="451 later", retry_after=90) if again
                           else SendResult(Outcome.sent))
        return results

    def close(self) -> None:
        pass


@pytest.mark.parametrize("rescan", ["never", "every claim"])
def test_deliver_claims_from_its_hint_and_rescans_for_what_came_due_below(
        sample_engine, settings, tmp_path, monkeypatch, rescan):
    """30 deliveries in batches of 5; the 3rd message asks to be retried 90 s later, when the
    worker's claims start above it. Without a rescan it waits for the end of the queue; with one
    it is taken at the next claim. Either way every reader gets exactly one accepted message."""
    (tmp_path / "b").mkdir()
    settings = load_settings(write_config(tmp_path / "b", settings.database.url, "[delivery]\nbatch_size = 5\n"))
    issue_id, ids = _enqueue(sample_engine, settings, 30)
    monkeypatch.setattr(claim_batch, "RESCAN_SECONDS", 1e9 if rescan == "never" else 0.0)
    ticks = iter(range(10_000))
    start = utcnow()

    def clock():  # a minute per call: the retry (due 90 s after batch 1) is due from the 3rd claim on
        return start + timedelta(minutes=next(ticks))

    retried = f"i{issue_id}-d{ids[2]}"
    transport = RetriesOneLater(retried)
    report = deliver(sample_engine, settings, transport, TEST_SECRET, issue_id, clock=clock)
    assert report.finished and report.sent == 30 and report.retry == 1
    assert sorted(transport.seen) == sorted([retried] + [f"i{issue_id}-d{i}" for i in ids])
    second = len(transport.seen) - 1 - transport.seen[::-1].index(retried)
    if rescan == "never":
        assert second == 30  # the very last message: found when the hinted claim came up empty
    else:
        assert second == 10  # the first of the 3rd batch


def test_one_batch_records_every_outcome_and_leaves_rows_recorded_elsewhere(sample_engine, settings):
    """outbox.record (one UPDATE … FROM unnest on PostgreSQL, executemany on SQLite): sent, retry
    and failed rows get their own columns; a row no longer `sending` (its lease expired and
    another worker recorded it) keeps what the other worker wrote."""
    issue_id, ids = _enqueue(sample_engine, settings, 6)
    now, lease = utcnow(), timedelta(minutes=5)
    with session_scope(sample_engine) as session:
        rows, _ = claim_batch.claim_rows(session, issue_id, now, 6, lease, "w", None, None)
        assert _ids(rows) == ids and rows[0][:2] == (ids[0], 1)
        outbox.record(session, now, [(ids[5], "<other@x>", "p-other")], [], [])  # the other worker
    later = now + timedelta(seconds=3)
    with session_scope(sample_engine) as session:
        outbox.record(session, later, [(ids[0], "<0@x>", "p-0"), (ids[1], "<1@x>", None), (ids[5], "<5@x>", None)],
                      [(ids[2], later + timedelta(seconds=90), "451 later")], [(ids[3], '550 "no" such {user}, \\ NULL')])
    with session_scope(sample_engine) as session:
        rows = {row.id: row for row in session.execute(select(Delivery).where(Delivery.issue_id == issue_id)).scalars()}
    assert [rows[i].state for i in ids] == ["sent", "sent", "retry", "failed", "sending", "sent"]
    assert (rows[ids[0]].message_id, rows[ids[0]].provider_message_id, rows[ids[0]].sent_at) == ("<0@x>", "p-0", later)
    assert rows[ids[1]].provider_message_id is None and rows[ids[1]].last_error is None
    assert (rows[ids[2]].next_attempt_at, rows[ids[2]].last_error) == (later + timedelta(seconds=90), "451 later")
    assert rows[ids[3]].last_error == '550 "no" such {user}, \\ NULL' and rows[ids[3]].sent_at is None
    assert all(rows[i].lease_until is None for i in ids if i != ids[4]) and rows[ids[4]].lease_until is not None
    assert (rows[ids[5]].message_id, rows[ids[5]].provider_message_id, rows[ids[5]].sent_at) == (
        "<other@x>", "p-other", now)
