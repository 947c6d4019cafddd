"""A new reader's first read: the latest sent issue, right after the welcome mail (issue 17 point 8).

On confirmation (subscribers/signup.py `confirm`, through its `on_confirmed` hook) and with
`[issue] latest_to_new_readers` on, the reader's `latest` row joins the transactional queue behind
their welcome mail: the latest issue that finished sending, frozen as it went out (its record), in
the reader's variant when they chose topics, with a line atop saying what it is. Once per reader:
a partial unique index on transactional_mail (subscriber_id) WHERE kind = 'latest', whatever the
number of confirmations or worker runs. Nothing is queued when no issue was sent yet, when the
latest has nothing in the reader's topics, or when the reader was already sent it.

When the mail goes out, the ledger gets the reader's delivery row of that issue (state `sent`,
with their variant mask), as if they had been on the list that week: their votes on its
comparisons count, follow-ups and "Verdicts that changed" reach them, and the unique
(issue, reader) key keeps the issue from reaching them a second time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import exists, literal, or_, select, text
from sqlmodel import Session

from newsletter import tallies
from newsletter.config import Settings
from newsletter.content.models import Comparison
from newsletter.db import insert_for, utcnow
from newsletter.delivery.outbox import variant_mask
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.delivery.variants import SendVariants
from newsletter.issues.frozen import frozen_changes, issue_view
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState
from newsletter.issues.variants import latest_notice, mask_of
from newsletter.mail.message import OutgoingMessage
from newsletter.subscribers.models import Subscriber, SubscriberStatus, SubscriberTopic, Suppression, TransactionalMail

KIND = "latest"
ONCE = text("kind = 'latest'")  # the predicate of uq_transactional_mail_latest


def latest_sent(session: Session) -> int | None:
    """The issue that most recently finished sending."""
    return session.execute(
        select(Issue.id).where(Issue.state == IssueState.sent.value)
        .order_by(Issue.finished_at.desc(), Issue.id.desc()).limit(1)
    ).scalar()


def queue_latest(session: Session, settings: Settings, subscriber: Subscriber) -> bool:
    """Queue the latest issue for a reader who just confirmed, in the caller's transaction (after
    their welcome mail); True when a row was added. See the module's docstring for when not."""
    issue_id = latest_sent(session) if settings.issue.latest_to_new_readers else None
    if issue_id is None:
        return False
    has_topics = exists().where(SubscriberTopic.subscriber_id == subscriber.id)
    wants_one = exists().where(
        SubscriberTopic.subscriber_id == subscriber.id, IssueItem.issue_id == issue_id,
        Comparison.id == IssueItem.comparison_id, SubscriberTopic.category == Comparison.category)
    had_it = exists().where(Delivery.issue_id == issue_id, Delivery.subscriber_id == subscriber.id)
    columns = ["subscriber_id", "issue_id", "kind", "to_email", "state", "attempts", "created_at"]
    rows = select(literal(subscriber.id), literal(issue_id), literal(KIND), literal(subscriber.email),
                  literal(DeliveryState.queued.value), literal(0), literal(utcnow())) \
        .where(or_(~has_topics, wants_one), ~had_it)
    statement = (insert_for(session, TransactionalMail.__table__).from_select(columns, rows)
                 .on_conflict_do_nothing(index_elements=["subscriber_id"], index_where=ONCE)
                 .execution_options(preserve_rowcount=True))
    return bool(session.execute(statement).rowcount)


class NoLongerWanted(Exception):
    """The reader left (unsubscribed, forgotten, suppressed) between confirming and this mail's
    turn: the row is skipped, never sent (mailqueue.py)."""


def still_wanted(session: Session, subscriber: Subscriber | None) -> bool:
    """Active and not suppressed now: what an issue's enqueue asks (outbox.eligible_subscribers)."""
    if subscriber is None or subscriber.status != SubscriberStatus.active.value:
        return False
    return not session.execute(select(exists().where(Suppression.email == subscriber.email))).scalar()


def build_latest(session: Session, settings: Settings, secret: str, row: TransactionalMail,
                 now: datetime) -> OutgoingMessage:
    """The latest issue for one new reader: their variant of its frozen view, marked as such.
    Compiled once per process per variant (issues/render.py), like every issue. A reader who
    left since confirming raises NoLongerWanted."""
    issue = session.get(Issue, row.issue_id)
    subscriber = session.get(Subscriber, row.subscriber_id)
    if issue is None:
        raise LookupError(f"latest-issue mail {row.id}: its issue is gone")
    if not still_wanted(session, subscriber):
        raise NoLongerWanted(f"latest-issue mail {row.id}: the reader left before it went out")
    variants = SendVariants(settings, issue_view(session, settings, issue), frozen_changes(session, issue.id),
                            issue.subject_follows_reader, latest_notice(issue.started_at))
    topics = set(session.execute(select(SubscriberTopic.category)
                                 .where(SubscriberTopic.subscriber_id == subscriber.id)).scalars())
    chosen = tuple(i for i, c in enumerate(variants.full.comparisons) if c.category in topics)
    key = variants.keys(session, [(subscriber.id, mask_of(chosen) if topics else None)])[0]
    recipient = IssueRecipient(row.to_email, subscriber.name, subscriber.id, f"t{row.id}", subscriber.token_key)
    message, _msg_id = issue_message(settings, secret, variants.template(key), recipient, now)
    return message


def record_received(session: Session, sent_ids: list[int], done: datetime) -> int:
    """The ledger rows of the `latest` mails among `sent_ids` just recorded as sent: one delivery
    row each, `sent`, with the variant mask the reader's topics give (as at enqueue); the issue's
    counters (newsletter/tallies.py) add them as recipients and sent, in the same transaction."""
    if not sent_ids:
        return 0
    mail = TransactionalMail
    mask = variant_mask(mail.issue_id, mail.subscriber_id)
    rows = select(mail.issue_id, mail.subscriber_id, literal(DeliveryState.sent.value), literal(1), literal(done),
                  literal(done), mask) \
        .where(mail.id.in_(sent_ids), mail.kind == KIND, mail.issue_id.is_not(None), mail.subscriber_id.is_not(None))
    columns = ["issue_id", "subscriber_id", "state", "attempts", "created_at", "sent_at", "variant_mask"]
    statement = (insert_for(session, Delivery.__table__).from_select(columns, rows)
                 .on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
                 .returning(Delivery.issue_id))
    added = Counter(session.execute(statement).scalars())
    tallies.add(session, {(issue_id, name): n for issue_id, n in added.items() for name in ("recipients", "sent")})
    return sum(added.values())
