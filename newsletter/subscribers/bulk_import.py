"""Imports at database speed: rows new to the store are written set-based, the rest row by row.

An import of a platform's list is mostly addresses this publication has never seen. For those
the row-by-row rules (importing.apply_row) come down to plain inserts: an active reader with
their topics and a "subscribed" consent event (plus the platform's opt-in evidence), an
unsubscribed reader with the history of their leaving, or a suppression for a bounce or a
complaint. So each chunk of judged rows is staged in a temporary table (COPY on PostgreSQL,
executemany on SQLite), and one statement takes out every staged row whose address the store
already knows in any form: a reader, a suppression of the address or of its hash (a forgotten
reader). Those rows are returned to the caller, who applies them through the row path with all
its rules (never re-activating an unsubscribed, bounced or complained reader, suppressions,
topics of known readers). The rows left are new; they go in with one INSERT … SELECT per table,
in file order, in the caller's transaction. Validation stays where it was (importing.parse_row,
mapping.map_row and importing.judge, with their line numbers); only the writes are set-based.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, bindparam, insert, text
from sqlalchemy import Engine
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from newsletter.db import session_scope, utcnow
from newsletter.subscribers.consent import clean_ip, known_source
from newsletter.subscribers.importing import SUPPRESS_REASON, ImportReport, Row, apply_row, evidence_events, rejection
from newsletter.subscribers.models import new_token_key
from newsletter.subscribers.service import hashed_email

CHUNK = 20_000  # rows staged and merged at a time: memory stays bounded, statements stay large
ANALYZE_AFTER = 10_000  # new readers after which an import refreshes the planner's statistics (PostgreSQL)

_meta = MetaData()
STAGE = Table("import_stage", _meta, Column("line", Integer, primary_key=True, autoincrement=False), Column("email", String(254)),
              Column("hash", String(71)), Column("name", String(100)), Column("status", String(16)),
              Column("created_at", UTCDateTime()), Column("confirmed_at", UTCDateTime()),
              Column("unsubscribed_at", UTCDateTime()), Column("token_key", String(16)), prefixes=["TEMPORARY"])
TOPICS = Table("import_stage_topic", _meta, Column("line", Integer), Column("category", String(80)),
               prefixes=["TEMPORARY"])
EVENTS = Table("import_stage_event", _meta, Column("line", Integer), Column("seq", Integer),
               Column("kind", String(32)), Column("detail", Text), Column("created_at", UTCDateTime()),
               Column("ip", String(45)), prefixes=["TEMPORARY"])


@dataclass
class Merged:
    """What one chunk did: readers added, addresses suppressed (email, status), and the rows the
    store already knew, in file order, for the row path."""

    added: int = 0
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    known: list[Row] = field(default_factory=list)


def _reader_values(row: Row, now: datetime) -> tuple[dict, list[tuple[str, str, datetime, str | None]]]:
    """The reader row apply_row would write for a new address, and its consent events in order
    (kind, detail, when, ip): the same dates and defaults (importing.add_new, importing._unsubscribed)."""
    dates, evidence = row.dates, row.evidence
    detail = f"as recorded by {evidence.platform}" if evidence is not None else ""
    if row.status == "unsubscribed":
        when = dates["unsubscribed_at"] or now
        created, confirmed, left = dates["created_at"] or when, dates["confirmed_at"], when
        events = [(kind, detail, at or now, clean_ip(ip) or None)
                  for kind, at, ip in evidence_events(evidence, created, confirmed)]
        events.append(("unsubscribed", "imported as unsubscribed", when, None))
    else:
        created, confirmed, left = dates["created_at"] or now, dates["confirmed_at"] or now, None
        events = [("subscribed", "", now, None)]
        events += [(kind, detail, at or now, clean_ip(ip) or None)
                   for kind, at, ip in evidence_events(evidence, created, confirmed)]
    values = {"line": row.line, "email": row.email, "name": row.name,
              "status": row.status, "created_at": created, "confirmed_at": confirmed, "unsubscribed_at": left,
              "token_key": new_token_key()}
    return values, events


def _stage_tables(session: Session) -> None:
    """Empty temporary tables for this connection (dropped first: a pooled connection may hold
    the previous chunk's)."""
    connection = session.connection()
    schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
    for table in (STAGE, TOPICS, EVENTS):
        connection.execute(text(f"DROP TABLE IF EXISTS {schema}.{table.name}"))
        table.create(connection)


def _stage(session: Session, rows: Sequence[Row], now: datetime) -> None:
    """SQLite: the rows, their topics and their consent events into the temporary tables."""
    stage, topics, events = [], [], []
    for row in rows:
        values, made = _reader_values(row, now)
        stage.append({**values, "hash": hashed_email(row.email)})
        if row.status == "active":
            topics += [{"line": row.line, "category": topic} for topic in row.topics]
        events += [{"line": row.line, "seq": seq, "kind": kind, "detail": detail, "created_at": at, "ip": ip}
                   for seq, (kind, detail, at, ip) in enumerate(made)]
    connection = session.connection()
    for table, values in ((STAGE, stage), (TOPICS, topics), (EVENTS, events)):
        if values:
            connection.execute(insert(table), values)


def _copy(connection, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> None:
    """COPY … FROM STDIN through the session's own psycopg connection (same transaction)."""
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _merge_postgresql(session: Session, rows: Sequence[Row], source: str, now: datetime) -> Merged:
    """PostgreSQL: only the addresses are staged (COPY); once the known ones are out, the new
    readers get ids from their sequence and go by COPY straight into subscriber, subscriber_topic,
    consent_event and suppression: no second pass over a staging table, no join to find the ids."""
    connection = session.connection()
    _copy(connection, "import_stage", ("line", "email", "hash"),
          ((row.line, row.email, hashed_email(row.email)) for row in rows))
    connection.execute(text("ANALYZE import_stage"))
    known = {line for statement in _KNOWN for (line,) in connection.execute(text(statement))}
    fresh = [row for row in rows if row.line not in known]
    readers = [row for row in fresh if row.status not in SUPPRESS_REASON]
    ids = sorted(connection.execute(text("SELECT nextval(pg_get_serial_sequence('subscriber', 'id')) "
                                         "FROM generate_series(1, :n)"), {"n": len(readers)}).scalars())
    subscribers, topics, events = [], [], []
    for subscriber_id, row in zip(ids, readers):
        values, made = _reader_values(row, now)
        subscribers.append((subscriber_id, row.email, row.name, row.status, values["created_at"],
                            values["confirmed_at"], values["unsubscribed_at"], values["token_key"]))
        if row.status == "active":
            topics += [(subscriber_id, topic) for topic in row.topics]
        events += [(subscriber_id, kind, source, detail, at, ip) for kind, detail, at, ip in made]
    _copy(connection, "subscriber", ("id", "email", "name", "status", "created_at", "confirmed_at",
                                     "unsubscribed_at", "token_key"), subscribers)
    _copy(connection, "subscriber_topic", ("subscriber_id", "category"), topics)
    _copy(connection, "consent_event", ("subscriber_id", "kind", "source", "detail", "created_at", "ip"), events)
    suppressed = [row for row in fresh if row.status in SUPPRESS_REASON]
    _copy(connection, "suppression", ("email", "reason", "created_at"),
          ((row.email, SUPPRESS_REASON[row.status], now) for row in suppressed))
    return Merged(len(readers), [(row.email, row.status) for row in suppressed],
                  [row for row in rows if row.line in known])


# The staged rows whose address the store knows in any form leave the stage for the row path. Three
# statements, not one with three ORed EXISTS: each alone is a semi-join the planner can hash.
_KNOWN = tuple(f"DELETE FROM import_stage WHERE EXISTS (SELECT 1 FROM {table} k WHERE k.email = import_stage.{column}) "
               "RETURNING line" for table, column in (("subscriber", "email"), ("suppression", "email"),
                                                      ("suppression", "hash")))
_READERS = ("INSERT INTO subscriber (email, name, status, created_at, confirmed_at, unsubscribed_at, paused_until, "
            "token_key) SELECT email, name, status, created_at, confirmed_at, unsubscribed_at, NULL, token_key "
            "FROM import_stage WHERE status IN ('active', 'unsubscribed') ORDER BY line")
_SUPPRESSIONS = ("INSERT INTO suppression (email, reason, created_at) SELECT email, CASE status WHEN 'bounced' "
                 f"THEN '{SUPPRESS_REASON['bounced']}' ELSE '{SUPPRESS_REASON['complained']}' END, :now "
                 "FROM import_stage WHERE status IN ('bounced', 'complained') ORDER BY line RETURNING email")
_TOPICS = ("INSERT INTO subscriber_topic (subscriber_id, category) SELECT s.id, t.category FROM import_stage_topic t "
           "JOIN import_stage st ON st.line = t.line JOIN subscriber s ON s.email = st.email")
_EVENTS = ("INSERT INTO consent_event (subscriber_id, kind, source, detail, created_at, ip, user_agent, "
           "consent_version) SELECT s.id, e.kind, :source, e.detail, e.created_at, e.ip, NULL, NULL "
           "FROM import_stage_event e JOIN import_stage st ON st.line = e.line JOIN subscriber s ON s.email = st.email "
           "WHERE st.status IN ('active', 'unsubscribed') ORDER BY e.line, e.seq")


def merge(session: Session, rows: Sequence[Row], source: str, now: datetime | None = None) -> Merged:
    """Write the rows whose addresses are new to the store set-based; return the others (see the
    module docstring). `rows` are judged rows with unique addresses (importing.judge)."""
    if not known_source(source):
        raise ValueError(f"consent source {source!r} is not known")
    if not rows:
        return Merged()
    now = now or utcnow()
    _stage_tables(session)
    if session.connection().dialect.name == "postgresql":
        return _merge_postgresql(session, rows, str(source), now)
    _stage(session, rows, now)
    connection = session.connection()
    known = {line for statement in _KNOWN for (line,) in connection.execute(text(statement))}
    merged = Merged(known=[row for row in rows if row.line in known])
    merged.added = connection.execute(text(_READERS).execution_options(preserve_rowcount=True)).rowcount
    status = {row.email: row.status for row in rows if row.status in SUPPRESS_REASON}
    suppressions = text(_SUPPRESSIONS).bindparams(bindparam("now", type_=UTCDateTime()))
    merged.suppressed = [(email, status[email]) for (email,) in connection.execute(suppressions, {"now": now})]
    connection.execute(text(_TOPICS))
    connection.execute(text(_EVENTS), {"source": str(source)})
    return merged


def import_judged(engine: Engine, records: Iterator[tuple[int, Row | None, str]], source: str, *,
                  skip_bad_rows: bool, progress: Callable[[int], None] | None = None) -> ImportReport:
    """importing.import_csv's bulk path: judged records in chunks, in one transaction. A bad row
    without `skip_bad_rows` stops the writing, the rest of the file is still read for its bad
    lines, and the transaction rolls back: nothing is imported, every bad line is named."""
    report, done = ImportReport(), 0
    with session_scope(engine) as session:
        while chunk := list(islice(records, CHUNK)):
            rows = [row for _, row, _ in chunk if row is not None]
            report.bad_rows += [error for _, row, error in chunk if row is None]
            if skip_bad_rows or not report.bad_rows:
                merged = merge(session, rows, source)
                report.created += merged.added
                report.skipped += [f"{email}: {status}, now on the suppression list"
                                   for email, status in merged.suppressed]
                for row in merged.known:
                    apply_row(session, row, source, report)
            done += len(chunk)
            if progress is not None:
                progress(done)
        if report.bad_rows and not skip_bad_rows:
            raise rejection(report.bad_rows)
        if report.created >= ANALYZE_AFTER and session.connection().dialect.name == "postgresql":
            # Fresh statistics at once, not when autovacuum gets to it: with none, the first export
            # after a million-row import planned a scan of every topic per page (943 s instead of 220 s).
            session.connection().execute(text("ANALYZE subscriber, subscriber_topic, consent_event, suppression"))
    return report
