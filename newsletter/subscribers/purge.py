"""Purge signups that were never confirmed once their confirmation has expired.

Why: a signup nobody confirmed is not consent, only someone's address, name, topics, IP and
User-Agent typed into a form (possibly by a stranger). Once no confirmation link for it can
work any more, there is no reason to keep any of that. What stays is what the abuse limits
need: the address's hash and when confirmations were mailed to it (ExpiredSignup), so purging
does not reset the per-address confirmation limit; those traces go too after a day.

Runs hourly from the scheduler (`newsletter scheduler` or `run`) and as `newsletter subscribers purge-unconfirmed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, delete, exists, func, or_
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.tallies import untally_subscribers
from newsletter.db import session_scope, utcnow
from newsletter.subscribers.models import ConsentEvent, ExpiredSignup, Subscriber, SubscriberStatus, TransactionalMail
from newsletter.subscribers.service import hashed_email

TRACE_DAYS = 1  # the longest abuse-limit window: confirmations_per_address_per_day


@dataclass
class PurgeReport:
    purged: int = 0
    traces_kept: int = 0
    traces_dropped: int = 0


def _still_confirmable(now: datetime):
    """A confirmation of this subscriber that could still be used or is still to be sent."""
    return exists().where(
        TransactionalMail.subscriber_id == Subscriber.id, TransactionalMail.kind == "confirm",
        TransactionalMail.used_at.is_(None),
        or_(TransactionalMail.expires_at > now,
            and_(TransactionalMail.expires_at.is_(None), TransactionalMail.state != "failed")))


def _asked_recently(cutoff: datetime):
    """A signup request newer than one confirmation lifetime (it may be waiting on the mail throttle)."""
    return exists().where(ConsentEvent.subscriber_id == Subscriber.id, ConsentEvent.kind == "signup_requested",
                          ConsentEvent.created_at > cutoff)


def expired_signups(session: Session, settings: Settings, now: datetime) -> list[int]:
    cutoff = now - timedelta(hours=settings.web.confirm_ttl_hours)
    return list(session.exec(
        select(Subscriber.id).where(Subscriber.status == SubscriberStatus.pending.value,
                                    Subscriber.confirmed_at.is_(None), Subscriber.created_at <= cutoff,
                                    ~_still_confirmable(now), ~_asked_recently(cutoff))
    ).all())


def _traces(session: Session, ids: list[int], since: datetime) -> dict[int, list[ExpiredSignup]]:
    """The hashed address and recent confirmation times of each subscriber about to go."""
    rows = session.exec(
        select(Subscriber.id, TransactionalMail.to_email, TransactionalMail.created_at)
        .join(TransactionalMail, TransactionalMail.subscriber_id == Subscriber.id)
        .where(Subscriber.id.in_(ids), TransactionalMail.kind == "confirm", TransactionalMail.created_at > since)
    ).all()
    traces: dict[int, list[ExpiredSignup]] = {}
    for subscriber_id, to_email, created_at in rows:
        traces.setdefault(subscriber_id, []).append(ExpiredSignup(email_hash=hashed_email(to_email),
                                                                  mailed_at=created_at))
    return traces


def purge_unconfirmed(engine: Engine, settings: Settings, now: datetime | None = None, batch: int = 500) -> PurgeReport:
    """Delete expired never-confirmed signups (with, by cascade, their topics, consent events and
    mails) in batches; each batch is one transaction and re-checks `pending` in the DELETE, so a
    confirmation that lands meanwhile wins."""
    now = now or utcnow()
    since = now - timedelta(days=TRACE_DAYS)
    report = PurgeReport()
    while True:
        with session_scope(engine) as session:
            ids = expired_signups(session, settings, now)[:batch]
            if not ids:
                break
            traces = _traces(session, ids, since)
            # Locked, so the counters lose exactly the rows the DELETE takes (an imported reader
            # never confirmed may have had deliveries before signing up again).
            doomed = session.exec(select(Subscriber.id).where(
                Subscriber.id.in_(ids), Subscriber.status == SubscriberStatus.pending.value).with_for_update()).all()
            untally_subscribers(session, list(doomed))
            gone = session.execute(
                delete(Subscriber).where(Subscriber.id.in_(ids), Subscriber.status == SubscriberStatus.pending.value)
                .returning(Subscriber.id)).scalars().all()
            for subscriber_id in gone:
                session.add_all(traces.get(subscriber_id, []))
                report.traces_kept += len(traces.get(subscriber_id, []))
            report.purged += len(gone)
        if len(ids) < batch:
            break
    with session_scope(engine) as session:
        report.traces_dropped = session.execute(delete(ExpiredSignup).where(ExpiredSignup.mailed_at <= since)).rowcount
    return report


def recent_traces(session: Session, email: str, since: datetime) -> int:
    """Confirmations mailed to `email` since `since` by signups purged meanwhile (for the limits)."""
    return session.exec(select(func.count()).where(ExpiredSignup.email_hash == hashed_email(email),
                                                   ExpiredSignup.mailed_at > since)).one()
