"""The readers-joined-and-left tally (migration 0031's triggers) equals a count over the consent
events after every kind of write: signups, confirmations, unsubscribes (link and editor), row and
bulk imports (COPY on PostgreSQL), an import's own opt-in dates, a forgotten reader (cascade
delete), a rolled-back transaction and an event moved by an UPDATE, on SQLite and PostgreSQL.
The comparison is per 15-minute slot, so a count in the wrong slot fails as well as a lost one;
and growth(), which reads the tally, gives the weeks count_events counts the slow way."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text, update

from newsletter.audience_tally import JOINED, LEFT, SLOT_SECONDS, AudienceTally
from newsletter.db import session_scope, utcnow
from newsletter.reports.audience import count_events, growth
from newsletter.subscribers.importing import import_csv
from newsletter.subscribers.models import ConsentEvent, Subscriber, TransactionalMail
from newsletter.subscribers.forgotten import forget
from newsletter.subscribers.service import UpsertResult, upsert_active
from newsletter.subscribers.signup import confirm, new_confirmation_token, request_signup, unsubscribe
from newsletter.weeks import current_week, week_bounds
from tests.conftest import TEST_SECRET

CATEGORIES = ["Developer Tools"]


def tallied(engine) -> Counter:
    """{(slot, side): n} from the tally, shards summed, zero rows left out."""
    table = AudienceTally.__table__
    with session_scope(engine) as session:
        rows = session.execute(select(table.c.slot, table.c.side, func.sum(table.c.n))
                               .group_by(table.c.slot, table.c.side)).all()
    return Counter({(slot, side): int(n) for slot, side, n in rows if n})


def counted(engine) -> Counter:
    """The same, counted over the consent events in Python: the definition."""
    with session_scope(engine) as session:
        events = session.execute(select(ConsentEvent.kind, ConsentEvent.created_at)
                                 .where(ConsentEvent.kind.in_(JOINED + LEFT))).all()
    return Counter((int(at.timestamp()) // SLOT_SECONDS, "left" if kind in LEFT else "joined")
                   for kind, at in events)


def signup_and_confirm(engine, settings, email: str, now: datetime) -> int:
    with session_scope(engine) as session:
        request_signup(session, settings.web, email, "", [], now)
        token, digest = new_confirmation_token(TEST_SECRET)
        row = session.execute(select(TransactionalMail).where(TransactionalMail.to_email == email)).scalar_one()
        row.token_hash, row.expires_at = digest, now + timedelta(hours=1)
    with session_scope(engine) as session:
        return confirm(session, TEST_SECRET, token, now).id


def test_the_tally_equals_a_count_over_the_events(engine, settings):
    now = utcnow()
    readers = [signup_and_confirm(engine, settings, f"r{n}@example.com", now) for n in range(3)]
    with session_scope(engine) as session:
        request_signup(session, settings.web, "pending@example.com", "", [], now)  # not a join
        unsubscribe(session, readers[0], "link", now, goodbye=False)
        unsubscribe(session, readers[0], "link", now, goodbye=False)  # a second one changes nothing
        upsert_active(session, "added@example.com", "", [], "editor", UpsertResult())
    assert tallied(engine) == counted(engine) and sum(tallied(engine).values()) == 5
    csv = ("email,name,topics,status,confirmed_at,unsubscribed_at\n"
           "old.optin@example.com,,,,2021-03-02T10:00:00+02:00,\n"
           "left.before@example.com,,,unsubscribed,2020-01-01,2024-05-01\n"
           + "".join(f"bulk{n}@example.com,,Developer Tools,,,\n" for n in range(40)))
    import_csv(engine, csv, categories=CATEGORIES)  # bulk: COPY and set-based writes on PostgreSQL
    import_csv(engine, "email,name\nrow1@example.com,\nr1@example.com,Again\n", categories=CATEGORIES, bulk=False)
    assert tallied(engine) == counted(engine)
    forget(engine, "r1@example.com")  # its events go by ON DELETE CASCADE
    forget(engine, "bulk7@example.com")
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        unsubscribe(session, readers[2], "link", now, goodbye=False)
        raise RuntimeError("rolled back: its count goes too")
    with session_scope(engine) as session:  # an event moved a week back, another changed kind
        session.execute(update(ConsentEvent).where(ConsentEvent.subscriber_id == readers[2],
                                                   ConsentEvent.kind == "confirmed")
                        .values(created_at=now - timedelta(days=7)))
        session.execute(update(ConsentEvent).where(ConsentEvent.subscriber_id == readers[0],
                                                   ConsentEvent.kind == "unsubscribed").values(kind="note"))
    expected = counted(engine)
    assert tallied(engine) == expected
    assert sum(n for (_slot, side), n in expected.items() if side == "joined") > 40
    assert sum(n for (_slot, side), n in expected.items() if side == "left") >= 1
    assert len({slot for slot, _side in expected}) >= 3  # now, a week ago, the imported opt-in of 2021


def test_growth_reads_the_tally_and_agrees_with_the_events(engine, settings):
    zone = settings.site.zone
    start, _end = week_bounds(current_week(zone), zone)
    now = start + timedelta(days=2)
    with session_scope(engine) as session:
        reader = Subscriber(email="r@example.com", status="active")
        session.add(reader)
        session.flush()
        moments = [start - timedelta(microseconds=1), start, start + timedelta(minutes=14, seconds=59),
                   start - timedelta(days=20), now - timedelta(minutes=1)]
        session.add_all(ConsentEvent(subscriber_id=reader.id, kind=kind, source="import", created_at=at)
                        for at in moments for kind in ("confirmed", "unsubscribed", "signup_requested"))
    weeks = growth(engine, zone, now)
    bounds = [(week.start, week.start + timedelta(days=7)) for week in weeks]
    with session_scope(engine) as session:
        slow = count_events(session, bounds)
    assert [(w.joined, w.left) for w in weeks] == [(slow.get((n, "joined"), 0), slow.get((n, "left"), 0))
                                                   for n in range(len(weeks))]
    assert (weeks[-1].joined, weeks[-2].joined, weeks[-4].joined) == (3, 1, 1)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_concurrent_writers_use_their_own_shards(engine):
    """Two backends counting the same slot at once write two rows: neither waits for the other's
    row lock (the second INSERT would wait until the first commits if they shared a shard)."""
    with session_scope(engine) as session:
        reader = Subscriber(email="r@example.com", status="active")
        session.add(reader)
        session.flush()
        reader_id = reader.id
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    connections = [engine.connect() for _ in range(17)]  # two of them are on different shards
    try:
        shard = {c: c.execute(text("SELECT mod(pg_backend_pid(), 16)")).scalar_one() for c in connections}
        first = connections[0]
        second = next(c for c in connections if shard[c] != shard[first])
        for connection in (first, second):
            connection.execute(text("SET lock_timeout = '10s'"))  # a wait fails the test, never hangs it
            connection.execute(text("INSERT INTO consent_event (subscriber_id, kind, source, detail, created_at) "
                                    "VALUES (:s, 'confirmed', 'link', '', :at)"), {"s": reader_id, "at": at})
        first.commit()
        second.commit()
    finally:
        for connection in connections:
            connection.close()
    with session_scope(engine) as session:
        shards = session.execute(select(AudienceTally.shard).where(
            AudienceTally.slot == int(at.timestamp()) // SLOT_SECONDS)).scalars().all()
    assert sorted(shards) == sorted({shard[first], shard[second]})
    assert tallied(engine) == counted(engine)
