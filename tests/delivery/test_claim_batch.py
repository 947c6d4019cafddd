"""claim_batch: a batch's claim hands back the rows with their readers (one statement on
PostgreSQL, the portable statements on SQLite); concurrent claimers never share a row; readers
who left are skipped, not sent; the ClaimCursor's floor (the lowest id not final) keeps every
retry and expired lease within reach of its rescans while the claims skip the finished rows."""

from __future__ import annotations

import json
import math
import threading
from datetime import timedelta

from sqlalchemy import event, select, text

from newsletter import tallies
from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.claim_batch import GONE_REASON, ClaimCursor, claim_rows
from newsletter.delivery.models import Delivery
from newsletter.subscribers.models import Subscriber, Suppression
from tests.delivery.test_claims import _enqueue, _from_the_floor

LEASE = timedelta(minutes=5)


def _ids(rows: list[tuple]) -> list[int]:
    return [row[0] for row in rows]


def _state(engine, delivery_id: int) -> Delivery:
    with session_scope(engine) as session:
        row = session.get(Delivery, delivery_id)
        session.expunge(row)
        return row


def test_a_claim_returns_each_row_with_its_reader_once(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 6)
    with sample_engine.begin() as connection:  # a reader with topics: their variant's bits
        connection.execute(text("UPDATE delivery SET variant_mask = 5 WHERE id = :id"), {"id": ids[2]})
    with session_scope(sample_engine) as session:
        readers = {s.id: (s.email, s.name, s.token_key) for s in session.execute(select(Subscriber)).scalars()}
        owner = dict(session.execute(select(Delivery.id, Delivery.subscriber_id)).all())
    now = utcnow()
    with session_scope(sample_engine) as session:
        first, skipped = claim_rows(session, issue_id, now, 4, LEASE, "w1", None, None)
    assert skipped == 0
    assert first == [(i, 1, owner[i], *readers[owner[i]], 5 if i == ids[2] else None) for i in ids[:4]]
    with session_scope(sample_engine) as session:
        second, _ = claim_rows(session, issue_id, now, 10, LEASE, "w2", None, None)
        assert _ids(second) == ids[4:]
        assert claim_rows(session, issue_id, now, 10, LEASE, "w2", None, None) == ([], 0)
    row = _state(sample_engine, ids[0])
    assert (row.state, row.claimed_by, row.attempts, row.lease_until) == ("sending", "w1", 1, now + LEASE)


def test_concurrent_claimers_never_share_a_row(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 120)
    now = utcnow()
    if sample_engine.dialect.name == "postgresql":  # a claim not yet committed: the next one skips its rows
        with session_scope(sample_engine) as holding:
            held, _ = claim_rows(holding, issue_id, now, 5, LEASE, "w-held", None, None)
            with session_scope(sample_engine) as other:
                beside, _ = claim_rows(other, issue_id, now, 5, LEASE, "w-beside", None, None)
            assert (_ids(held), _ids(beside)) == (ids[:5], ids[5:10])
    taken: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        cursor = ClaimCursor(issue_id, name)
        try:
            while True:
                with session_scope(sample_engine) as session:
                    rows, _ = cursor.claim(session, now, 7, LEASE, None)
                if not rows:
                    return
                taken.setdefault(name, []).extend(_ids(rows))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    everything = [i for rows in taken.values() for i in rows]
    already = ids[:10] if sample_engine.dialect.name == "postgresql" else []
    assert sorted(everything) == [i for i in ids if i not in already]  # each once, none left


def test_readers_who_left_are_skipped_not_sent(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 6)
    with session_scope(sample_engine) as session:
        owner = dict(session.execute(select(Delivery.id, Delivery.subscriber_id)).all())
        session.get(Subscriber, owner[ids[1]]).status = "unsubscribed"
        session.add(Suppression(email=session.get(Subscriber, owner[ids[3]]).email, reason="complaint"))
    with session_scope(sample_engine) as session:
        before = tallies.read(session, [issue_id])[issue_id].get("skipped", 0)
        rows, skipped = claim_rows(session, issue_id, utcnow(), 6, LEASE, "w", None, None)
    assert (_ids(rows), skipped) == ([ids[0], ids[2], ids[4], ids[5]], 2)
    for gone in (ids[1], ids[3]):
        row = _state(sample_engine, gone)
        assert (row.state, row.last_error, row.lease_until) == ("skipped", GONE_REASON, None)
    with session_scope(sample_engine) as session:
        assert tallies.read(session, [issue_id])[issue_id].get("skipped", 0) == before + 2


