"""What the console's comparison pages and the comparisons API share: the list's filters and
cursor, read the same way from a GET form and from query parameters (so both lists always
agree), unpublish/republish with its audit entry, and the origin of a revision.

Every value arrives as text; a bad one becomes a message naming the field (shown next to the
filter, or in the API's error fields), never a server error.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Engine

from newsletter.content import publishing
from newsletter.content.revisions import Origin
from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.errors import UserError
from newsletter.reports.comparisons import Filters, Key, Status
from newsletter.text import has_control_chars
from newsletter.weeks import parse_week
from newsletter.web.console.api_base import decode_cursor, encode_cursor
from newsletter.web.console.deps import Answer

FILTER_NAMES = ("q", "week", "published_from", "published_to", "category", "issue", "min_votes", "status")
MAX_INT = 2**31 - 1


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("use a date like 2026-11-24") from None


def _count(value: str, what: str) -> int:
    if not value.isascii() or not value.isdigit() or int(value) > MAX_INT:
        raise ValueError(f"must be a whole number of {what}, 0 or more")
    return int(value)


def _week(value: str) -> str:
    try:
        parse_week(value)
    except UserError as exc:
        raise ValueError(str(exc).removeprefix(f"week {value!r}: ")) from None
    return value


def _status(value: str) -> Status:
    try:
        return Status(value)
    except ValueError:
        raise ValueError("must be any, published or unpublished") from None


PARSERS = {"week": _week, "published_from": _date, "published_to": _date, "status": _status,
           "issue": lambda v: _count(v, "an issue id") or None, "min_votes": lambda v: _count(v, "votes")}


def parse_filters(values: dict[str, str]) -> tuple[Filters, dict[str, str]]:
    """Filters from text values (blank ones ignored) and the message for each bad one."""
    parsed: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name in FILTER_NAMES:
        value = (values.get(name) or "").strip()
        if not value:
            continue
        if has_control_chars(value) or len(value) > 200:
            errors[name] = "must be at most 200 characters, without control characters"
            continue
        try:
            parsed[name] = PARSERS.get(name, str)(value)
        except ValueError as exc:
            errors[name] = str(exc)
    filters = Filters(**{name: value for name, value in parsed.items() if name not in errors})
    if filters.published_from and filters.published_to and filters.published_from > filters.published_to:
        errors["published_to"] = "must not be before the first day"
    return filters, errors


def cursor_for(key: Key | None) -> str | None:
    return encode_cursor({"p": key.published_at.isoformat(), "id": key.id}) if key else None


def key_of(cursor: str) -> Key:
    """The key a cursor names; a cursor this API did not give out raises Answer (422, JSON)."""
    at, ident = decode_cursor(cursor, "p", str), decode_cursor(cursor, "id", int)
    try:
        moment = datetime.fromisoformat(str(at))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or not 0 < int(ident) <= MAX_INT:  # type: ignore[arg-type]
        decode_cursor("", "p", str)  # raises the API's invalid-cursor answer
    return Key(moment, int(ident))  # type: ignore[arg-type]


def console_key(cursor: str) -> Key | None:
    """The console's "next page" link: a damaged cursor just starts from the first page."""
    try:
        return key_of(cursor) if cursor else None
    except Answer:
        return None


def origin_of(actor: audit.Actor, source: str) -> Origin:
    """A revision's origin: "console" with the editor's address, "api" with the token's name."""
    return Origin(source, actor.label.partition(":")[2] or actor.label)


def publish_audited(engine: Engine, actor: audit.Actor, slug: str, published: bool,
                    source: str) -> tuple[dict, dict]:
    """Unpublish or republish, audited (and kept as a revision) in the same transaction when
    anything changed. Raises publishing.NoSuchComparison for an unknown slug."""
    with session_scope(engine) as session:
        before, after = publishing.set_published(session, slug, published, origin_of(actor, source))
        if before != after:
            audit.record(session, actor, "comparison.publish" if published else "comparison.unpublish",
                         f"comparison:{slug}", before, after)
    return before, after
