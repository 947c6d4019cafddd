"""Delivering follow-ups: one batch per call, run by every worker's loop (delivery/worker.py)
beside the issues and the transactional queue, with the same machinery: permits from the shared
rate limiter, one claim statement with a lease (queue.py), heartbeats and take-over of a dead
worker's rows, each message built in isolation, results recorded with retries while the database
restarts (sender.record_results), backoff and max_attempts (queue.settle), hard bounces
suppressed. A message is marked sent as soon as the transport accepted it, so a crash can repeat
only the batch in flight, under the same Message-ID and reference (a file outbox overwrites it).

Each message is the follow-up compiled once per process (issues/followup_mail.py) and filled per
reader by issues/links.py `issue_message`: the same personal links, footer and List-Unsubscribe
headers as an issue. Its reference is `f<follow-up>-d<row>`.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, select

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import followup_outbox as fo, queue
from newsletter.delivery.followup_models import FollowupDelivery as Row
from newsletter.delivery.models import DeliveryState
from newsletter.delivery.ratelimit import SendRateLimiter
from newsletter.delivery.sender import record_results
from newsletter.delivery.transports.base import SendResult, Transport
from newsletter.issues.followup_mail import followup_template
from newsletter.issues.followup_models import Followup
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.mail.dkim import signer_for
from newsletter.subscribers.models import Subscriber
from newsletter.subscribers.service import suppress

log = logging.getLogger(__name__)


@dataclass
class FollowupReport(queue.BatchReport):
    """A batch's figures, with the rows skipped at claim time (reader gone since the start), and
    how long to wait when the rate limit's window was used up."""

    skipped: int = 0
    wait_seconds: float = 0.0

    @property
    def worked(self) -> int:
        return self.sent + self.retry + self.failed + self.skipped


def _claim(engine: Engine, settings: Settings, now: datetime, limit: int, worker: str, report: FollowupReport):
    """(row id, attempts, follow-up id, reader id, email, name, token key) of the rows to send."""
    cfg = settings.delivery
    with session_scope(engine) as session:
        ids = fo.claim(session, now, limit, timedelta(seconds=cfg.lease_seconds), worker,
                       queue.stale_before(now, cfg))
        report.skipped += fo.skip_ineligible(session, ids, now)
        return session.execute(
            select(Row.id, Row.attempts, Row.followup_id, Subscriber.id, Subscriber.email, Subscriber.name,
                   Subscriber.token_key)
            .join(Subscriber, Subscriber.id == Row.subscriber_id)
            .where(Row.id.in_(ids), Row.state == DeliveryState.sending.value).order_by(Row.id)
        ).all() if ids else []


def _templates(engine: Engine, settings: Settings, followup_ids: set[int]) -> dict:
    with session_scope(engine) as session:
        followups = session.execute(select(Followup).where(Followup.id.in_(followup_ids))).scalars().all()
        return {followup.id: followup_template(settings, followup) for followup in followups}


def _send(engine: Engine, settings: Settings, transport: Transport, secret: str, rows: list, now: datetime):
    """Build each message in isolation, hand the built ones to the transport: (meta, result) per
    row, meta = (row id, attempts, Message-ID, email)."""
    templates: dict = {}
    try:
        templates = _templates(engine, settings, {row[2] for row in rows})
    except Exception as exc:  # a template error: every row of the batch retries, none is lost
        log.warning("follow-up templates could not be compiled: %r", exc)
    signer, mime = signer_for(settings), getattr(transport, "needs_bytes", True)
    built, answered = [], []
    for row_id, attempts, followup_id, subscriber_id, email, name, key in rows:
        recipient = IssueRecipient(email, name, subscriber_id, f"f{followup_id}-d{row_id}", key)
        try:
            message, msg_id = issue_message(settings, secret, templates[followup_id], recipient, now,
                                            signer=signer, mime=mime)
        except Exception as exc:
            log.warning("follow-up delivery %s: the message could not be built: %r", row_id, exc)
            answered.append(((row_id, attempts, None, email), queue.unbuildable(exc)))
            continue
        built.append(((row_id, attempts, msg_id, email), message))
    try:
        results = transport.send([message for _meta, message in built]) if built else []
    except Exception as exc:
        log.exception("the transport raised for a batch of %d follow-ups", len(built))
        results = [queue.transport_raised(exc, transport.name)] * len(built)
    return answered + [(meta, result) for (meta, _message), result in zip(built, results)]


