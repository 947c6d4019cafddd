"""Adding, importing and exporting subscribers; every consent change leaves an event."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Engine
from sqlmodel import Session, delete, select

from newsletter.db import session_scope, utcnow
from newsletter.errors import UserError
from newsletter.text import has_control_chars
from subscribers.models import ConsentEvent, Subscriber, SubscriberStatus, SubscriberTopic, Suppression

MAX_NAME = 100
MAX_TOPICS = 20


class InvalidInput(UserError):
    """Input that names the field and the reason."""


def normalize_email(value: str, field: str = "email") -> str:
    """Syntax check and normalisation (lower-cased domain, IDNA); no DNS lookups here."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{field}: is required")
    if has_control_chars(value):
        raise InvalidInput(f"{field}: contains control characters")
    if len(value) > 254:
        raise InvalidInput(f"{field}: longer than 254 characters")
    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: {exc}") from None
    return result.normalized.lower() if result.normalized else value.lower()


def clean_name(value: str | None) -> str:
    value = (value or "").strip()
    if has_control_chars(value):
        raise InvalidInput("name: contains control characters")
    if len(value) > MAX_NAME:
        raise InvalidInput(f"name: longer than {MAX_NAME} characters")
    return value


def clean_topics(values: Iterable[str]) -> list[str]:
    topics = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        if has_control_chars(value) or len(value) > 80:
            raise InvalidInput(f"topics: {value[:40]!r} is not a valid topic")
        if value not in topics:
            topics.append(value)
    if len(topics) > MAX_TOPICS:
        raise InvalidInput(f"topics: at most {MAX_TOPICS}")
    return topics


def record_consent(session: Session, subscriber: Subscriber, kind: str, source: str, detail: str = "") -> None:
    session.add(ConsentEvent(subscriber_id=subscriber.id, kind=kind, source=source, detail=detail))


def set_topics(session: Session, subscriber_id: int, topics: list[str]) -> None:
    session.exec(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    for topic in topics:
        session.add(SubscriberTopic(subscriber_id=subscriber_id, category=topic))


def is_suppressed(session: Session, email: str) -> bool:
    return session.exec(select(Suppression.id).where(Suppression.email == email)).first() is not None


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    skipped: list[str] = field(default_factory=list)


def upsert_active(
    session: Session, email: str, name: str, topics: list[str], source: str, result: UpsertResult
) -> Subscriber | None:
    """Make `email` an active subscriber with recorded consent from `source`.

    Suppressed addresses (hard bounces, complaints) are never re-activated by an
    import: a list owner cannot undo a complaint by re-uploading a CSV.
    """
    if is_suppressed(session, email):
        result.skipped.append(f"{email}: suppressed")
        return None
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    now = utcnow()
    if subscriber is None:
        subscriber = Subscriber(email=email, name=name, status=SubscriberStatus.active.value, confirmed_at=now)
        session.add(subscriber)
        session.flush()
        result.created += 1
    else:
        if subscriber.status in (SubscriberStatus.bounced.value, SubscriberStatus.complained.value):
            result.skipped.append(f"{email}: {subscriber.status}")
            return None
        subscriber.name = name or subscriber.name
        subscriber.status = SubscriberStatus.active.value
        subscriber.confirmed_at = subscriber.confirmed_at or now
        subscriber.unsubscribed_at = None
        session.add(subscriber)
        result.updated += 1
    set_topics(session, subscriber.id, topics)
    record_consent(session, subscriber, "subscribed", source)
    return subscriber


def import_csv(engine: Engine, data: str, status: str, source_name: str = "import") -> UpsertResult:
    """Import columns email, name, topics (topics separated by ';' or '|').

    Every row is validated before anything is written; one bad row names its
    line and field and imports nothing.
    """
    if status != SubscriberStatus.active.value:
        raise InvalidInput(f"--status: only 'active' imports are supported (got {status!r})")
    reader = csv.DictReader(io.StringIO(data))
    if not reader.fieldnames or "email" not in [f.strip() for f in reader.fieldnames]:
        raise InvalidInput("CSV: the header row needs an 'email' column (and optionally name, topics)")
    rows, errors, seen = [], [], set()
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "") for k, v in row.items()}
        try:
            email = normalize_email(row.get("email", ""))
            name = clean_name(row.get("name"))
            topics = clean_topics(row.get("topics", "").replace("|", ";").split(";"))
        except InvalidInput as exc:
            errors.append(f"line {line}: {exc}")
            continue
        if email in seen:
            continue
        seen.add(email)
        rows.append((email, name, topics))
    if errors:
        raise InvalidInput("CSV rejected, nothing imported:\n  " + "\n  ".join(errors[:20]))
    result = UpsertResult()
    with session_scope(engine) as session:
        for email, name, topics in rows:
            upsert_active(session, email, name, topics, source_name, result)
    return result


def export_rows(engine: Engine) -> list[dict]:
    with session_scope(engine) as session:
        subscribers = session.exec(select(Subscriber).order_by(Subscriber.id)).all()
        topics: dict[int, list[str]] = {}
        for row in session.exec(select(SubscriberTopic).order_by(SubscriberTopic.category)).all():
            topics.setdefault(row.subscriber_id, []).append(row.category)
    return [
        {
            "email": s.email,
            "name": s.name,
            "status": s.status,
            "topics": ";".join(topics.get(s.id, [])),
            "created_at": s.created_at.isoformat(),
            "confirmed_at": s.confirmed_at.isoformat() if s.confirmed_at else "",
        }
        for s in subscribers
    ]


def export(engine: Engine, fmt: str) -> str:
    rows = export_rows(engine)
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["email", "name", "status", "topics", "created_at", "confirmed_at"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    raise InvalidInput(f"--format: use csv or json (got {fmt!r})")


SUPPRESSION_STATUS = {"hard_bounce": SubscriberStatus.bounced.value, "complaint": SubscriberStatus.complained.value,
                      "soft_bounce_limit": SubscriberStatus.bounced.value}


def suppress(session: Session, email: str, reason: str, source: str, detail: str = "") -> None:
    """Stop all mail to `email` at once: a suppression row, the subscriber marked, an event."""
    if not is_suppressed(session, email):
        session.add(Suppression(email=email, reason=reason))
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if subscriber is not None:
        subscriber.status = SUPPRESSION_STATUS.get(reason, subscriber.status)
        session.add(subscriber)
        session.flush()
        record_consent(session, subscriber, f"suppressed:{reason}", source, detail[:500])
