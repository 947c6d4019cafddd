"""Imports at database speed: every row of a chunk written set-based, in one transaction.

An import of a platform's list is mostly addresses this publication has never seen. For those
the row-by-row rules (importing.apply_row) come down to plain inserts: an active reader with
their topics and a "subscribed" consent event (plus the platform's opt-in evidence), an
unsubscribed reader with the history of their leaving, or a suppression for a bounce or a
complaint. So each chunk of judged rows has its addresses staged in a temporary table (text COPY
on PostgreSQL, executemany on SQLite: bulk_copy.py), and one query per kind finds every staged
row whose address the store already knows in any form: a reader, a suppression of the address
or of its hash (a forgotten reader). The rows left are new: on PostgreSQL their ids are taken
from the sequence at once and the readers, topics and events go in by COPY; on SQLite by
executemany, the ids read back by address. The known rows are returned with what the store holds
for them: `newsletter subscribers import` applies them set-based (bulk_known.py), the mapped
import (import_plan.run_chunk) judges them row by row. A large first import takes the tables
(bulk_load.py). Validation stays the row path's (import_fast.py for the CLI's files, with the
same verdicts; mapping.map_row and importing.judge for the mapped import).
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from newsletter.db import session_scope, utcnow
from newsletter.engine import long_transaction
from newsletter.subscribers.bulk_copy import NULL, Stamps, copy_lines, escape, insert_rows
from newsletter.subscribers.bulk_known import Existing, apply_known
from newsletter.subscribers.bulk_load import TAKE_AT, Taken, give_back, should_take, take
from newsletter.subscribers.consent import clean_ip, known_source
from newsletter.subscribers.prefetch import chunks_ahead
from newsletter.subscribers.importing import SUPPRESS_REASON, ImportReport, Row, evidence_events, rejection
from newsletter.subscribers.service import hashed_email

log = logging.getLogger(__name__)
IMPORT_IDLE = "10min"  # the longest the import's transaction may wait on its file between two chunks
CHUNK = 50_000  # rows staged and merged at a time: memory stays bounded, statements stay large
ANALYZE_AFTER = 10_000  # new readers after which an import refreshes the planner's statistics (PostgreSQL)

_meta = MetaData()
STAGE = Table("import_stage", _meta, Column("line", Integer, primary_key=True, autoincrement=False),
              Column("email", String(254)), Column("hash", String(71)), prefixes=["TEMPORARY"])


@dataclass
class Merged:
    """What one chunk did: readers added, addresses suppressed (email, status), and the rows the
    store already knew, in file order, with what it holds for them: the reader by line, and the
    lines whose address (or its hash: a forgotten reader) is suppressed."""

    added: int = 0
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    known: list[Row] = field(default_factory=list)
    readers: dict[int, Existing] = field(default_factory=dict)
    suppressed_lines: set[int] = field(default_factory=set)


def token_keys(count: int) -> list[str]:
    """`count` values of models.new_token_key from one read of the system's random source."""
    pool = os.urandom(8 * count).hex()
    return [pool[start:start + 16] for start in range(0, 16 * count, 16)]


def _reader_values(row: Row, now: datetime) -> tuple[datetime, datetime | None, datetime | None,
                                                      list[tuple[str, str, datetime, str | None]]]:
    """The dates apply_row would write for a new address (created, confirmed, unsubscribed) and its
    consent events in order (kind, detail, when, ip): importing.upsert_active, importing._unsubscribed."""
    dates, evidence = row.dates, row.evidence
    detail = f"as recorded by {evidence.platform}" if evidence is not None else ""
    if row.status == "unsubscribed":
        when = dates["unsubscribed_at"] or now
        created, confirmed, left = dates["created_at"] or when, dates["confirmed_at"], when
        events = [(kind, detail, at or now, clean_ip(ip) or None)
                  for kind, at, ip in evidence_events(evidence, created, confirmed)]
        events.append(("unsubscribed", "imported as unsubscribed", when, None))
        return created, confirmed, left, events
    created, confirmed = dates["created_at"] or now, dates["confirmed_at"] or now
    if evidence is None:
        return created, confirmed, None, [("subscribed", "", now, None)]
    events = [("subscribed", "", now, None)] + [(kind, detail, at or now, clean_ip(ip) or None)
                                                for kind, at, ip in evidence_events(evidence, created, confirmed)]
    return created, confirmed, None, events