def _record(session, settings: Settings, worker: str, transport_name: str,
            outcomes: list[tuple[tuple, SendResult]], done: datetime) -> Counter:
    states: Counter = Counter()
    for (row_id, attempts, msg_id, email), result in outcomes:
        state, next_at = queue.settle(result, attempts, settings.delivery, done)
        values: dict = {"state": state, "next_attempt_at": next_at}
        if state == DeliveryState.sent.value:
            values.update(sent_at=done, message_id=msg_id, provider_message_id=result.provider_id, last_error=None)
        else:
            values["last_error"] = (result.error or state)[:2000]
            if state == DeliveryState.failed.value and result.hard_bounce:
                suppress(session, email, "hard_bounce", transport_name, result.error or "")
        fo.record(session, row_id, worker, values)
        states[state] += 1
    fo.skip_cancelled(session)  # cancelled meanwhile: no retries
    return states


def send_batch(engine: Engine, settings: Settings, transport: Transport, secret: str, *, worker: str | None = None,
               limiter: SendRateLimiter | None = None, now: datetime | None = None) -> FollowupReport:
    """One batch of due follow-up deliveries; then every follow-up with nothing left is `sent`.
    Safe in any number of processes and hosts. Returns nothing worked when the rate limit's
    window is used up (the worker's loop comes back later)."""
    worker = worker or queue.worker_id()
    report = FollowupReport()
    with session_scope(engine) as session:
        if not fo.any_sending(session):
            return report
    limiter = limiter if limiter is not None else SendRateLimiter.from_settings(engine, settings, transport.name)
    grant = limiter.acquire(settings.delivery.batch_size)
    if grant.count == 0:
        report.wait_seconds = grant.wait_seconds
        return report
    now = now or utcnow()
    rows = _claim(engine, settings, now, grant.count, worker, report)
    limiter.refund(grant, grant.count - len(rows))
    if rows:
        try:
            outcomes = _send(engine, settings, transport, secret, rows, now)
        except BaseException:  # stopped at once: give the rows back instead of waiting for the lease
            with session_scope(engine) as session:
                fo.release(session, worker, [row[0] for row in rows])
            raise
        done = utcnow()
        states = record_results(engine, lambda session: _record(session, settings, worker, transport.name,
                                                                outcomes, done),
                                give_up_after=settings.delivery.lease_seconds / 2)
        report.sent, report.retry, report.failed = states["sent"], states["retry"], states["failed"]
    with session_scope(engine) as session:
        fo.finish_done(session, utcnow())
    return report


def deliver_all(engine: Engine, settings: Settings, transport: Transport, secret: str) -> FollowupReport:
    """Batches until nothing is due now (`followup send --wait`, tests); the figures summed."""
    from newsletter.delivery.heartbeat import Heartbeat

    total = FollowupReport()
    worker = queue.worker_id()
    limiter = SendRateLimiter.from_settings(engine, settings, transport.name)
    try:
        with Heartbeat(engine, worker, settings.delivery.heartbeat_seconds):
            while True:
                batch = send_batch(engine, settings, transport, secret, worker=worker, limiter=limiter)
                if batch.wait_seconds:
                    time.sleep(batch.wait_seconds)
                    continue
                if not batch.worked:
                    return total
                total.sent, total.retry = total.sent + batch.sent, total.retry + batch.retry
                total.failed, total.skipped = total.failed + batch.failed, total.skipped + batch.skipped
    finally:
        with session_scope(engine) as session:
            fo.release(session, worker)
