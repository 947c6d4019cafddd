"""The transactional queue: confirmation, welcome and goodbye mails, editors' notices and issue
tests, one `transactional_mail` row each, claimed and retried exactly like issue deliveries
(queue.py: one claim statement, the `[delivery]` lease, attempts and backoff, heartbeats).

Each row is built in isolation, in its own session: a row that cannot be built (a header the
encoder refuses, a template error, an issue gone) gets a retry result of its own and fails for
good after `max_attempts`, while the rest of the batch is sent. Results are recorded only on rows
still `sending` under this worker, so a row taken over by another worker is not written twice.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select, update

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import queue
from newsletter.delivery.editor_mail import build_notice, build_test, test_template
from newsletter.delivery.models import PENDING, DeliveryState
from newsletter.delivery.onboarding import KIND as KIND_LATEST, NoLongerWanted, build_latest, record_received
from newsletter.delivery.sender import record_results
from newsletter.delivery.transactional import build_message
from newsletter.mail.message import OutgoingMessage
from newsletter.delivery.transports.base import Outcome, SendResult, Transport
from newsletter.issues.links import recipient_links
from newsletter.subscribers.models import Subscriber, TransactionalMail
from newsletter.subscribers.signup import CONFIRM_KINDS, new_confirmation_token
from newsletter.wake import announce

log = logging.getLogger(__name__)
# The result of a row with nothing to send any more (a new reader's latest issue after they left):
# it becomes `skipped`, neither sent nor retried.
SKIP = SendResult(Outcome.failed, error="skipped: the reader left before it went out")
Mail = TransactionalMail


MailReport = queue.BatchReport  # one report shape for every queue


def enqueue(engine: Engine, kind: str, addresses: list[str], issue_id: int, subject: str | None = None,
            body: str | None = None) -> list[int]:
    """Queue an editors' mail (`notice`, `held`, `test`) about an issue to each address; their ids.
    `subject` and `body` fix a notice's text when it is queued (`held`)."""
    with session_scope(engine) as session:
        return enqueue_in(session, kind, addresses, issue_id, subject, body)


def enqueue_in(session, kind: str, addresses: list[str], issue_id: int, subject: str | None = None,
               body: str | None = None) -> list[int]:
    """`enqueue` in the caller's transaction."""
    rows = [Mail(kind=kind, to_email=address, issue_id=issue_id, subject=subject, body=body)
            for address in addresses]
    session.add_all(rows)
    session.flush()
    announce(session)
    return [row.id for row in rows]


def _claim(engine: Engine, settings: Settings, now: datetime, limit: int, worker: str,
           ids: list[int] | None) -> list[int]:
    cfg = settings.delivery
    conditions = [Mail.state.in_(PENDING)] + ([Mail.id.in_(ids)] if ids is not None else [])
    with session_scope(engine) as session:
        return queue.claim(session, Mail, conditions, now, limit, timedelta(seconds=cfg.lease_seconds), worker,
                           queue.stale_before(now, cfg))


def _build_one(settings: Settings, secret: str, session, row: Mail, now: datetime,
               templates: dict) -> tuple[OutgoingMessage, dict]:
    """One row's message and the columns to store with its result (a confirmation's token hash)."""
    if row.kind in ("notice", "held"):
        return build_notice(session, settings, row, now), {}
    if row.kind == KIND_LATEST:
        return build_latest(session, settings, secret, row, now), {}
    if row.kind == "test":
        if row.issue_id not in templates:
            templates[row.issue_id] = test_template(session, settings, row)
        return build_test(settings, secret, templates[row.issue_id], row, now), {}
    subscriber = session.get(Subscriber, row.subscriber_id) if row.subscriber_id is not None else None
    if subscriber is None:
        raise LookupError(f"{row.kind} mail {row.id}: subscriber {row.subscriber_id} does not exist")
    values = {"email": row.to_email, "action_url": "", "preferences_url": "", "unsubscribe_url": ""}
    values.update(recipient_links(settings, secret, subscriber.id, subscriber.token_key))
    stored: dict = {}
    if row.kind in CONFIRM_KINDS:
        token, digest = new_confirmation_token(secret)
        stored = {"token_hash": digest, "expires_at": now + timedelta(hours=settings.web.confirm_ttl_hours)}
        values["action_url"] = f"{settings.site.base_url}/confirm/{token}"
    return build_message(settings, secret, row, subscriber.name, values, now), stored


