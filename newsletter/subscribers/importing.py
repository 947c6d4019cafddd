"""`newsletter subscribers import`: a CSV of readers who agreed elsewhere.

Every row is read and judged before anything is written. A row the import cannot honour (a bad
address, a topic that is not a category of the publication, an unknown status, a date that does
not parse) names its line and the reason; one such row refuses the whole file, because a
half-imported list is harder to repair than a refused one. `skip_bad_rows` imports the good rows
and reports every line it left out. The columns are those `subscribers export` writes, so an
export imports again as it was: unsubscribed readers stay unsubscribed, bounced and complained
addresses become suppressions, and an import never re-subscribes someone who left.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine
from sqlmodel import Session, select

from newsletter.db import session_scope, utcnow
from newsletter.subscribers.consent import Origin, Source
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic
from newsletter.subscribers.service import (MAX_PAUSE_WEEKS, InvalidInput, UpsertResult, clean_name, clean_topics,
                                            is_suppressed, normalize_email, record_consent, suppress, unneutralised,
                                            upsert_active)
from newsletter.text import counted

TOPIC_SEPARATORS = ";|"  # "Developer Tools;Design & Media" (| too, for files where ; is the column separator)
COLUMNS = ("email", "name", "topics", "status", "created_at", "confirmed_at", "unsubscribed_at", "paused_until")
DATES = ("created_at", "confirmed_at", "unsubscribed_at")
# Columns an export writes that mean nothing in another store: read and left out (the console's
# export carries each reader's id here).
IGNORED = ("id",)
# Statuses an import can honour; `pending` readers never confirmed, so nobody has their consent.
STATUSES = ("active", "unsubscribed", "bounced", "complained")
SUPPRESS_REASON = {"bounced": "hard_bounce", "complained": "complaint"}
MAX_LISTED = 50
Record = TypeVar("Record")


@dataclass(frozen=True)
class Evidence:
    """What another platform recorded about a reader's opt-in (newsletter/subscribers/mapping.py);
    kept as consent events of source "import:<platform>" when the reader is new here."""

    platform: str
    optin_at: datetime | None = None
    optin_ip: str = ""
    confirmed_at: datetime | None = None
    confirm_ip: str = ""


@dataclass(frozen=True)
class Row:
    line: int
    email: str
    name: str
    topics: list[str]
    status: str
    dates: dict[str, datetime | None]
    evidence: Evidence | None = None
    paused_until: datetime | None = None  # an active reader's pause still to run (parse_pause)


def _topics(value: str, known: dict[str, str]) -> list[str]:
    parts = value
    for separator in TOPIC_SEPARATORS[1:]:
        parts = parts.replace(separator, TOPIC_SEPARATORS[0])
    topics = []
    for topic in clean_topics(parts.split(TOPIC_SEPARATORS[0])):
        canonical = known.get(topic.casefold())
        if canonical is None:
            listed = ", ".join(sorted(known.values())) or "none yet: import content first"
            raise InvalidInput(f"topics: {topic!r} is not a category of this publication (categories: {listed})")
        if canonical not in topics:
            topics.append(canonical)
    return topics


def _moment(name: str, value: str, example: str) -> datetime | None:
    """An ISO 8601 date or time as an aware UTC moment (a bare one is UTC), None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name}: {value[:40]!r} is not a date (use ISO 8601, like {example})") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _date(name: str, value: str, now: datetime) -> datetime | None:
    moment = _moment(name, value, "2026-11-24 or 2026-11-24T09:00:00+00:00")
    if moment is not None and moment > now + timedelta(days=1):
        raise InvalidInput(f"{name}: {value.strip()} is in the future")
    return moment


parse_date = _date  # the rule every imported date follows (the mapping layer's opt-in times too)


def parse_pause(value: str, now: datetime, status: str) -> datetime | None:
    """`paused_until`: when a reader's pause ends, so a date to come; one already past is no
    pause at all (None), and only an active reader keeps one (judged on every row all the same).
    InvalidInput when it is not a date, or further away than a reader can pause
    (MAX_PAUSE_WEEKS): a typo like 9026 would otherwise mean "never mailed again"."""
    moment = _moment("paused_until", value, "2026-12-24T00:00:00+00:00")
    if moment is not None and moment > now + timedelta(weeks=MAX_PAUSE_WEEKS, days=1):
        raise InvalidInput(f"paused_until: {value.strip()} is more than {MAX_PAUSE_WEEKS} weeks away (the longest "
                           "pause a reader can choose)")
    return moment if moment is not None and moment > now and status == "active" else None


