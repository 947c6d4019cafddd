"""Claims: near the end of a big send a claim reads about the rows it takes, not every row
already sent; a claim from a hint still finds what came due below it.

Without the partial index of pending deliveries the claim walked the primary key past every sent
row (~0.5 s per claim at 700,000 sent on PostgreSQL: a million-subscriber send slowed as it went).
The claim statement is captured as the worker runs it and explained by the database itself.
"""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import event, insert, select, text

from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.models import Delivery
from newsletter.delivery.sender import start_send
from newsletter.issues.drafting import draft_issue
from subscribers.models import Subscriber

READERS, SENT, TAKE = 4000, 3800, 50


def _captured_claim(engine, issue_id: int) -> tuple[str, object]:
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("UPDATE DELIVERY") and "LIMIT" in statement.upper():
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        with session_scope(engine) as session:
            taken = outbox.claim(session, issue_id, utcnow(), TAKE, timedelta(minutes=5), "test-worker")
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(taken) == TAKE
    assert len(seen) == 1, seen
    return seen[0]


def _filtered_rows(node: dict) -> int:
    """Rows a plan node (and its children) read and threw away."""
    return node.get("Rows Removed by Filter", 0) + sum(_filtered_rows(child) for child in node.get("Plans", []))


def test_a_late_claim_uses_the_index_of_pending_rows(sample_engine, settings):
    with session_scope(sample_engine) as session:
        session.execute(insert(Subscriber), [
            {"email": f"r{n}@example.com", "name": "", "status": "active", "created_at": utcnow()}
            for n in range(READERS)])
    issue_id = draft_issue(sample_engine, settings, "2026-W48").issue.id
    assert start_send(sample_engine, issue_id).enqueued == READERS
    with sample_engine.begin() as connection:  # most of the send is done: the lowest ids are sent
        connection.execute(text(
            "UPDATE delivery SET state = 'sent' WHERE issue_id = :issue AND id < "
            "(SELECT min(id) FROM delivery WHERE issue_id = :issue) + :sent"), {"issue": issue_id, "sent": SENT})
        connection.execute(text("ANALYZE"))
    statement, parameters = _captured_claim(sample_engine, issue_id)
    with sample_engine.connect() as connection:
        if sample_engine.dialect.name == "sqlite":
            plan = " | ".join(row[-1] for row in connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + statement, parameters))
            assert "ix_delivery_due" in plan, plan
        else:
            with connection.begin():
                (document,) = connection.exec_driver_sql(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters).scalar_one()
                connection.rollback()
            plan = json.dumps(document)
            assert "ix_delivery_due" in plan, plan
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


def test_a_hinted_claim_skips_below_the_hint_until_the_queue_runs_short(sample_engine, settings):
    issue_id, ids = _enqueue(sample_engine, settings, 20)
    lease = timedelta(minutes=5)
    now = utcnow()
    with session_scope(sample_engine) as session:
        first = outbox.claim_from(session, issue_id, now, 5, lease, "w", None)
    assert first == ids[:5]
    with session_scope(sample_engine) as session:  # the first batch: all sent but one, due again now
        outbox.mark_sent(session, now, [(i, f"<{i}@x>", None) for i in first if i != ids[1]])
        outbox.mark_retry(session, [(ids[1], now, "451 try later")])
    later = now + timedelta(seconds=1)
    with session_scope(sample_engine) as session:  # from the hint: the retry below it waits
        second = outbox.claim_from(session, issue_id, later, 5, lease, "w", ids[5])
    assert second == ids[5:10]
    with session_scope(sample_engine) as session:  # 10 queued above the hint, 20 asked: the rest from the start
        third = outbox.claim_from(session, issue_id, later, 20, lease, "w", ids[5])
    assert third == sorted([ids[1], *ids[10:]])
    with session_scope(sample_engine) as session:  # nothing is due any more, hinted or not
        assert outbox.claim_from(session, issue_id, later, 20, lease, "w", ids[0]) == []
        assert outbox.claim(session, issue_id, later, 20, lease, "w") == []
