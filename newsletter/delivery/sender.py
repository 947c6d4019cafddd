"""Starting a send and delivering it.

Start: the issue moves draft/scheduled → sending and its outbox is filled in
the same transaction, so a send is either fully enqueued or not at all.
Deliver: claim a batch, build each message from the once-compiled issue, hand
the batch to the transport, record every result, commit; repeat. A delivery is
marked sent as soon as the transport accepted it, so after a crash only the
in-flight batch can be sent again (when its lease expires).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, exists, select, update
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.delivery.transports.base import Outcome, Transport
from newsletter.errors import UserError
from newsletter.issues.message import Recipient, build_template, issue_message
from newsletter.issues.models import Issue, IssueState
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from subscribers.models import Subscriber
from subscribers.service import suppress

log = logging.getLogger(__name__)


@dataclass
class StartResult:
    issue: Issue
    started: bool  # False: it was already sending or sent
    enqueued: int


def start_send(engine: Engine, issue_id: int, now: datetime | None = None) -> StartResult:
    now = now or utcnow()
    with session_scope(engine) as session:
        moved = session.execute(
            update(Issue)
            .where(Issue.id == issue_id, Issue.state.in_((IssueState.draft.value, IssueState.scheduled.value)))
            .values(state=IssueState.sending.value, started_at=now)
        ).rowcount
        enqueued = outbox.enqueue(session, issue_id, now) if moved else 0
        issue = session.get(Issue, issue_id)
        if issue is None:
            raise UserError(f"issue {issue_id} does not exist (see `newsletter issue list`)")
        if not moved and issue.state == IssueState.cancelled.value:
            raise UserError(f"issue {issue_id} was cancelled; it cannot be sent")
    return StartResult(issue, bool(moved), enqueued)


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential with full jitter: spreads retries of many messages over the window."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(attempt - 1, 0))


@dataclass
class DeliverReport:
    issue_id: int
    sent: int = 0
    retry: int = 0
    failed: int = 0
    skipped: int = 0
    finished: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def _finish_if_done(session: Session, issue_id: int, now: datetime) -> bool:
    pending = exists().where(Delivery.issue_id == issue_id, Delivery.state.in_(outbox.PENDING))
    return bool(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.state == IssueState.sending.value, ~pending)
        .values(state=IssueState.sent.value, finished_at=now)
    ).rowcount)


def deliver(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    secret: str,
    issue_id: int,
    clock: Callable[[], datetime] = utcnow,
    progress: Callable[[DeliverReport], None] | None = None,
) -> DeliverReport:
    """Send every due delivery of a sending issue; returns when none is due any more."""
    report = DeliverReport(issue_id)
    cfg = settings.delivery
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.state != IssueState.sending.value:
            report.finished = issue is not None and issue.state == IssueState.sent.value
            report.counts = outbox.counts(session, issue_id)
            return report
        template = build_template(settings, compile_issue(build_issue_view(session, settings, issue)))
    while True:
        now = clock()
        with session_scope(engine) as session:
            report.skipped += outbox.skip_ineligible(session, issue_id, now)
            ids = outbox.claim(session, issue_id, now, cfg.batch_size, timedelta(seconds=cfg.lease_seconds))
            rows = session.execute(
                select(Delivery.id, Delivery.attempts, Subscriber.id, Subscriber.email, Subscriber.name)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.id.in_(ids))
                .order_by(Delivery.id)
            ).all() if ids else []
        if not rows:
            break
        messages, meta = [], []
        for delivery_id, attempts, subscriber_id, email, name in rows:
            recipient = Recipient(email, name, subscriber_id, f"i{issue_id}-d{delivery_id}")
            message, msg_id = issue_message(settings, secret, template, recipient, now)
            messages.append(message)
            meta.append((delivery_id, attempts, msg_id, email))
        results = transport.send(messages)
        done = clock()
        with session_scope(engine) as session:
            for (delivery_id, attempts, msg_id, email), result in zip(meta, results):
                if result.outcome == Outcome.sent:
                    outbox.mark_sent(session, delivery_id, done, msg_id, result.provider_id)
                    report.sent += 1
                elif result.outcome == Outcome.retry and attempts < cfg.max_attempts:
                    delay = backoff(attempts, cfg.retry_base_seconds, cfg.retry_max_seconds)
                    outbox.mark_retry(session, delivery_id, done + timedelta(seconds=delay), result.error or "")
                    report.retry += 1
                else:
                    outbox.mark_failed(session, delivery_id, result.error or "failed")
                    report.failed += 1
                    if result.hard_bounce:
                        suppress(session, email, "hard_bounce", "smtp", result.error or "")
        if progress:
            progress(report)
    with session_scope(engine) as session:
        report.finished = _finish_if_done(session, issue_id, clock()) or (
            session.get(Issue, issue_id).state == IssueState.sent.value
        )
        report.counts = outbox.counts(session, issue_id)
    if report.finished:
        log.info("issue %s finished: %s", issue_id, report.counts)
    return report