def parse_row(line: int, raw: dict[str, str], default_status: str, known: dict[str, str], now: datetime) -> Row:
    """One CSV row judged on its own; InvalidInput names the field and the reason."""
    email = normalize_email(raw.get("email", ""))
    status = (raw.get("status") or "").strip().lower() or default_status
    if status not in STATUSES:
        reason = ("never confirmed, so there is no consent to import (ask them to sign up)" if status == "pending"
                  else f"use one of {', '.join(STATUSES)}")
        raise InvalidInput(f"status: {status!r}: {reason}")
    dates = {name: _date(name, raw.get(name, ""), now) for name in DATES}
    if status == "active" and dates["unsubscribed_at"]:
        raise InvalidInput("unsubscribed_at: set, but the status is active")
    return Row(line, email, clean_name(unneutralised((raw.get("name") or "").strip())), _topics(raw.get("topics", ""), known),
               status, dates, paused_until=parse_pause(raw.get("paused_until", ""), now, status))


def read_rows(data: str, default_status: str, known: dict[str, str]) -> tuple[list[Row], list[str]]:
    """Every row of the file: the good ones, and "line N: field: reason" for each bad one."""
    rows, errors = [], []
    for _, row, error in judged_rows(data, default_status, known):
        (rows.append(row) if row is not None else errors.append(error))
    return rows, errors


def judged_rows(data: str, default_status: str, known: dict[str, str]) -> Iterator[tuple[int, Row | None, str]]:
    """Each record of the file judged, in file order (see judge); a bad header raises at once."""
    reader = csv.DictReader(io.StringIO(data))
    reader.fieldnames = header = check_header([(name or "").strip().lower() for name in reader.fieldnames or []])
    now = utcnow()
    records = ((reader.line_num, raw) for raw in reader)
    return judge(records, len(header), lambda line, raw: parse_row(line, raw, default_status, known, now))


def check_header(header: list[str]) -> list[str]:
    """The header's column names (stripped, lower case), or InvalidInput naming what is wrong."""
    if "email" not in header:
        joined = next((sign for sign in (";", "\t", "|") if any(sign in name for name in header)), None)
        hint = (f"; its columns look separated by {'a tab' if joined == chr(9) else repr(joined)}, not commas: "
                "save it as comma-separated, or use --from csv, which finds the separator") if joined else (
            "; another platform's export (Mailchimp's 'Email Address', Substack's, Ghost's…) is read with "
            "--from auto, which maps its columns and keeps join dates and opt-in evidence")
        raise InvalidInput("CSV: the header row needs an 'email' column (and optionally name, topics, status, dates)"
                           + hint)
    unknown = [name for name in header if name not in COLUMNS and name not in IGNORED]
    if unknown:
        raise InvalidInput(f"CSV header: unknown column {unknown[0]!r} (known: {', '.join(COLUMNS)})")
    return header


def rejection(errors: list[str]) -> InvalidInput:
    """The whole file refused: every bad line (the first MAX_LISTED) and how to import the rest."""
    listed = errors[:MAX_LISTED] + ([f"... and {len(errors) - MAX_LISTED} more"] if len(errors) > MAX_LISTED else [])
    return InvalidInput(f"CSV rejected, nothing imported ({counted(len(errors), 'bad row')}; --skip-bad-rows imports the "
                        "others):\n  " + "\n  ".join(listed))


def judge(records: Iterable[tuple[int, dict]], width: int, parse: Callable[[int, dict[str, str]], Row]
          ) -> Iterator[tuple[int, Row | None, str]]:
    """Each csv.DictReader record judged in file order (see judged); a record with more fields than
    the header's `width` is refused."""
    def parse_record(line: int, raw: dict) -> Row:
        if None in raw:
            raise InvalidInput(f"more fields than the header's {width} columns")
        return parse(line, {k: v or "" for k, v in raw.items()})

    return judged(records, parse_record)


def judged(records: Iterable[tuple[int, Record]], parse: Callable[[int, Record], Row]
           ) -> Iterator[tuple[int, Row | None, str]]:
    """Each record judged in file order: (line, row, "") or (line, None, "line N: field: reason"). The
    same reader twice is refused on the later line, so a file never imports one address twice."""
    first_line: dict[str, int] = {}
    for line, raw in records:
        try:
            row = parse(line, raw)
            if row.email in first_line:
                raise InvalidInput(f"email: {row.email} is already on line {first_line[row.email]}")
        except InvalidInput as exc:
            yield line, None, f"line {line}: {exc}"
            continue
        first_line[row.email] = line
        yield line, row, ""


def apply_row(session: Session, row: Row, source: str, result: UpsertResult) -> None:
    existing = session.exec(select(Subscriber).where(Subscriber.email == row.email)).first()
    if row.status in SUPPRESS_REASON:
        suppress(session, row.email, SUPPRESS_REASON[row.status], source, "imported as " + row.status)
        result.skipped.append(f"{row.email}: {row.status}, now on the suppression list")
        return
    if existing is not None and existing.status == SubscriberStatus.unsubscribed.value:
        result.skipped.append(f"{row.email}: unsubscribed here; an import never re-subscribes anyone")
        return
    if row.status == "unsubscribed":
        _unsubscribed(session, row, existing, result, source)
        return
    if existing is not None and _unchanged(session, existing, row):
        result.unchanged += 1
        return
    subscriber = upsert_active(session, row.email, row.name, row.topics, source, result)
    if subscriber is not None and existing is None:
        subscriber.created_at = row.dates["created_at"] or subscriber.created_at
        subscriber.confirmed_at = row.dates["confirmed_at"] or subscriber.confirmed_at
        subscriber.paused_until = row.paused_until  # like the dates: from the file for a reader new here
        session.add(subscriber)
        if row.evidence is not None:
            _keep_evidence(session, subscriber, row.evidence, source)


