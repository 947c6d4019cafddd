"""The two set-based paths of the bulk import, on SQLite and PostgreSQL:
- a large first import takes the tables (bulk_load.py): the indexes and foreign keys it drops come
  back with the same names and definitions, so the schema after the import is the migrated one;
- known readers are handled set-based (bulk_known.py) with every rule of the row path: an
  unsubscribed reader stays unsubscribed, suppressed and forgotten addresses are not imported,
  consent events are written for real changes only, bad rows are named by line.
Both are compared with the row-by-row path (importing.apply_row) from the same seeded store."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from newsletter import engine as engine_module
from newsletter.db import make_engine, session_scope, utcnow
from newsletter.engine import long_transaction
from newsletter.subscribers import bulk_import
from newsletter.subscribers.import_fast import judged_rows_fast
from newsletter.subscribers.bulk_load import give_back, should_take, take
from newsletter.subscribers.importing import import_csv
from tests.db_templates import migrate_fresh
from tests.subscribers.test_bulk_import import CATEGORIES, TRICKY, _seed, _state, _wipe

_PG_SCHEMA = ("SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
              "UNION ALL SELECT 'constraint', k.conname, c.relname || ': ' || pg_get_constraintdef(k.oid) "
              "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
              "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() ORDER BY 1, 2")
_SQLITE_SCHEMA = "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY 1, 2"


def _schema(engine) -> list[tuple[str, str, str]]:
    """Every index and constraint by name and definition (PostgreSQL), every object's DDL (SQLite)."""
    with engine.connect() as connection:
        query = _PG_SCHEMA if connection.dialect.name == "postgresql" else _SQLITE_SCHEMA
        return [tuple(row) for row in connection.execute(text(query))]


def test_taking_the_tables_drops_secondary_indexes_and_gives_them_back(engine):
    migrated = _schema(engine)
    with session_scope(engine) as session:
        connection = session.connection()
        assert should_take(connection, 10, take_at=5) and not should_take(connection, 4, take_at=5)
        taken = take(connection)
        names = {name for name, _ in taken.indexes}
        assert {"ix_subscriber_status", "ix_consent_event_subscriber_id", "ix_consent_event_kind_created"} <= names
        if connection.dialect.name == "postgresql":
            assert {name for name, _, _ in taken.keys} == {"fk_consent_event_subscriber_id_subscriber",
                                                           "fk_subscriber_topic_subscriber_id_subscriber"}
            assert {"ix_subscriber_email_c", "ix_subscriber_name_c"} <= names
        gone = {row[1] for row in migrated} - {row[1] for row in _schema_in(connection)}
        assert names <= gone  # really dropped, in this transaction
        give_back(connection, taken)
        assert _schema_in(connection) == migrated
    assert _schema(engine) == migrated


def _schema_in(connection) -> list[tuple[str, str, str]]:
    query = _PG_SCHEMA if connection.dialect.name == "postgresql" else _SQLITE_SCHEMA
    return [tuple(row) for row in connection.execute(text(query))]


def test_an_import_that_takes_the_tables_leaves_the_migrated_schema_and_the_row_paths_store(engine):
    migrated = _schema(engine)
    _wipe(engine)
    since = utcnow()
    _seed(engine)
    row_report = import_csv(engine, TRICKY, categories=CATEGORIES, skip_bad_rows=True, bulk=False)
    row_state = _state(engine, since)
    _wipe(engine)
    since = utcnow()
    _seed(engine)
    report = import_csv(engine, TRICKY, categories=CATEGORIES, skip_bad_rows=True, take_at=1)
    assert _state(engine, since) == row_state
    assert (report.created, report.updated, sorted(report.skipped), report.bad_rows) == \
        (row_report.created, row_report.updated, sorted(row_report.skipped), row_report.bad_rows)
    assert _schema(engine) == migrated


SEED = """email,name,topics,status
same@example.com,Same,Developer Tools,
renamed@example.com,Old Name,Developer Tools,
retopic@example.com,Retopic,Developer Tools,
left@example.com,Left,,unsubscribed
leaving@example.com,Leaving,Design & Media,
pending.gone@example.com,Gone,,
"""
AGAIN = """email,name,topics,status,unsubscribed_at
same@example.com,,Developer Tools,,
renamed@example.com,New Name,Developer Tools,,
retopic@example.com,Retopic,Design & Media;Developer Tools,,
left@example.com,Left,,active,
leaving@example.com,Leaving,,unsubscribed,2025-06-01
pending.gone@example.com,Gone,,,
blocked@example.com,Blocked,,,
bad address,,,,
brand.new@example.com,New,,,
"""


