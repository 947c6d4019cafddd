"""`subscribers export`, streamed: a keyset page of readers at a time, so memory stays flat and
the first bytes leave at once however many readers there are (a million: bench/imports.py).

Each page is one short transaction (readers by id after the last one seen, then their topics),
so an export never holds a transaction open while a slow pipe or disk takes the output. The
output is byte for byte what the whole-list export wrote: CSV with spreadsheet formulas
neutralised (service.neutralise_formula), or a JSON array indented by two.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

from sqlalchemy import Engine, select

from newsletter.db import session_scope
from newsletter.subscribers.models import Subscriber, SubscriberTopic
from newsletter.subscribers.service import EXPORT_COLUMNS, InvalidInput, neutralise_formula

PAGE = 5000  # readers per transaction (their ids go into one IN list: below SQLite's 32766 parameters)
FLUSH = 256 * 1024  # characters of output per chunk handed on


def export_rows(engine: Engine, page: int = PAGE) -> Iterator[dict]:
    """Every reader once, by id, as an export row."""
    after = 0
    while True:
        with session_scope(engine) as session:
            readers = session.execute(
                select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.status, Subscriber.created_at,
                       Subscriber.confirmed_at, Subscriber.unsubscribed_at)
                .where(Subscriber.id > after).order_by(Subscriber.id).limit(page)).all()
            topics: dict[int, list[str]] = {}
            if readers:
                for reader_id, category in session.execute(
                        select(SubscriberTopic.subscriber_id, SubscriberTopic.category)
                        .where(SubscriberTopic.subscriber_id.in_([r[0] for r in readers]))
                        .order_by(SubscriberTopic.category)):
                    topics.setdefault(reader_id, []).append(category)
        for reader_id, email, name, status, created, confirmed, left in readers:
            yield {"email": email, "name": name, "status": status, "topics": ";".join(topics.get(reader_id, [])),
                   "created_at": created.isoformat(), "confirmed_at": confirmed.isoformat() if confirmed else "",
                   "unsubscribed_at": left.isoformat() if left else ""}
        if len(readers) < page:
            return
        after = readers[-1][0]


def export_chunks(engine: Engine, fmt: str) -> Iterator[str]:
    """The export as text chunks of about FLUSH characters; InvalidInput for an unknown format
    (raised before anything is read)."""
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"--format: use csv or json (got {fmt!r})")
    return csv_chunks(export_rows(engine)) if fmt == "csv" else _json(export_rows(engine))


def csv_chunks(rows: Iterator[dict], columns: list[str] = EXPORT_COLUMNS, flush: int = FLUSH) -> Iterator[str]:
    """Readers as CSV text in chunks of about `flush` characters, spreadsheet formulas neutralised
    (service.neutralise_formula): the CLI export and the API's streaming export."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: neutralise_formula(value) for key, value in row.items()})
        if out.tell() > flush:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def _json(rows: Iterator[dict]) -> Iterator[str]:
    """json.dumps(list, indent=2) + "\\n", one element at a time."""
    parts, size, first = [], 0, True
    for row in rows:
        element = "  " + json.dumps(row, indent=2).replace("\n", "\n  ")
        parts.append(("[\n" if first else ",\n") + element)
        size, first = size + len(element), False
        if size > FLUSH:
            yield "".join(parts)
            parts, size = [], 0
    parts.append("[]\n" if first else "\n]\n")
    yield "".join(parts)