def _unchanged(session: Session, existing: Subscriber, row: Row) -> bool:
    """An active row that would change nothing for an active, confirmed reader (same name or none,
    same topics) writes nothing, not even a consent event: events record real changes, and a
    re-imported list must not add a million "subscribed" events that say nothing new."""
    if existing.status != SubscriberStatus.active.value or existing.confirmed_at is None or \
            existing.unsubscribed_at is not None or row.name not in ("", existing.name) or is_suppressed(session, row.email):
        return False
    topics = session.exec(select(SubscriberTopic.category).where(SubscriberTopic.subscriber_id == existing.id)).all()
    return sorted(topics) == sorted(row.topics)


def evidence_events(evidence: Evidence | None, joined: datetime | None, confirmed: datetime | None
                    ) -> list[tuple[str, datetime | None, str]]:
    """(kind, when, ip) of the consent events another platform's opt-in record becomes."""
    if evidence is None:
        return []
    events = []
    if evidence.optin_at or evidence.optin_ip:
        events.append(("signup_requested", evidence.optin_at or joined, evidence.optin_ip))
    if evidence.confirmed_at or evidence.confirm_ip:
        events.append(("confirmed", evidence.confirmed_at or confirmed, evidence.confirm_ip))
    return events


def _keep_evidence(session: Session, subscriber: Subscriber, evidence: Evidence, source: str) -> None:
    """The other platform's opt-in record, as consent events dated when it happened there."""
    for kind, when, ip in evidence_events(evidence, subscriber.created_at, subscriber.confirmed_at):
        record_consent(session, subscriber, kind, source, f"as recorded by {evidence.platform}",
                       Origin(ip=ip or None), when)


def _unsubscribed(session: Session, row: Row, existing: Subscriber | None, result: UpsertResult,
                  source: str = Source.import_) -> None:
    """Keep the record that this person left: they are never mailed, and a later import will not add them."""
    when = row.dates["unsubscribed_at"] or utcnow()
    new = existing is None
    if existing is None:
        existing = Subscriber(email=row.email, name=row.name, status=SubscriberStatus.unsubscribed.value,
                              created_at=row.dates["created_at"] or when, confirmed_at=row.dates["confirmed_at"],
                              unsubscribed_at=when)
        result.created += 1
    else:
        existing.status, existing.unsubscribed_at = SubscriberStatus.unsubscribed.value, when
        result.updated += 1
    session.add(existing)
    session.flush()
    if new and row.evidence is not None:  # they opted in there once, then left: both are history
        _keep_evidence(session, existing, row.evidence, source)
    record_consent(session, existing, "unsubscribed", source, "imported as unsubscribed", at=when)


@dataclass
class ImportReport(UpsertResult):
    bad_rows: list[str] = field(default_factory=list)  # left out with skip_bad_rows: "line N: field: reason"


def import_csv(engine: Engine, data: str, status: str = "active", source_name: str = Source.import_, *,
               categories: Collection[str], skip_bad_rows: bool = False, bulk: bool = True,
               progress: Callable[[int], None] | None = None, take_at: int | None = None) -> ImportReport:
    """Import a CSV (columns in COLUMNS; topics separated by ';' or '|'); see the module docstring.
    `categories` are the publication's (newsletter.content.categories): the caller reads them, so
    this package stays below the content pipeline. `bulk` (the default) writes addresses new to
    the store set-based (bulk_import.py) in one transaction; `bulk=False` is the row-by-row path
    it must agree with. `progress` is called with the number of records handled so far. `take_at`:
    the size from which a bulk import may take the tables (bulk_load.TAKE_AT unless given)."""
    if status != SubscriberStatus.active.value:
        raise InvalidInput(f"--status: only 'active' imports are supported (got {status!r})")
    known = {category.casefold(): category for category in categories}
    if bulk:
        from newsletter.subscribers.bulk_import import import_judged
        from newsletter.subscribers.bulk_load import TAKE_AT
        from newsletter.subscribers.import_fast import judged_rows_fast

        records = judged_rows_fast(data, status, known)
        return import_judged(engine, records, source_name, skip_bad_rows=skip_bad_rows, progress=progress,
                             expected=data.count("\n"), take_at=TAKE_AT if take_at is None else take_at)
    rows, errors = [], []
    for _, row, error in judged_rows(data, status, known):
        (rows.append(row) if row is not None else errors.append(error))
    if errors and not skip_bad_rows:
        raise rejection(errors)
    report = ImportReport(bad_rows=errors)
    with session_scope(engine) as session:
        for row in rows:
            apply_row(session, row, source_name, report)
    return report