def _reimport(engine, bulk: bool, take_at: int | None = None):
    from newsletter.subscribers.forgotten import forget
    from newsletter.subscribers.service import suppress

    _wipe(engine)
    since = utcnow()
    import_csv(engine, SEED, categories=CATEGORIES, bulk=False)
    forget(engine, "pending.gone@example.com")
    with session_scope(engine) as session:
        suppress(session, "blocked@example.com", "hard_bounce", "editor", "seeded")
    extra = {} if take_at is None else {"take_at": take_at}
    return import_csv(engine, AGAIN, categories=CATEGORIES, skip_bad_rows=True, bulk=bulk, **extra), \
        _state(engine, since)


def test_known_readers_set_based_keep_every_rule_of_the_row_path(engine):
    row_report, row_state = _reimport(engine, bulk=False)
    report, state = _reimport(engine, bulk=True)
    assert state == row_state
    assert (report.created, report.updated, report.unchanged, sorted(report.skipped), report.bad_rows) == \
        (row_report.created, row_report.updated, row_report.unchanged, sorted(row_report.skipped), row_report.bad_rows)
    readers, events = state["readers"], state["events"]
    assert (report.created, report.updated, report.unchanged) == (1, 3, 1)
    assert report.bad_rows == ["line 9: email: An email address must have an @-sign."]
    assert readers["left@example.com"][1] == "unsubscribed"  # never re-activated
    assert readers["leaving@example.com"][1] == "unsubscribed"
    assert readers["renamed@example.com"][0] == "New Name"
    assert ("retopic@example.com", "Design & Media") in state["topics"]
    assert "pending.gone@example.com" not in readers and "blocked@example.com" not in readers
    assert sorted(report.skipped) == ["blocked@example.com: suppressed", "left@example.com: unsubscribed here; "
                                      "an import never re-subscribes anyone", "pending.gone@example.com: suppressed"]
    subscribed = {email: count for (email, kind, *_), count in events.items() if kind == "subscribed"}
    assert subscribed["same@example.com"] == 1  # unchanged: no second "subscribed" event
    # Renamed or given new topics: a change of an active reader, not a second join (the console's
    # "joined" counts "subscribed" events).
    assert subscribed["renamed@example.com"] == 1 and subscribed["retopic@example.com"] == 1
    changed = {email for (email, kind, *_), _count in events.items() if kind == "preferences_changed"}
    assert {"renamed@example.com", "retopic@example.com"} <= changed
    assert any(email == "leaving@example.com" and kind == "unsubscribed" and detail == "imported as unsubscribed"
               for email, kind, _source, detail, *_ in events)


def test_known_readers_found_in_memory_while_the_tables_are_taken_keep_the_row_paths_rules(engine):
    """A large import into a small store takes the tables, and on PostgreSQL reads the store's
    readers and suppressions once (bulk_import.Held) instead of joining each chunk's stage, and
    reserves ids with one setval: the same verdicts, writes and report as the row path, known,
    unsubscribed, suppressed and forgotten addresses included."""
    row_report, row_state = _reimport(engine, bulk=False)
    report, state = _reimport(engine, bulk=True, take_at=1)
    assert state == row_state
    assert (report.created, report.updated, report.unchanged, sorted(report.skipped), report.bad_rows) == \
        (row_report.created, row_report.updated, row_report.unchanged, sorted(row_report.skipped), row_report.bad_rows)
    with session_scope(engine) as session:  # the sequence goes on after the reserved block
        connection = session.connection()
        connection.execute(text("INSERT INTO subscriber (email, name, status, created_at, token_key) VALUES "
                                "('after@example.com', '', 'active', CURRENT_TIMESTAMP, 'k')"))
        newest = connection.execute(text("SELECT email FROM subscriber ORDER BY id DESC LIMIT 1")).scalar_one()
        assert newest == "after@example.com"