def _stage_tables(session: Session) -> None:
    """An empty stage for this connection (dropped first: a pooled connection may hold the
    previous chunk's)."""
    connection = session.connection()
    schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
    connection.execute(text(f"DROP TABLE IF EXISTS {schema}.{STAGE.name}"))
    STAGE.create(connection)


# What the store knows of the staged addresses: the readers (by line), and the lines whose
# address or its hash (a forgotten reader) is suppressed. Separate statements, not one with ORed
# EXISTS: each alone is a join the planner can hash.
_READERS_KNOWN = text("SELECT st.line, s.id, s.status, s.name, s.confirmed_at IS NOT NULL AND s.unsubscribed_at IS NULL "
                      "FROM import_stage st "
                      "JOIN subscriber s ON s.email = st.email")
_SUPPRESSED_KNOWN = tuple(text(f"SELECT st.line FROM import_stage st JOIN suppression p ON p.email = st.{column}")
                          for column in ("email", "hash"))


def _known(session: Session) -> tuple[dict[int, Existing], set[int]]:
    connection = session.connection()
    readers = {line: Existing(*values) for line, *values in connection.execute(_READERS_KNOWN)}
    suppressed = {line for statement in _SUPPRESSED_KNOWN for (line,) in connection.execute(statement)}
    return readers, suppressed


@dataclass
class Held:
    """What the store held when a large import took the tables on PostgreSQL (bulk_load): every
    reader by address and every suppressed address or hash, read once.

    Why: while the import holds the tables nobody else can add a reader or a suppression, and
    the file's addresses are unique (importing.judge), so no row can meet a reader this import
    added. Each chunk's known rows are then found in memory, instead of COPYing every address of
    the chunk into a stage, analysing it and joining it with a subscriber table that grows to a
    million rows: that was a fifth of a million-row import's time. Only the known rows are
    staged (bulk_known reads their topics through the stage). And the ids: nothing else can take
    one from the sequence either, so a chunk's are reserved with one setval instead of a
    nextval per reader."""

    readers: dict[str, Existing]
    suppressed: set[str]
    forgotten: bool  # some suppression is a forgotten reader's hash: rows' hashes must be checked

    def known(self, rows: Sequence[Row]) -> tuple[dict[int, Existing], set[int]]:
        """_known's answer for `rows`: the readers by line, the suppressed lines."""
        readers = {row.line: self.readers[row.email] for row in rows if row.email in self.readers}
        suppressed = {row.line for row in rows if row.email in self.suppressed or
                      (self.forgotten and hashed_email(row.email) in self.suppressed)}
        return readers, suppressed


HOLD_AT_MOST = 250_000  # readers and suppressions a Held may hold in memory; a larger store is joined


