"""A send updates its `delivery` rows in place (HOT) on PostgreSQL: no index entry per claim or result.

Each message moves its row twice (claimed, then recorded). When an index named `state` (in its
columns or a partial index's WHERE), PostgreSQL wrote every new version into every index of the
table: ~9 index writes per message, a third of its CPU per message at a million readers. Migration
0032 dropped those indexes and gave the table room on each page (fillfactor); these tests hold both
halves: no index names a column a send changes (both databases), and after a real send every
update of a row was HOT (PostgreSQL's own count, pg_stat_user_tables).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from sqlalchemy import text

from newsletter.delivery.sender import deliver
from newsletter.delivery.transports.base import Outcome, SendResult
from newsletter.mail.message import OutgoingMessage
from tests.conftest import TEST_SECRET
from tests.delivery.test_claims import _enqueue

# What a claim (outbox/claim_batch) and a recorded result (outbox.record) write.
CHANGED = ("state", "lease_until", "attempts", "claimed_by", "next_attempt_at", "message_id", "sent_at",
           "last_error")
READERS = 600


class AcceptAll:
    """Accepts every message at once (no provider id: an SMTP server's answer)."""

    name = "test"
    needs_bytes = False

    def send(self, messages: Sequence[OutgoingMessage]) -> list[SendResult]:
        return [SendResult(Outcome.sent) for _message in messages]

    def close(self) -> None:
        pass


def _index_sql(engine) -> dict[str, str]:
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            return dict(connection.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'delivery' "
                "AND sql IS NOT NULL")).all())
        return dict(connection.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'delivery'")).all())


def test_no_index_of_delivery_names_a_column_a_send_changes(engine):
    found = _index_sql(engine)
    assert "ix_delivery_issue_id" in found, found
    for name, sql in found.items():
        named = set(re.findall(r"[a-z_]+", sql.split(" ON ", 1)[1].split("(", 1)[1]))
        assert not named & set(CHANGED), (name, sql)


def _updates(engine, expected: int) -> tuple[int, int]:
    """(updates, HOT updates) of `delivery` once the send's backends reported them: a backend
    reports its counts when its session ends (the pool is closed first), seen within a second."""
    engine.dispose()
    deadline = time.monotonic() + 15
    while True:
        with engine.connect() as connection:
            updated, hot = connection.execute(text(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relid = 'delivery'::regclass")).one()
        if updated >= expected or time.monotonic() > deadline:
            return updated, hot
        time.sleep(0.2)


def test_a_real_send_updates_every_row_in_place(sample_engine, settings):
    if sample_engine.dialect.name != "postgresql":
        return  # SQLite rewrites a row in its B-tree page either way: no HOT to speak of
    issue_id, _ids = _enqueue(sample_engine, settings, READERS)
    report = deliver(sample_engine, settings, AcceptAll(), TEST_SECRET, issue_id)
    assert report.finished and report.sent == READERS
    updated, hot = _updates(sample_engine, 2 * READERS)
    assert updated >= 2 * READERS  # a claim and a result per row
    assert hot >= 0.98 * updated, (updated, hot)