def test_copy_text_format_keeps_every_character(engine):
    """bulk_copy: backslashes, tabs, line breaks, a literal \\N and None survive the trip (COPY's
    text format on PostgreSQL, executemany on SQLite) exactly."""
    from newsletter.subscribers.bulk_copy import insert_rows

    values = [(1, "back\\slash", "tab\there"), (2, "line\nbreak\r", "\\N"), (3, None, "plain, \"quoted\"")]
    with session_scope(engine) as session:
        connection = session.connection()
        connection.execute(text("CREATE TEMPORARY TABLE copy_check (id integer, a text, b text)"))
        insert_rows(connection, "copy_check", ("id", "a", "b"), values)
        assert [tuple(row) for row in connection.execute(text("SELECT id, a, b FROM copy_check ORDER BY id"))] == values


def test_dates_are_stored_as_the_orm_stores_them(engine):
    """On SQLite a date is text: the bulk path must write exactly the ORM's form, or comparisons in
    SQL (a window of days, an ORDER BY) would go wrong between the two."""
    from datetime import UTC, datetime, timedelta, timezone

    from sqlalchemy import Column, Integer, MetaData, Table, insert
    from sqlmodel.sql.sqltypes import UTCDateTime

    from newsletter.subscribers.bulk_copy import insert_rows

    table = Table("date_check", MetaData(), Column("id", Integer), Column("at", UTCDateTime()), prefixes=["TEMPORARY"])
    moment = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    with session_scope(engine) as session:
        connection = session.connection()
        table.create(connection)
        insert_rows(connection, "date_check", ("id", "at"), [(1, moment)])
        connection.execute(insert(table), [{"id": 2, "at": moment}])
        stored = connection.execute(text("SELECT CAST(at AS TEXT) FROM date_check ORDER BY id")).scalars().all()
        assert stored[0] == stored[1]
        assert connection.execute(table.select().order_by(table.c.id)).all()[0].at == moment.astimezone(UTC)


def test_a_refused_import_that_took_the_tables_gives_them_back(engine):
    """Nothing of a refused file is written, and the indexes and keys it dropped are back: the drop
    is part of the import's transaction (on SQLite too, where the driver would not open one for DDL)."""
    import pytest

    from newsletter.subscribers.service import InvalidInput

    migrated = _schema(engine)
    with pytest.raises(InvalidInput, match="line 3"):
        import_csv(engine, TRICKY, categories=CATEGORIES, take_at=1)
    assert _schema(engine) == migrated
    with session_scope(engine) as session:
        assert session.connection().execute(text("SELECT count(*) FROM subscriber")).scalar_one() == 0


@pytest.mark.postgres
def test_an_import_waiting_on_its_file_outlives_the_sessions_idle_limit(pg_url, monkeypatch):
    """Every session ends a transaction left idle for a while (engine.py: a worker host cut before
    its COMMIT must not hold its rows' locks for hours). The import is one transaction for the
    whole file, idle on the server while the next chunk is read and judged: it has a longer limit
    of its own, and a file slower than the sessions' limit still imports whole."""
    migrating = make_engine(pg_url)
    migrate_fresh(migrating)
    migrating.dispose()
    monkeypatch.setattr(bulk_import, "CHUNK", 2)
    data = "email,name\n" + "".join(f"slow{n}@example.com,Slow {n}\n" for n in range(6))

    def slowly(records):
        for number, record in enumerate(records):
            if number == 4:  # the third chunk: the import's transaction is open by then
                time.sleep(2.5)  # a slow upload, a slow disk: the transaction waits on the server
            yield record

    with monkeypatch.context() as patched:  # the import's connection opens with a 1 s limit
        patched.setattr(engine_module, "IDLE_IN_TRANSACTION", "1s")
        engine = make_engine(pg_url)
        report = bulk_import.import_judged(engine, slowly(judged_rows_fast(data, "active", {})), "import",
                                           skip_bad_rows=False)
    assert report.created == 6
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM subscriber WHERE email LIKE 'slow%'")).scalar_one() == 6
    engine.dispose()


@pytest.mark.postgres
def test_the_imports_longer_limit_replaces_ours_but_not_an_operators(pg_url):
    own = pg_url.replace("options=", "options=-cidle_in_transaction_session_timeout%3D0%20")
    for url, expected in ((pg_url, "10min"), (own, "0")):
        engine = make_engine(url)
        with engine.begin() as connection:
            long_transaction(connection, "10min")
            assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() == expected, url
        with engine.connect() as connection:  # for that transaction only
            assert connection.execute(text("SHOW idle_in_transaction_session_timeout")).scalar_one() in ("1min", "0")
        engine.dispose()
