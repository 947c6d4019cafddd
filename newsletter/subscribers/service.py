"""Adding, importing and exporting subscribers; every consent change leaves an event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from sqlalchemy import Engine
from sqlmodel import Session, delete, select

from newsletter import outgoing
from newsletter.db import insert_for, utcnow
from newsletter.errors import UserError
from newsletter.text import has_control_chars
from newsletter.subscribers.consent import SOURCES, Origin, Source, clean_ip, clean_user_agent, known_source
from newsletter.tokens import LinkSubject
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberStatus, SubscriberTopic, Suppression

MAX_NAME = 100
MAX_TOPICS = 20


class InvalidInput(UserError):
    """Input that names the field and the reason."""


UNDELIVERABLE_UTF8 = ("our mail service cannot deliver to an address with accented or non-latin letters "
                      "before the @; please use another address")


def normalize_email(value: str, field: str = "email", smtputf8: bool = False) -> str:
    """Syntax check and the stored form: lower-cased, the domain as Unicode (IDNA-decoded: an
    "xn--" domain is stored like its Unicode spelling, so both find one reader); no DNS lookups.
    `smtputf8`: whether the configured transport can carry a non-ASCII local part at all
    (delivery.transports.carries_smtputf8); if not, such an address is refused here, at once."""
    value = (value or "").strip()
    if not value:
        raise InvalidInput(f"{field}: is required")
    if has_control_chars(value):
        raise InvalidInput(f"{field}: contains control characters")
    if len(value) > 254:
        raise InvalidInput(f"{field}: longer than 254 characters")
    fast = _plain_address(value)
    if fast is not None:
        return fast
    from email_validator import EmailNotValidError, validate_email  # see _domain

    try:
        result = validate_email(value, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: {exc}") from None
    if result.smtputf8 and not smtputf8:
        raise InvalidInput(f"{field}: {UNDELIVERABLE_UTF8}")
    return result.normalized.lower() if result.normalized else value.lower()


# A plain ASCII dot-atom local part: the addresses almost every list consists of. For these the
# validator's verdict depends on the domain alone, so the domain is judged once (cached) and an
# import of a million rows does not run the full validator a million times (22 µs each).
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*")


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str | None:
    """The stored form of `domain`, or None when the validator refuses it (the full path then says why).
    email-validator is imported on first use: its import (its patterns compiled, idna) was on the
    way of every command that loads the delivery modules, `issue send` and the worker's start too."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email("a@" + domain, check_deliverability=False, allow_smtputf8=True).domain
    except EmailNotValidError:
        return None


def _plain_address(value: str) -> str | None:
    """normalize_email's answer for a plain address without running the whole validator; None
    for anything else (the validator decides those, with its reason)."""
    local, at, domain = value.rpartition("@")
    if not at or len(local) > 64 or not domain.isascii() or not _PLAIN_LOCAL.fullmatch(local):
        return None
    stored = _domain(domain)
    return None if stored is None else f"{local}@{stored}".lower()


def clean_name(value: str | None) -> str:
    value = (value or "").strip()
    if has_control_chars(value):
        raise InvalidInput("name: contains control characters (a line break or similar); type it on one line")
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


def record_consent(session: Session, subscriber: Subscriber, kind: str, source: str, detail: str = "",
                   origin: Origin | None = None, at: datetime | None = None) -> None:
    """One consent event: `source` is one of newsletter.subscribers.consent.Source (or "import:<platform>");
    `origin` carries the web request's IP and User-Agent and the version of the consent text shown;
    `at` is when it happened if not now (an imported platform's opt-in time)."""
    if not known_source(source):
        raise ValueError(f"consent source {source!r} is not one of {sorted(SOURCES)}")
    origin = origin or Origin()
    session.add(ConsentEvent(subscriber_id=subscriber.id, kind=kind, source=str(source), detail=detail,
                             ip=clean_ip(origin.ip) or None, user_agent=clean_user_agent(origin.user_agent) or None,
                             consent_version=origin.consent_version, created_at=at or utcnow()))


def link_holder(session: Session, subject: LinkSubject) -> Subscriber | None:
    """The reader a verified link names, or None: the id alone is not enough, the reader's
    token_key must be the one the link was made with (a later reader never inherits a link)."""
    subscriber = session.get(Subscriber, subject.subscriber_id)
    if subscriber is None or not subject.names(subscriber.id, subscriber.token_key):
        return None
    return subscriber


