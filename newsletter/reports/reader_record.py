"""One reader's whole record for the console and the API: who they are, what they agreed to and
when, every issue we sent them with its delivery state, and their votes.

Why one read model: the console page and GET /api/v1/readers/{id} must show the same facts;
each comes from the table that is its source of truth (the delivery ledger, the append-only
consent history), read in one transaction so the parts agree with each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from newsletter.content.models import Comparison, Tool, Vote
from newsletter.delivery.models import Delivery
from newsletter.issues.models import Issue
from newsletter.subscribers.models import ConsentEvent, Subscriber, SubscriberTopic, Suppression
from newsletter.subscribers.service import hashed_email

LEDGER_LIMIT = 520  # ten years of weekly issues; older rows stay in the table


@dataclass(frozen=True)
class LedgerRow:
    issue_id: int
    week: str
    subject: str
    state: str
    attempts: int
    queued_at: datetime
    sent_at: datetime | None
    provider_message_id: str | None
    last_error: str | None


@dataclass(frozen=True)
class ConsentRow:
    at: datetime
    kind: str
    source: str
    detail: str
    ip: str | None
    user_agent: str | None
    consent_version: str | None


@dataclass(frozen=True)
class VoteRow:
    comparison: str
    title: str
    tool: str  # the tool's name, or "" for "pass on both"
    at: datetime


@dataclass
class ReaderRecord:
    reader: Subscriber
    topics: list[str] = field(default_factory=list)
    consent: list[ConsentRow] = field(default_factory=list)  # newest first
    ledger: list[LedgerRow] = field(default_factory=list)  # newest issue first
    votes: list[VoteRow] = field(default_factory=list)  # newest first
    suppressed: str | None = None  # the suppression's reason, if the address is on the list


def reader_record(session: Session, reader_id: int) -> ReaderRecord | None:
    """The record of reader `reader_id`, or None if there is no such reader (or they were forgotten)."""
    reader = session.get(Subscriber, reader_id)
    if reader is None:
        return None
    record = ReaderRecord(reader=reader)
    record.topics = list(session.execute(select(SubscriberTopic.category).where(
        SubscriberTopic.subscriber_id == reader_id).order_by(SubscriberTopic.category)).scalars())
    record.consent = [ConsentRow(e.created_at, e.kind, e.source, e.detail, e.ip, e.user_agent, e.consent_version)
                      for e in session.execute(select(ConsentEvent).where(ConsentEvent.subscriber_id == reader_id)
                                               .order_by(ConsentEvent.id.desc())).scalars()]
    record.ledger = _ledger(session, reader_id)
    record.votes = _votes(session, reader_id)
    record.suppressed = session.execute(select(Suppression.reason).where(
        Suppression.email.in_([reader.email, hashed_email(reader.email)]))).scalars().first()
    return record


def _ledger(session: Session, reader_id: int) -> list[LedgerRow]:
    rows = session.execute(
        select(Delivery, Issue.week, Issue.subject).join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == reader_id).order_by(Delivery.issue_id.desc()).limit(LEDGER_LIMIT))
    return [LedgerRow(d.issue_id, week, subject, d.state, d.attempts, d.created_at, d.sent_at,
                      d.provider_message_id, d.last_error) for d, week, subject in rows]


def _votes(session: Session, reader_id: int) -> list[VoteRow]:
    rows = session.execute(
        select(Vote.updated_at, Comparison.slug, Comparison.title, Tool.name)
        .join(Comparison, Comparison.id == Vote.comparison_id).outerjoin(Tool, Tool.id == Vote.tool_id)
        .where(Vote.subscriber_id == reader_id).order_by(Vote.updated_at.desc()))
    return [VoteRow(slug, title, tool or "", at) for at, slug, title, tool in rows]
