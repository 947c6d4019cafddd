"""Rows whose address the store already knows, set-based: what importing.apply_row decides for
each, written with one UPDATE … FROM a staged table and bulk inserts instead of a round of
queries per row.

Why: re-importing a list (the same export again, a month later) makes nearly every row a known
reader; row by row that is five statements a row, an hour for a million. The decisions are
apply_row's, in its order, row by row in Python against what one query per chunk read
(bulk_import._known and the readers' topics here):
- a bounce or complaint the file reports goes through apply_row itself (a suppression, the reader
  marked, the event and the outgoing webhook it announces): rare, and kept in one place;
- a reader who unsubscribed here stays unsubscribed, whatever the file says;
- a row marked unsubscribed unsubscribes the reader, with its consent event ("imported as
  unsubscribed"); an address known only from the suppression list goes through apply_row;
- an active row for a suppressed or forgotten address, or a bounced or complained reader, is
  skipped, never re-activated;
- otherwise the reader is made active with the file's name (if any) and topics and a "subscribed"
  consent event: unless nothing would change (already active and confirmed, same name, same
  topics), then nothing is written at all, the same rule apply_row follows (consent events only
  for real changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, text
from sqlmodel import Session
from sqlmodel.sql.sqltypes import UTCDateTime

from newsletter.db import utcnow
from newsletter.subscribers.bulk_copy import insert_rows
from newsletter.subscribers.importing import SUPPRESS_REASON, ImportReport, Row, apply_row
from newsletter.subscribers.models import SubscriberStatus

ACTIVE, UNSUBSCRIBED = SubscriberStatus.active.value, SubscriberStatus.unsubscribed.value
NEVER_MAILED = (SubscriberStatus.bounced.value, SubscriberStatus.complained.value)

_meta = MetaData()
CHANGES = Table("import_change", _meta, Column("id", Integer, primary_key=True, autoincrement=False),
                Column("name", String(100)), Column("status", String(16)), Column("unsubscribed_at", UTCDateTime()),
                Column("topics", Integer), prefixes=["TEMPORARY"])
_TOPICS = text("SELECT st.line, t.category FROM import_stage st JOIN subscriber s ON s.email = st.email "
               "JOIN subscriber_topic t ON t.subscriber_id = s.id")
_UPDATE = text("UPDATE subscriber SET name = c.name, status = c.status, unsubscribed_at = c.unsubscribed_at, "
               "confirmed_at = CASE WHEN c.status = 'active' THEN coalesce(subscriber.confirmed_at, :now) "
               "ELSE subscriber.confirmed_at END FROM import_change c WHERE subscriber.id = c.id"
               ).bindparams(bindparam("now", type_=UTCDateTime()))
_CLEAR_TOPICS = text("DELETE FROM subscriber_topic WHERE subscriber_id IN (SELECT id FROM import_change WHERE topics = 1)")


class Existing(NamedTuple):
    """What the store holds for a known reader (bulk_import._known reads it)."""

    id: int
    status: str
    name: str
    settled: bool  # confirmed_at set and unsubscribed_at empty: nothing an active row would fill in


@dataclass
class Plan:
    """The writes for one chunk's known rows."""

    changes: list[tuple[int, str, str, datetime | None, int]] = field(default_factory=list)
    topics: list[tuple[int, str]] = field(default_factory=list)
    events: list[tuple[int, str, str, str, datetime, None]] = field(default_factory=list)
    row_path: list[Row] = field(default_factory=list)


def _decide(row: Row, existing: Existing | None, suppressed: bool, topics: list[str], plan: Plan,
            report: ImportReport, source: str, now: datetime) -> None:
    """apply_row's verdict for one known row, as a planned write (module docstring)."""
    if row.status in SUPPRESS_REASON or (existing is None and row.status == UNSUBSCRIBED):
        plan.row_path.append(row)
    elif existing is not None and existing.status == UNSUBSCRIBED:
        report.skipped.append(f"{row.email}: unsubscribed here; an import never re-subscribes anyone")
    elif row.status == UNSUBSCRIBED:
        when = row.dates["unsubscribed_at"] or now
        plan.changes.append((existing.id, existing.name, UNSUBSCRIBED, when, 0))
        plan.events.append((existing.id, "unsubscribed", source, "imported as unsubscribed", when, None))
        report.updated += 1
    elif suppressed:
        report.skipped.append(f"{row.email}: suppressed")
    elif existing.status in NEVER_MAILED:
        report.skipped.append(f"{row.email}: {existing.status}")
    elif existing.status == ACTIVE and existing.settled and row.name in ("", existing.name) and \
            sorted(row.topics) == sorted(topics):
        report.unchanged += 1
    else:
        plan.changes.append((existing.id, row.name or existing.name, ACTIVE, None, 1))
        plan.topics += [(existing.id, topic) for topic in row.topics]
        # A reader already active only changed (name, topics): not a new join ("joined" counts these).
        kind = "preferences_changed" if existing.status == ACTIVE else "subscribed"
        plan.events.append((existing.id, kind, source, "", now, None))
        report.updated += 1


def apply_known(session: Session, rows: Sequence[Row], readers: dict[int, Existing], suppressed_lines: set[int],
                source: str, report: ImportReport) -> None:
    """Apply the known rows of a chunk (bulk_import.merge left them in its stage table) into
    `report`, in the session's transaction."""
    if not rows:
        return
    connection, now = session.connection(), utcnow()
    topics: dict[int, list[str]] = {}
    if any(row.line in readers for row in rows):
        for line, category in connection.execute(_TOPICS):
            topics.setdefault(line, []).append(category)
    plan = Plan()
    for row in rows:
        _decide(row, readers.get(row.line), row.line in suppressed_lines, topics.get(row.line, []), plan, report,
                source, now)
    if plan.changes:
        schema = "pg_temp" if connection.dialect.name == "postgresql" else "temp"
        connection.execute(text(f"DROP TABLE IF EXISTS {schema}.{CHANGES.name}"))
        CHANGES.create(connection)
        insert_rows(connection, CHANGES.name, ("id", "name", "status", "unsubscribed_at", "topics"), plan.changes)
        connection.execute(_UPDATE, {"now": now})
        connection.execute(_CLEAR_TOPICS)
        insert_rows(connection, "subscriber_topic", ("subscriber_id", "category"), plan.topics)
        insert_rows(connection, "consent_event", ("subscriber_id", "kind", "source", "detail", "created_at", "ip"),
                    plan.events)
    for row in plan.row_path:
        apply_row(session, row, source, report)