def hold(session: Session) -> Held | None:
    """The store's readers and suppressions, when the tables are taken on PostgreSQL and they are few."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return None
    present = connection.execute(text("SELECT (SELECT count(*) FROM subscriber) + (SELECT count(*) FROM suppression)")
                                 ).scalar_one()
    if present > HOLD_AT_MOST:
        return None
    readers = {email: Existing(*values) for email, *values in connection.execute(text(
        "SELECT email, id, status, name, confirmed_at IS NOT NULL AND unsubscribed_at IS NULL FROM subscriber"))}
    suppressed = set(connection.execute(text("SELECT email FROM suppression")).scalars())
    return Held(readers, suppressed, any(email.startswith("sha256:") for email in suppressed))


def _new_ids(session: Session, rows: Sequence[Row], held: Held | None = None) -> list[int]:
    """Ids for new readers, in file order. PostgreSQL: taken from the sequence up front, so the
    readers, their topics and events all go in by COPY without a join to find them; with the
    tables held, a block of them with one setval (Held). SQLite: the readers are inserted first
    and their ids read back by address."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return []
    if held is not None:
        last = connection.execute(text("SELECT setval(pg_get_serial_sequence('subscriber', 'id'), "
                                       "nextval(pg_get_serial_sequence('subscriber', 'id')) + :n - 1)"),
                                  {"n": len(rows)}).scalar_one()
        return list(range(last - len(rows) + 1, last + 1))
    return sorted(connection.execute(text("SELECT array_agg(nextval(pg_get_serial_sequence('subscriber', 'id'))) "
                                          "FROM generate_series(1, :n)"), {"n": len(rows)}).scalar_one())


def _write_new(session: Session, readers: Sequence[Row], source: str, now: datetime, held: Held | None) -> None:
    """New readers with their topics and consent events, as apply_row would write them."""
    connection = session.connection()
    postgresql = connection.dialect.name == "postgresql"
    keys = iter(token_keys(len(readers)))
    ids = _new_ids(session, readers, held)
    made = [_reader_values(row, now) for row in readers]
    columns = ("email", "name", "status", "created_at", "confirmed_at", "unsubscribed_at", "paused_until", "token_key")
    values = [(row.email, row.name, row.status, created, confirmed, left, row.paused_until, next(keys))
              for row, (created, confirmed, left, _events) in zip(readers, made)]
    if postgresql:
        _copy_new(connection, ids, values, readers, made, source)
        return
    insert_rows(connection, "subscriber", columns, values)
    found = dict(connection.execute(text("SELECT st.line, s.id FROM import_stage st JOIN subscriber s "
                                         "ON s.email = st.email")).all())
    ids = [found[row.line] for row in readers]
    insert_rows(connection, "subscriber_topic", ("subscriber_id", "category"),
                ((i, topic) for i, row in zip(ids, readers) if row.status == "active" for topic in row.topics))
    insert_rows(connection, "consent_event", ("subscriber_id", "kind", "source", "detail", "created_at", "ip"),
                ((i, kind, source, detail, at, ip) for i, (*_, events) in zip(ids, made)
                 for kind, detail, at, ip in events))


def _copy_new(connection: Connection, ids: list[int], values: list[tuple], readers: Sequence[Row],
              made: list[tuple], source: str) -> None:
    """PostgreSQL: _write_new's rows as text COPY lines made directly (bulk_copy.text_line's
    format): a million readers, a million and more events, so no per-value dispatch."""
    stamp, source = Stamps(), escape(source)
    copy_lines(connection, "subscriber", ("id", "email", "name", "status", "created_at", "confirmed_at",
                                          "unsubscribed_at", "paused_until", "token_key"),
               (f"{i}\t{escape(email)}\t{escape(name)}\t{status}\t{stamp[created]}\t{stamp[confirmed]}\t"
                f"{stamp[left]}\t{stamp[paused]}\t{key}\n"
                for i, (email, name, status, created, confirmed, left, paused, key) in zip(ids, values)))
    copy_lines(connection, "subscriber_topic", ("subscriber_id", "category"),
               (f"{i}\t{escape(topic)}\n" for i, row in zip(ids, readers) if row.status == "active"
                for topic in row.topics))
    copy_lines(connection, "consent_event", ("subscriber_id", "kind", "source", "detail", "created_at", "ip"),
               (f"{i}\t{kind}\t{source}\t{escape(detail)}\t{stamp[at]}\t{NULL if ip is None else escape(ip)}\n"
                for i, (*_, events) in zip(ids, made) for kind, detail, at, ip in events))


