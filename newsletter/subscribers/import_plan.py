"""What importing a batch of rows would do, and doing it: one judgement for the dry run and the run.

Each row gets one outcome: new, updated, unchanged, suppressed (a bounce or complaint the source
reports, now on our suppression list) or refused (with the reason). The rules are importing.py's,
decided up front so a dry run can say them without writing: a suppressed or forgotten address is
never added again, not even as unsubscribed; a reader who unsubscribed here stays unsubscribed;
a bounced or complained reader is never re-activated. Rows that would change something then go
through importing.apply_row, the path `newsletter subscribers import` takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import insert
from sqlmodel import Session, select

from newsletter.db import utcnow
from newsletter.subscribers.bulk_import import merge
from newsletter.subscribers.consent import clean_ip
from newsletter.subscribers.importing import Row, apply_row, evidence_events
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberStatus, SubscriberTopic, Suppression, \
    new_token_key
from newsletter.subscribers.service import UpsertResult, hashed_email

OUTCOMES = ("new", "updated", "unchanged", "suppressed", "refused")
MAX_NOTES = 200  # refused lines kept with their reasons; the count is always exact
NEVER_MAILED = (SubscriberStatus.bounced.value, SubscriberStatus.complained.value)


@dataclass
class Tally:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    notes: list[str] = field(default_factory=list)  # "line N: reason", at most MAX_NOTES

    def refuse(self, note: str) -> None:
        self.counts["refused"] += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(note)


@dataclass(frozen=True)
class Known:
    """What the store already says about a batch's addresses."""

    readers: dict[str, Subscriber]
    topics: dict[int, list[str]]
    suppressed: set[str]


def known_for(session: Session, rows: Sequence[Row]) -> Known:
    """Three queries per batch, not three per row."""
    emails = [row.email for row in rows]
    readers = {s.email: s for s in session.exec(select(Subscriber).where(Subscriber.email.in_(emails)))}
    topics: dict[int, list[str]] = {}
    ids = [reader.id for reader in readers.values()]
    if ids:
        for entry in session.exec(select(SubscriberTopic).where(SubscriberTopic.subscriber_id.in_(ids))):
            topics.setdefault(entry.subscriber_id, []).append(entry.category)
    forms = {form: email for email in emails for form in (email, hashed_email(email))}
    listed = session.exec(select(Suppression.email).where(Suppression.email.in_(list(forms))))
    return Known(readers, topics, {forms[form] for form in listed})


def outcome(row: Row, known: Known) -> tuple[str, str]:
    """(outcome, reason if refused) for one row against what the store holds."""
    existing, suppressed = known.readers.get(row.email), row.email in known.suppressed
    if row.status in NEVER_MAILED:
        unchanged = suppressed and (existing is None or existing.status == row.status)
        return ("unchanged" if unchanged else "suppressed"), ""
    if suppressed:
        return "refused", "suppressed here (a bounce, a complaint or a forgotten reader); left as it is"
    if existing is None:
        return "new", ""
    if existing.status == SubscriberStatus.unsubscribed.value:
        if row.status == "unsubscribed":
            return "unchanged", ""
        return "refused", "unsubscribed here; an import never re-subscribes anyone"
    if existing.status in NEVER_MAILED:
        return "refused", f"{existing.status} here; an import never re-activates that address"
    if row.status == "unsubscribed" or existing.status != SubscriberStatus.active.value:
        return "updated", ""
    same_name = not row.name or row.name == existing.name
    same_topics = sorted(row.topics) == sorted(known.topics.get(existing.id, []))
    return ("unchanged" if same_name and same_topics else "updated"), ""


def run_batch(session: Session, rows: Sequence[Row], tally: Tally, source: str, *, write: bool,
              keep_topics: bool = False) -> None:
    """Judge a batch (and, with `write`, apply it in `session`). `keep_topics`: the file has no
    topics column, so a known reader keeps the topics they chose here. New active readers (most of
    a first import) are inserted together by add_new; every other change goes row by row through
    importing.apply_row."""
    known = known_for(session, rows)
    fresh: list[Row] = []
    for row in rows:
        existing = known.readers.get(row.email)
        if keep_topics and existing is not None:
            row = replace(row, topics=known.topics.get(existing.id, []))
        result, reason = outcome(row, known)
        if result == "refused":
            tally.refuse(f"line {row.line}: {row.email}: {reason}")
            continue
        if write and result == "new" and row.status == SubscriberStatus.active.value:
            fresh.append(row)
        elif write and result != "unchanged":
            applied = UpsertResult()
            apply_row(session, row, source, applied)
            if applied.skipped and result != "suppressed":
                tally.refuse(f"line {row.line}: {applied.skipped[0]}")
                continue
        tally.counts[result] += 1
    if fresh:
        add_new(session, fresh, source)


PART = 500  # rows judged against the store per query (SQLite takes at most 32766 parameters)


def run_chunk(session: Session, rows: Sequence[Row], tally: Tally, source: str, *, write: bool,
              keep_topics: bool = False) -> None:
    """run_batch for a chunk of any size. With `write`, addresses new to the store go in set-based
    (bulk_import.merge: new, or suppressed for a bounce or complaint the file reports) and only
    the rows the store already knows are judged and applied one by one by run_batch."""
    if write:
        merged = merge(session, rows, source)
        tally.counts["new"] += merged.added
        tally.counts["suppressed"] += len(merged.suppressed)
        rows = merged.known
    for start in range(0, len(rows), PART):
        run_batch(session, rows[start:start + PART], tally, source, write=write, keep_topics=keep_topics)


def add_new(session: Session, rows: Sequence[Row], source: str) -> None:
    """New active readers in three INSERTs, the records apply_row would write one by one: the reader
    (join and confirmation dates from the file, else now), their topics, a "subscribed" consent
    event from `source` and the source platform's opt-in evidence (importing.keep_evidence)."""
    now = utcnow()
    made = session.execute(insert(Subscriber).returning(Subscriber.id, Subscriber.email), [
        {"email": row.email, "name": row.name, "status": SubscriberStatus.active.value, "token_key": new_token_key(),
         "created_at": row.dates["created_at"] or now, "confirmed_at": row.dates["confirmed_at"] or now,
         "unsubscribed_at": None, "paused_until": row.paused_until} for row in rows]).all()
    ids = {email: subscriber_id for subscriber_id, email in made}
    topics = [{"subscriber_id": ids[row.email], "category": topic} for row in rows for topic in row.topics]
    if topics:
        session.execute(insert(SubscriberTopic), topics)
    events = []
    for row in rows:
        event = {"subscriber_id": ids[row.email], "source": source, "user_agent": None, "consent_version": None}
        events.append({**event, "kind": "subscribed", "detail": "", "created_at": now, "ip": None})
        for kind, when, ip in evidence_events(row.evidence, row.dates["created_at"] or now,
                                              row.dates["confirmed_at"] or now):
            events.append({**event, "kind": kind, "detail": f"as recorded by {row.evidence.platform}",
                           "created_at": when, "ip": clean_ip(ip) or None})
    session.execute(insert(ConsentEvent), events)