def set_topics(session: Session, subscriber_id: int, topics: list[str]) -> None:
    session.exec(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    for topic in topics:
        session.add(SubscriberTopic(subscriber_id=subscriber_id, category=topic))


HASH_PREFIX = "sha256:"


def hashed_email(email: str) -> str:
    """How a forgotten address is kept on the suppression list: not the address, only its hash."""
    return HASH_PREFIX + hashlib.sha256(email.strip().lower().encode()).hexdigest()


def is_suppressed(session: Session, email: str) -> bool:
    """Plainly suppressed (bounce, complaint) or forgotten (kept only as a hash)."""
    forms = (email, hashed_email(email))
    return session.exec(select(Suppression.id).where(Suppression.email.in_(forms))).first() is not None


@dataclass
class UpsertResult:
    created: int = 0
    updated: int = 0
    skipped: list[str] = field(default_factory=list)
    unchanged: int = 0  # known readers a row would not change: nothing written (importing.apply_row)


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
    now, joined = utcnow(), True
    if subscriber is None:
        subscriber = Subscriber(email=email, name=name, status=SubscriberStatus.active.value, created_at=now,
                                confirmed_at=now)  # one instant: confirmed_at came out before created_at
        session.add(subscriber)
        session.flush()
        result.created += 1
    else:
        if subscriber.status in (SubscriberStatus.bounced.value, SubscriberStatus.complained.value):
            result.skipped.append(f"{email}: {subscriber.status}")
            return None
        joined = subscriber.status != SubscriberStatus.active.value
        subscriber.name = name or subscriber.name
        subscriber.status = SubscriberStatus.active.value
        subscriber.confirmed_at = subscriber.confirmed_at or now
        subscriber.unsubscribed_at = None
        session.add(subscriber)
        result.updated += 1
    set_topics(session, subscriber.id, topics)
    # A reader already active only changed: not a new join (the console's "joined" counts "subscribed").
    record_consent(session, subscriber, "subscribed" if joined else "preferences_changed", source)
    return subscriber


MAX_PAUSE_WEEKS = 52  # the longest pause a reader can choose (preferences page) and an import keeps

EXPORT_COLUMNS = ["email", "name", "status", "topics", "created_at", "confirmed_at", "unsubscribed_at", "paused_until"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: object) -> object:
    """CSV injection: a cell a spreadsheet would run as a formula (=HYPERLINK(…), +cmd|…, @SUM)
    is prefixed with a single quote, which spreadsheets show as text (OWASP's advice)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def unneutralised(value: str) -> str:
    """A cell as it was before `neutralise_formula`: an import of our own export must give the same
    names back (a name "=x" exported as "'=x" came back with the quote, and went into To:)."""
    return value[1:] if value[:1] == "'" and value[1:2] and value[1:2] in FORMULA_STARTS else value


def export(engine: Engine, fmt: str) -> str:
    """The whole export as one string (subscribers/exporting.py streams it; the CLI writes it that way)."""
    from newsletter.subscribers.exporting import export_chunks

    return "".join(export_chunks(engine, fmt))


SUPPRESSION_STATUS = {"hard_bounce": SubscriberStatus.bounced.value, "complaint": SubscriberStatus.complained.value,
                      "soft_bounce_limit": SubscriberStatus.bounced.value}
# A reader who becomes bounced or complained is announced once (a second report changes nothing).
SUPPRESSION_EVENT = {SubscriberStatus.bounced.value: "reader.bounced",
                     SubscriberStatus.complained.value: "reader.complained"}


def suppress(session: Session, email: str, reason: str, source: str, detail: str = "") -> None:
    """Stop all mail to `email` at once: a suppression row, the subscriber marked, an event.

    `source` is a consent source; a provider or transport name (e.g. "smtp") stands for a
    report from that provider: source webhook with the name in the detail.
    """
    if not known_source(source):
        detail, source = f"{source}: {detail}" if detail else str(source), Source.webhook
    if not is_suppressed(session, email):
        # Another transaction may suppress the same address meanwhile (a provider's webhook, another
        # issue's bounce): its row wins, and this one's transaction (a batch's whole record) goes on.
        session.execute(insert_for(session, Suppression.__table__)
                        .values(email=email, reason=reason, created_at=utcnow())
                        .on_conflict_do_nothing(index_elements=["email"]))
    subscriber = session.exec(select(Subscriber).where(Subscriber.email == email)).first()
    if subscriber is not None:
        before = subscriber.status
        subscriber.status = SUPPRESSION_STATUS.get(reason, subscriber.status)
        session.add(subscriber)
        session.flush()
        record_consent(session, subscriber, f"suppressed:{reason}", source, detail[:500])
        if subscriber.status != before and subscriber.status in SUPPRESSION_EVENT:
            outgoing.emit(session, SUPPRESSION_EVENT[subscriber.status], reader_data(subscriber, reason=reason))


def reader_data(subscriber: Subscriber, **extra: str) -> dict:
    """What an outgoing webhook says about a reader (newsletter/outgoing.py): enough to find them
    in the receiver's own records, nothing of their history."""
    return {"reader_id": subscriber.id, "email": subscriber.email, "name": subscriber.name,
            "status": subscriber.status, **extra}