def test_the_floor_keeps_a_retry_and_an_expired_lease_within_reach(sample_engine, settings):
    """The floor is the lowest id not final and not kept beside the walk: a row held by a worker
    that stopped keeps it down, a retry due later does not (retry_side.py keeps it); the rescan
    finds both once they are due, though the claims between rescans start far above them. Once
    they are done it moves up."""
    issue_id, ids = _enqueue(sample_engine, settings, 20)
    now = utcnow()
    cursor = ClaimCursor(issue_id, "w")
    with session_scope(sample_engine) as session:
        first, _ = cursor.claim(session, now, 10, LEASE, None)
        assert _ids(first) == ids[:10]
        outbox.record(session, now, [(i, f"<{i}@x>", None) for i in ids[:10] if i not in (ids[1], ids[3])],
                      [(ids[1], now + timedelta(seconds=90), "451 later")], [])  # ids[3]: its worker stopped
    cursor.rescan_at = 0.0
    with session_scope(sample_engine) as session:
        second, _ = cursor.claim(session, now + timedelta(seconds=1), 5, LEASE, None)
        outbox.record(session, now, [(i, f"<{i}@x>", None) for i in ids[10:15]], [], [])
    assert _ids(second) == ids[10:15] and cursor.floor == ids[3]
    later = now + timedelta(minutes=10)  # the retry is due, the stopped worker's lease has run out
    cursor.hint, cursor.rescan_at = ids[10], math.inf
    with session_scope(sample_engine) as session:
        third, _ = cursor.claim(session, later, 3, LEASE, None)
    assert _ids(third) == ids[15:18]  # from the hint: the two below wait for the rescan
    cursor.rescan_at = 0.0
    with session_scope(sample_engine) as session:
        fourth, _ = cursor.claim(session, later, 5, LEASE, None)
        assert _ids(fourth) == [ids[1], ids[3], ids[18], ids[19]]
        outbox.record(session, later, [(i, f"<{i}@x>", None) for i in ids[1:19]], [], [])
    cursor.rescan_at = 0.0
    with session_scope(sample_engine) as session:
        assert cursor.claim(session, later, 5, LEASE, None) == ([], 0)
    assert cursor.floor == ids[19]  # the only row not final: sending, under its lease


def _filtered_rows(node: dict) -> int:
    return node.get("Rows Removed by Filter", 0) + sum(_filtered_rows(child) for child in node.get("Plans", []))


def test_a_late_claim_reads_the_pending_rows_from_its_start(sample_engine, settings):
    """Most of the send done: the claim, as the cursor runs it, walks the partial index of pending
    rows from where it starts and reads about the rows it takes (PostgreSQL: the one statement;
    SQLite: the portable claim)."""
    issue_id, ids = _enqueue(sample_engine, settings, 3000)
    with sample_engine.begin() as connection:
        connection.execute(text("UPDATE delivery SET state = 'sent' WHERE id < :id"), {"id": ids[2900]})
        connection.execute(text("ANALYZE delivery"))
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        upper = statement.lstrip().upper()
        if "LIMIT" in upper and upper.startswith(("UPDATE DELIVERY", "WITH CLAIMED")):
            seen.append((statement, parameters))

    cursor = ClaimCursor(issue_id, "w", floor=ids[2900], rescan_at=math.inf)
    event.listen(sample_engine, "before_cursor_execute", capture)
    try:
        with session_scope(sample_engine) as session:
            rows, _ = cursor.claim(session, utcnow(), 50, LEASE, None)
    finally:
        event.remove(sample_engine, "before_cursor_execute", capture)
    assert _ids(rows) == ids[2900:2950] and len(seen) == 1, seen
    statement, parameters = seen[0]
    with sample_engine.connect() as connection:
        if sample_engine.dialect.name == "sqlite":
            plan = " | ".join(row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                                          parameters))
            assert _from_the_floor(plan), plan
            return
        with connection.begin():
            (document,) = connection.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement,
                                                     parameters).scalar_one()
            connection.rollback()
    assert _from_the_floor(json.dumps(document)), document
    assert _filtered_rows(document["Plan"]) <= 50, document



def test_the_webhook_lookup_by_provider_id_uses_its_partial_index(sample_engine, settings):
    """Migration 0030 keeps only the rows that have a provider's id in its index; the lookup of
    feedback/rules.py (`provider_message_id = :id`) still finds them through it, with the value
    bound as a parameter (PostgreSQL: the generic plan a prepared statement gets)."""
    _enqueue(sample_engine, settings, 50)
    with sample_engine.begin() as connection:
        connection.execute(text("UPDATE delivery SET provider_message_id = 'p-' || id WHERE id % 2 = 0"))
        connection.execute(text("ANALYZE delivery"))
        if sample_engine.dialect.name == "sqlite":
            plan = " | ".join(row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM delivery WHERE provider_message_id = ? LIMIT 1", ("p-2",)))
        else:
            connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")  # 50 rows: a scan would win otherwise
            connection.exec_driver_sql("PREPARE lookup(text) AS "
                                       "SELECT id FROM delivery WHERE provider_message_id = $1 LIMIT 1")
            plan = "\n".join(connection.exec_driver_sql("EXPLAIN EXECUTE lookup('p-2')").scalars())
            connection.exec_driver_sql("DEALLOCATE lookup")
    assert "ix_delivery_provider_message_id" in plan, plan
    with sample_engine.connect() as connection:  # and it is partial
        if sample_engine.dialect.name == "sqlite":
            sql = connection.execute(text("SELECT sql FROM sqlite_master WHERE name = "
                                          "'ix_delivery_provider_message_id'")).scalar_one()
        else:
            sql = connection.execute(text("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                                          "AND indexname = 'ix_delivery_provider_message_id'")).scalar_one()
    assert "IS NOT NULL" in sql, sql