def merge(session: Session, rows: Sequence[Row], source: str, now: datetime | None = None,
          held: Held | None = None) -> Merged:
    """Write the rows whose addresses are new to the store set-based; return the others (see the
    module docstring) with what the store holds for them. `rows` are judged rows with unique
    addresses (importing.judge). `held`: the store as the import found it when it took the tables
    (only then: see Held)."""
    if not known_source(source):
        raise ValueError(f"consent source {source!r} is not known")
    if not rows:
        return Merged()
    now = now or utcnow()
    session.flush()  # the row path's pending writes go first: the statements below read the tables
    connection = session.connection()
    if held is None:
        _stage_tables(session)
        # The hashes only matter when some forgotten reader is on the suppression list.
        forgotten = connection.execute(text("SELECT EXISTS (SELECT 1 FROM suppression WHERE email LIKE 'sha256:%')")
                                       ).scalar_one()
        _stage(connection, rows, forgotten)
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE import_stage"))
        readers, suppressed_lines = _known(session)
    else:
        readers, suppressed_lines = held.known(rows)
        staged = [row for row in rows if row.line in readers or row.line in suppressed_lines]
        if staged:  # a new list's chunks know nobody: no stage made and dropped (20 ms a chunk)
            _stage_tables(session)
            _stage(connection, staged, held.forgotten)
    fresh = [row for row in rows if row.line not in readers and row.line not in suppressed_lines]
    new_readers = [row for row in fresh if row.status not in SUPPRESS_REASON]
    if new_readers:
        _write_new(session, new_readers, str(source), now, held)
    suppressed = [row for row in fresh if row.status in SUPPRESS_REASON]
    insert_rows(connection, "suppression", ("email", "reason", "created_at"),
                ((row.email, SUPPRESS_REASON[row.status], now) for row in suppressed))
    known = [row for row in rows if row.line in readers or row.line in suppressed_lines]
    return Merged(len(new_readers), [(row.email, row.status) for row in suppressed], known, readers,
                  suppressed_lines)


def _stage(connection: Connection, rows: Sequence[Row], forgotten: bool) -> None:
    """The rows' addresses (and, when some forgotten reader is suppressed, their hashes) into the stage."""
    if connection.dialect.name == "postgresql":
        copy_lines(connection, "import_stage", ("line", "email", "hash"),
                   (f"{row.line}\t{escape(row.email)}\t{hashed_email(row.email) if forgotten else NULL}\n"
                    for row in rows))
    else:
        insert_rows(connection, "import_stage", ("line", "email", "hash"),
                    ((row.line, row.email, hashed_email(row.email) if forgotten else None) for row in rows))


def _prepare(session: Session, expected: int, take_at: int) -> Taken | None:
    """The import transaction's settings, and the tables taken when the import is large (bulk_load).
    PostgreSQL: no wait for the WAL flush at commit (synchronous_commit off, for this transaction
    only): a crash just after the commit can lose the import, which is one transaction and safe to
    run again (every address it added is known the second time). SQLite: a 128 MiB page cache for
    this connection, so a million-row import does not re-read the indexes it is writing."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SET LOCAL synchronous_commit = off"))
    else:
        connection.execute(text("PRAGMA cache_size = -131072"))
        # Python's sqlite3 opens a transaction only before INSERT, UPDATE or DELETE: without this,
        # the DROP INDEX of take() would be committed at once and a failed import would lose them.
        # IMMEDIATE: the write lock now, not an upgrade that can fail halfway through.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return take(connection) if should_take(connection, expected, take_at) else None


def import_judged(engine: Engine, records: Iterator[tuple[int, Row | None, str]], source: str, *,
                  skip_bad_rows: bool, progress: Callable[[int], None] | None = None, expected: int = 0,
                  take_at: int = TAKE_AT) -> ImportReport:
    """importing.import_csv's bulk path: judged records in chunks, in one transaction. A bad row
    without `skip_bad_rows` stops the writing, the rest of the file is still read for its bad
    lines, and the transaction rolls back: nothing is imported, every bad line is named.
    `expected`: about how many records the file holds (its lines), for bulk_load.should_take."""
    with _no_cyclic_gc(), _quick_gil_handover():
        report = _import(engine, records, source, skip_bad_rows, progress, expected, take_at)
    if report.created >= ANALYZE_AFTER and engine.dialect.name == "postgresql":
        _analyze(engine)
    return report


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Python's cycle collector off while the import runs: a million judged rows are millions of
    young objects, and the collector re-scanning them took half the import's CPU (4.1 s against
    2.0 s for 200,000 rows); the import makes no reference cycles, so reference counting frees
    everything it drops. Back on afterwards, as it was."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


# The GIL's switch interval while an import runs (Python's default: 5 ms).
IMPORT_SWITCH_SECONDS = 0.001


@dataclass
class _Handover:
    """The imports running in this process and the switch interval from before the first of them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    was: float = 0.0