def _build(engine: Engine, settings: Settings, secret: str, ids: list[int], now: datetime):
    """(id, attempts, message or None, columns to store, result when it could not be built)."""
    with session_scope(engine) as session:
        attempts = dict(session.execute(select(Mail.id, Mail.attempts).where(Mail.id.in_(ids))).all())
    built, templates = [], {}
    for row_id in ids:
        try:
            with session_scope(engine) as session:
                message, stored = _build_one(settings, secret, session, session.get(Mail, row_id), now, templates)
            built.append((row_id, attempts[row_id], message, stored, None))
        except NoLongerWanted as exc:  # nothing to send, nothing to retry: the row is skipped
            log.info("%s", exc)
            built.append((row_id, attempts[row_id], None, {}, SKIP))
        except Exception as exc:
            log.warning("transactional mail %s could not be built: %r", row_id, exc)
            built.append((row_id, attempts[row_id], None, {}, queue.unbuildable(exc)))
    return built


def _send(transport: Transport, built: list) -> list[tuple[int, int, dict, SendResult]]:
    messages = [message for _id, _attempts, message, _stored, _result in built if message is not None]
    try:
        results = iter(transport.send(messages) if messages else [])
    except Exception as exc:
        log.exception("the transport raised for %d transactional mails", len(messages))
        results = iter([queue.transport_raised(exc, transport.name)] * len(messages))
    return [(row_id, attempts, stored, result if message is None else next(results))
            for row_id, attempts, message, stored, result in built]


def _record(session, settings: Settings, worker: str, outcomes: list, done: datetime) -> Counter:
    """Every result of one batch in the caller's transaction; the number of rows per new state.
    Only rows still `sending` under this worker move (one taken over meanwhile is not ours)."""
    states: Counter = Counter()
    sent = []
    for row_id, attempts, stored, result in outcomes:
        state, next_at = queue.settle(result, attempts, settings.delivery, done)
        if result is SKIP:
            state = DeliveryState.skipped.value
        values = {"state": state, "lease_until": None, "next_attempt_at": next_at,
                  "last_error": None if state == DeliveryState.sent.value else (result.error or state)[:2000]}
        if state == DeliveryState.sent.value:
            values.update(stored, sent_at=done)
        moved = session.execute(update(Mail).where(Mail.id == row_id, Mail.state == DeliveryState.sending.value,
                                                   Mail.claimed_by == worker).values(**values)).rowcount
        if moved and state == DeliveryState.sent.value:
            sent.append(row_id)
        states[state] += 1
        if state == DeliveryState.failed.value:
            log.warning("transactional mail %s failed: %s", row_id, values["last_error"])
    record_received(session, sent, done)  # a new reader's latest issue: into the ledger (onboarding.py)
    return states


def send_queued(engine: Engine, settings: Settings, transport: Transport, secret: str, *,
                limit: int | None = None, now: datetime | None = None, worker: str | None = None,
                ids: list[int] | None = None) -> MailReport:
    """One batch: claim due rows (only `ids`, when given), build each, send, record. Safe to run in
    any number of processes and hosts."""
    now = now or utcnow()
    worker = worker or queue.worker_id()
    report = MailReport()
    claimed = _claim(engine, settings, now, limit or settings.delivery.batch_size, worker, ids)
    if claimed:
        outcomes = _send(transport, _build(engine, settings, secret, claimed, now))
        done = utcnow()
        # Recorded with retries while the database restarts, as issue deliveries are: the mails are out.
        states = record_results(engine, lambda session: _record(session, settings, worker, outcomes, done),
                                give_up_after=settings.delivery.lease_seconds / 2)
        report.sent, report.retry, report.failed = states["sent"], states["retry"], states["failed"]
    return report


def send_pending(engine: Engine, settings: Settings, transport: Transport, secret: str,
                 limit: int = 50, now: datetime | None = None) -> int:
    """One batch of due mails; returns how many were sent (the web's sender thread calls this)."""
    return send_queued(engine, settings, transport, secret, limit=limit, now=now).sent


def outstanding(engine: Engine, now: datetime) -> int:
    """Rows queued, held (`sending`) or due for a retry: work a worker waits for before idle."""
    with session_scope(engine) as session:
        return session.execute(select(func.count()).where(queue.outstanding(Mail, now))).scalar_one()
