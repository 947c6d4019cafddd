"""Finding readers and suppressions fast over a million rows: prefix search with keyset pages.

Why ranges instead of LIKE: "starts with p" is the range p <= x < next(p) in code point order,
which both databases can answer from a btree index walked in order, with no escaping of % and _
and no dependence on LIKE's case rules (SQLite's LIKE ignores ASCII case, PostgreSQL's does not).
Code point order is PostgreSQL's "C" collation on a UTF-8 database and SQLite's BINARY, so the
order of a page, the range and Python's own sort agree on both; the indexes of migration 0019
are on exactly these expressions.

Addresses are stored lower-cased by Python (service.normalize_email), so the search text is
lower-cased by Python for them. Names are stored as typed, so both the name and the search text
are lower-cased by the database's own lower(): the two sides always fold the same way, whatever
the database does with non-ASCII letters.

A page is at most `limit` readers after the cursor (the last address of the previous page). A
search by address and name runs two ordered queries of limit + 1 rows each and merges them, so
each is one index range scan and neither waits for the other's matches to be sorted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import idna
from sqlalchemy import Engine, func, select
from sqlalchemy.sql import ColumnElement
from sqlmodel import Session

from newsletter.db import session_scope
from newsletter.subscribers.models import Subscriber, SubscriberTopic, Suppression
from newsletter.subscribers.service import HASH_PREFIX, InvalidInput, hashed_email, normalize_email

MAX_LIMIT = 500


@dataclass(frozen=True)
class Page:
    """Rows of one page and the key to pass as `after` for the next (None on the last page)."""

    rows: list
    next_after: str | None


def after_prefix(prefix: str) -> str | None:
    """The smallest string above every string that starts with `prefix` (code point order), or
    None when there is none (a prefix of U+10FFFF only)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates are not characters; UTF-8 skips them
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def email_key(session: Session) -> ColumnElement:
    """The address as the index of migration 0019 orders it (code points)."""
    return Subscriber.email.collate("C") if _postgres(session) else Subscriber.email


def name_key(session: Session) -> ColumnElement:
    lowered = func.lower(Subscriber.name)
    return lowered.collate("C") if _postgres(session) else lowered


def _starts_with(column: ColumnElement, prefix: str) -> ColumnElement:
    upper = after_prefix(prefix)
    return (column >= prefix) & (column < upper) if upper is not None else column >= prefix


def address_form(text: str) -> str:
    """The search text as addresses are stored: lower case, an "xn--" domain in Unicode."""
    text = text.strip().lower()
    local, at, domain = text.rpartition("@")
    if at and "xn--" in domain:
        try:
            return f"{local}@{idna.decode(domain)}"
        except (idna.IDNAError, UnicodeError, ValueError):
            pass  # a domain typed only in part: search for it as typed
    return text


def _ordered(session: Session, query, after: str, limit: int) -> list[Subscriber]:
    key = email_key(session)
    if after:
        query = query.where(key > after)
    return list(session.execute(query.order_by(key).limit(limit + 1)).scalars())


def search_readers(session: Session, text: str = "", after: str = "", limit: int = 50,
                   name_contains: bool = False) -> Page:
    """Readers whose address or name starts with `text` (any case), by address; with
    `name_contains`, those whose name contains it anywhere (no index helps: a full scan that
    stops after `limit` matches; see docs/console.md for the measured cost)."""
    text = text.strip()
    if not text:
        rows = _ordered(session, select(Subscriber), after, limit)
    else:
        folded = session.execute(select(func.lower(text))).scalar_one()
        by_name = (name_key(session).contains(folded, autoescape=True) if name_contains
                   else _starts_with(name_key(session), folded))
        found = {row.id: row for row in _ordered(session, select(Subscriber).where(by_name), after, limit)}
        address = select(Subscriber).where(_starts_with(email_key(session), address_form(text)))
        found.update((row.id, row) for row in _ordered(session, address, after, limit))
        rows = sorted(found.values(), key=lambda row: row.email)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].email if more else None)


def walk_readers(engine: Engine, page_size: int = 1000) -> Iterator[dict]:
    """Every reader once, by address, as an export row (service.EXPORT_COLUMNS plus id); one
    short transaction per page, so an export of any size holds one page in memory and never
    keeps a transaction open while a slow client reads."""
    after = ""
    while True:
        with session_scope(engine) as session:
            page = search_readers(session, after=after, limit=page_size)
            ids = [row.id for row in page.rows]
            topics: dict[int, list[str]] = {}
            for reader_id, category in session.execute(
                    select(SubscriberTopic.subscriber_id, SubscriberTopic.category)
                    .where(SubscriberTopic.subscriber_id.in_(ids)).order_by(SubscriberTopic.category)):
                topics.setdefault(reader_id, []).append(category)
            rows = [_export_row(row, topics.get(row.id, [])) for row in page.rows]
        yield from rows
        if page.next_after is None:
            return
        after = page.next_after


def _export_row(reader: Subscriber, topics: list[str]) -> dict:
    def when(value: datetime | None) -> str:
        return value.isoformat() if value else ""

    return {"id": reader.id, "email": reader.email, "name": reader.name, "status": reader.status,
            "topics": ";".join(topics), "created_at": when(reader.created_at),
            "confirmed_at": when(reader.confirmed_at), "unsubscribed_at": when(reader.unsubscribed_at),
            "paused_until": when(reader.paused_until)}


def search_suppressions(session: Session, text: str = "", after: str = "", limit: int = 50) -> Page:
    """Suppressed addresses starting with `text`, by address. A complete address also finds its
    forgotten form (only the hash is kept), so an editor can tell that it was erased."""
    key = Suppression.email.collate("C") if _postgres(session) else Suppression.email
    query = select(Suppression)
    text = text.strip()
    if text:
        prefix = address_form(text)
        condition = _starts_with(key, prefix)
        try:
            condition = condition | (Suppression.email == hashed_email(normalize_email(text, smtputf8=True)))
        except InvalidInput:
            pass  # not a whole address: the prefix alone
        query = query.where(condition)
    if after:
        query = query.where(key > after)
    rows = list(session.execute(query.order_by(key).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1].email if more else None)


def is_hash(email: str) -> bool:
    return email.startswith(HASH_PREFIX)
