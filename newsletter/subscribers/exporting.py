"""`subscribers export`, streamed: a keyset page of readers at a time, so memory stays flat and
the first bytes leave at once however many readers there are (a million: bench/imports.py).

Each page is one short transaction (readers by id after the last one seen, then the topics of
that id range), so an export never holds a transaction open while a slow pipe or disk takes the
output. The output is byte for byte what the whole-list export wrote: CSV with spreadsheet
formulas neutralised (service.neutralise_formula), or a JSON array indented by two
(json.dumps(rows, indent=2)).

Why rows are tuples and the JSON is laid out here: a million readers went through the ORM, a
DictWriter, a formula check per cell and json's pure-Python indenting encoder at 30-70 µs a row,
several times the import's cost per row (issue 18.3: exports at the same order of speed). Core
rows, one writerows per page, the check only on the cells a reader typed, and each JSON element
filled from a fixed layout with the C string encoder give the same bytes for a fraction of that.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from json.encoder import encode_basestring_ascii  # what json.dumps uses for str (ensure_ascii)

from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, select, type_coerce

from newsletter.subscribers.models import Subscriber, SubscriberTopic
from newsletter.subscribers.service import EXPORT_COLUMNS, FORMULA_STARTS, InvalidInput, neutralise_formula

PAGE = 5000  # readers per transaction
FLUSH = 256 * 1024  # characters of output per chunk handed on

_READERS = Subscriber.__table__
_TOPICS = SubscriberTopic.__table__


def _stamp(value: datetime | None) -> str:
    """The moment as the model gives it (sqlmodel's UTCDateTime: aware, in UTC), in ISO 8601;
    read without the type's per-value Python hook, which cost more than the formatting."""
    if value is None:
        return ""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()


def _moment(column):
    return type_coerce(column, DateTime(timezone=True))


def export_pages(engine: Engine, page: int = PAGE) -> Iterator[list[tuple]]:
    """Every reader once, by id, as lists of export tuples in EXPORT_COLUMNS order, a page per
    transaction. Topics are read for the page's id range (not an IN list of its ids: a statement
    psycopg would parse anew each page)."""
    after = 0
    while True:
        with engine.connect() as connection:
            readers = connection.execute(
                select(_READERS.c.id, _READERS.c.email, _READERS.c.name, _READERS.c.status,
                       _moment(_READERS.c.created_at), _moment(_READERS.c.confirmed_at),
                       _moment(_READERS.c.unsubscribed_at), _moment(_READERS.c.paused_until))
                .where(_READERS.c.id > after).order_by(_READERS.c.id).limit(page)).all()
            topics: dict[int, list[str]] = {}
            if readers:
                for reader_id, category in connection.execute(
                        select(_TOPICS.c.subscriber_id, _TOPICS.c.category)
                        .where(_TOPICS.c.subscriber_id > after, _TOPICS.c.subscriber_id <= readers[-1][0])
                        .order_by(_TOPICS.c.subscriber_id, _TOPICS.c.category)):
                    topics.setdefault(reader_id, []).append(category)
            connection.rollback()
        yield [(email, name, status, ";".join(topics.get(reader_id, ())), _stamp(created), _stamp(confirmed),
                _stamp(left), _stamp(paused)) for reader_id, email, name, status, created, confirmed, left, paused in readers]
        if len(readers) < page:
            return
        after = readers[-1][0]


def export_rows(engine: Engine, page: int = PAGE) -> Iterator[dict]:
    """Every reader once, by id, as an export row."""
    for rows in export_pages(engine, page):
        for row in rows:
            yield dict(zip(EXPORT_COLUMNS, row))


def export_chunks(engine: Engine, fmt: str) -> Iterator[str]:
    """The export as text chunks of about FLUSH characters; InvalidInput for an unknown format
    (raised before anything is read)."""
    if fmt not in ("csv", "json"):
        raise InvalidInput(f"--format: use csv or json (got {fmt!r})")
    pages = export_pages(engine)
    return _csv_pages(pages) if fmt == "csv" else _json_pages(pages)


_STARTS = frozenset(FORMULA_STARTS)


def _neutralised(row: tuple) -> tuple:
    """The row with every formula-like cell quoted (service.neutralise_formula), looking only at
    the typed cells' first characters (dates and status never start with one): most rows have
    none and go out as they are."""
    if (row[0][:1] in _STARTS or (row[1] or "")[:1] in _STARTS or row[3][:1] in _STARTS):
        return tuple(neutralise_formula(value) for value in row)
    return row


def _csv_pages(pages: Iterable[list[tuple]]) -> Iterator[str]:
    """The CLI's CSV: a header, then each page with one writerows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for rows in pages:
        writer.writerows(map(_neutralised, rows))
        if out.tell() > FLUSH:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


def csv_chunks(rows: Iterator[dict], columns: list[str] = EXPORT_COLUMNS, flush: int = FLUSH) -> Iterator[str]:
    """Readers as CSV text in chunks of about `flush` characters, spreadsheet formulas neutralised
    (service.neutralise_formula): the API's streaming export of a selection."""
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


# One element of json.dumps(rows, indent=2): the row's object indented by two more.
_ELEMENT = "  {\n" + ",\n".join(f'    "{column}": %s' for column in EXPORT_COLUMNS) + "\n  }"


def _json_value(value: str | None) -> str:
    return "null" if value is None else encode_basestring_ascii(value)


def _json_pages(pages: Iterable[list[tuple]]) -> Iterator[str]:
    """json.dumps(rows, indent=2) + "\\n", one page at a time."""
    parts: list[str] = []
    size, first = 0, True
    for rows in pages:
        for row in rows:
            element = _ELEMENT % tuple(map(_json_value, row))
            parts.append(("[\n" if first else ",\n") + element)
            size, first = size + len(element), False
        if size > FLUSH:
            yield "".join(parts)
            parts, size = [], 0
    parts.append("[]\n" if first else "\n]\n")
    yield "".join(parts)