_handover = _Handover()


@contextmanager
def _quick_gil_handover() -> Iterator[None]:
    """The thread feeding PostgreSQL gets the GIL back sooner while an import runs. It releases
    the GIL at every COPY block it writes, and the thread judging the next chunk then keeps it
    for up to the switch interval: 5 ms by default, while the backend had nothing left to insert.
    At 1 ms a million-row import took 13.6 s instead of 14.5 s (three alternating runs each,
    BENCHMARKS.md). Process-wide: set by the first import running and restored by the last, so
    overlapping imports (threads of one process) never leave it changed."""
    with _handover.lock:
        if _handover.running == 0:
            _handover.was = sys.getswitchinterval()
            sys.setswitchinterval(min(_handover.was, IMPORT_SWITCH_SECONDS))
        _handover.running += 1
    try:
        yield
    finally:
        with _handover.lock:
            _handover.running -= 1
            if _handover.running == 0:
                sys.setswitchinterval(_handover.was)


def _import(engine: Engine, records: Iterator[tuple[int, Row | None, str]], source: str, skip_bad_rows: bool,
            progress: Callable[[int], None] | None, expected: int, take_at: int) -> ImportReport:
    report, done = ImportReport(), 0
    with session_scope(engine) as session:
        if session.connection().dialect.name == "postgresql":  # idle while the next chunk is read and judged
            long_transaction(session.connection(), IMPORT_IDLE)
        taken = _prepare(session, expected, take_at)
        held = hold(session) if taken is not None else None
        for chunk in chunks_ahead(records, CHUNK):  # the next chunk judged while this one merges
            rows = [row for _, row, _ in chunk if row is not None]
            report.bad_rows += [error for _, row, error in chunk if row is None]
            if skip_bad_rows or not report.bad_rows:
                merged = merge(session, rows, source, held=held)
                report.created += merged.added
                report.skipped += [f"{email}: {status}, now on the suppression list"
                                   for email, status in merged.suppressed]
                apply_known(session, merged.known, merged.readers, merged.suppressed_lines, source, report)
            done += len(chunk)
            if progress is not None:
                progress(done)
        if report.bad_rows and not skip_bad_rows:
            raise rejection(report.bad_rows)
        if taken is not None:
            give_back(session.connection(), taken)
        if session.connection().dialect.name == "sqlite":
            session.connection().execute(text("PRAGMA cache_size = -2000"))  # SQLite's default, for the pool
    return report


def _analyze(engine: Engine) -> None:
    """Fresh statistics at once, not when autovacuum gets to it: with none, the first export after a
    million-row import planned a scan of every topic per page (943 s instead of 220 s). After the
    commit, in a transaction of its own: a database-wide ANALYZE running at the same time once
    deadlocked with it and failed a whole import; statistics are worth a warning, not that."""
    try:
        with engine.begin() as connection:
            connection.execute(text("ANALYZE subscriber, subscriber_topic, consent_event, suppression"))
    except SQLAlchemyError as exc:
        log.warning("import: statistics not refreshed (autovacuum will): %s", exc)
