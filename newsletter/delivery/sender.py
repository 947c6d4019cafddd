"""Starting a send and delivering it.

Start: the issue moves draft/scheduled → sending and its outbox is filled in
the same transaction, so a send is either fully enqueued or not at all.
Deliver: claim a batch, build each message from the once-compiled issue, hand
the batch to the transport, record every result, commit; repeat. A delivery is
marked sent as soon as the transport accepted it, so after a crash only the
in-flight batch can be sent again (when its lease expires). Before each claim
the worker takes permits from the shared rate limiter (ratelimit.py), and it
claims no more rows than it got permits for.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, exists, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.delivery.ratelimit import RateLimiter
from newsletter.delivery.transports.base import Outcome, Transport
from newsletter.errors import UserError
from newsletter.issues.message import Recipient, build_template, issue_message
from newsletter.issues.models import Issue, IssueState
from newsletter.mail.dkim import signer_for
from newsletter.issues.render import compile_issue
from newsletter.issues.view import build_issue_view
from subscribers.models import Subscriber
from subscribers.service import suppress

log = logging.getLogger(__name__)
T = TypeVar("T")

# A worker scans for due rows from the lowest id of its previous claim (outbox.claim_from), and
# from the start of the queue this often, for retries and expired leases that came due below it.
RESCAN_SECONDS = 10.0


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
    batches: int = 0
    finished: bool = False
    stopped: bool = False  # a stop was asked for (SIGTERM/SIGINT) before the queue ran dry
    counts: dict[str, int] = field(default_factory=dict)


def _finish_if_done(session: Session, issue_id: int, now: datetime) -> bool:
    pending = exists().where(Delivery.issue_id == issue_id, Delivery.state.in_(outbox.PENDING))
    return bool(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.state == IssueState.sending.value, ~pending)
        .values(state=IssueState.sent.value, finished_at=now)
    ).rowcount)


def worker_id() -> str:
    """Names this process in `delivery.claimed_by`: host, pid and a nonce (pids get reused)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


def retry_delay(result, attempts: int, cfg) -> float:
    """The provider's Retry-After when it gave one, else exponential backoff with jitter."""
    retry_after = getattr(result, "retry_after", None)
    if retry_after is not None:
        return max(float(retry_after), 0.0)
    return backoff(attempts, cfg.retry_base_seconds, cfg.retry_max_seconds)


def deliver(
    engine: Engine,
    settings: Settings,
    transport: Transport,
    secret: str,
    issue_id: int,
    clock: Callable[[], datetime] = utcnow,
    progress: Callable[[DeliverReport], None] | None = None,
    *,
    worker: str | None = None,
    stop: threading.Event | None = None,
    limiter: RateLimiter | None = None,
) -> DeliverReport:
    """Send every due delivery of a sending issue; returns when none is due any more, when the
    issue stops being `sending` (paused, cancelled), or when `stop` is set (after the batch in
    hand is recorded). Each loop: permits from the shared rate limiter, one claim of at most that
    many rows, build and send the batch, record every result in one transaction. Claims scan from
    the previous claim's lowest id, and from the start every RESCAN_SECONDS: a retry that comes
    due below waits at most that long (its backoff is seconds to minutes anyway)."""
    report = DeliverReport(issue_id)
    cfg = settings.delivery
    worker = worker or worker_id()
    limiter = limiter if limiter is not None else RateLimiter.from_settings(engine, settings, transport.name)
    signer = signer_for(settings)  # the DKIM key is read once per process, not per message
    mime = getattr(transport, "needs_bytes", True)  # JSON APIs take the fields, not MIME bytes
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.state != IssueState.sending.value:
            report.finished = issue is not None and issue.state == IssueState.sent.value
            report.counts = outbox.counts(session, issue_id)
            return report
        template = build_template(settings, compile_issue(build_issue_view(session, settings, issue)))
    hint: int | None = None  # the lowest id of this worker's previous claim
    rescan_at = 0.0
    while True:
        if stop is not None and stop.is_set():
            report.stopped = True
            break
        grant = limiter.acquire(cfg.batch_size)
        if grant.count == 0:  # the window is used up by all workers together: wait for the next
            if stop is not None:
                stop.wait(grant.wait_seconds)
            else:
                time.sleep(grant.wait_seconds)
            continue
        now = clock()
        if time.monotonic() >= rescan_at:
            hint, rescan_at = None, time.monotonic() + RESCAN_SECONDS
        with session_scope(engine) as session:
            ids = outbox.claim_from(session, issue_id, now, grant.count, timedelta(seconds=cfg.lease_seconds),
                                    worker, hint)
            hint = ids[0] if ids else None
            skipped = outbox.skip_ineligible(session, ids)  # unsubscribed or suppressed since enqueue
            report.skipped += skipped
            rows = session.execute(
                select(Delivery.id, Delivery.attempts, Subscriber.id, Subscriber.email, Subscriber.name,
                       Subscriber.token_key)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.id.in_(ids), Delivery.state == DeliveryState.sending.value)
                .order_by(Delivery.id)
            ).all() if ids else []
        limiter.refund(grant, grant.count - len(rows))
        if not rows:
            if skipped:  # the whole batch was skipped: more may be due
                continue
            break
        try:
            messages, meta = [], []
            for delivery_id, attempts, subscriber_id, email, name, key in rows:
                recipient = Recipient(email, name, subscriber_id, f"i{issue_id}-d{delivery_id}", key)
                message, msg_id = issue_message(settings, secret, template, recipient, now, signer=signer,
                                                mime=mime)
                messages.append(message)
                meta.append((delivery_id, attempts, msg_id, email))
            results = transport.send(messages)
        except BaseException:
            # Nothing was recorded for this batch: give its rows back instead of waiting for the
            # lease (a transport may have sent some of them; they carry the same Message-ID).
            with session_scope(engine) as session:
                outbox.release(session, worker, [row[0] for row in rows])
            raise
        done = clock()
        sent, retry, failed, skipped = record_results(
            engine, lambda session: _record(session, meta, results, done, transport.name, cfg, issue_id),
            give_up_after=cfg.lease_seconds / 2)
        report.sent += sent
        report.retry += retry
        report.failed += failed
        report.skipped += skipped
        report.batches += 1
        if progress:
            progress(report)
    with session_scope(engine) as session:
        won = _finish_if_done(session, issue_id, clock())  # True in exactly one worker
        report.finished = won or session.get(Issue, issue_id).state == IssueState.sent.value
        report.counts = outbox.counts(session, issue_id)
    if won:
        from newsletter.notices import notify_finished

        try:
            notify_finished(engine, settings, issue_id, report.counts)
        except Exception:  # a notice must never undo or block a finished send
            log.exception("issue %s finished, but the editors' notice failed", issue_id)
    return report


def _record(session: Session, meta, results, done: datetime, transport_name: str, cfg,
            issue_id: int) -> tuple[int, int, int, int]:
    """Every result of one batch, in the caller's transaction (all of them or none); returns the
    numbers sent, to retry, failed and skipped."""
    sent: list[tuple[int, str, str | None]] = []
    retries: list[tuple[int, datetime, str]] = []
    failures: list[tuple[int, str]] = []
    for (delivery_id, attempts, msg_id, email), result in zip(meta, results):
        if result.outcome == Outcome.sent:
            sent.append((delivery_id, msg_id, result.provider_id))
        elif result.outcome == Outcome.retry and attempts < cfg.max_attempts:
            delay = retry_delay(result, attempts, cfg)
            retries.append((delivery_id, done + timedelta(seconds=delay), result.error or ""))
        else:
            failures.append((delivery_id, result.error or "failed"))
            if result.hard_bounce:
                suppress(session, email, "hard_bounce", transport_name, result.error or "")
    outbox.mark_sent(session, done, sent)
    outbox.mark_retry(session, retries)
    outbox.mark_failed(session, failures)
    skipped = outbox.skip_cancelled(session, issue_id)  # cancelled meanwhile: no retries
    return len(sent), len(retries), len(failures), skipped


def database_gone(exc: BaseException) -> bool:
    """An error that means "the database connection failed" (restart, failover, network), not a
    bug in a statement: worth trying again once the database answers."""
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def record_results(engine: Engine, write: Callable[[Session], T], give_up_after: float) -> T:
    """`write` in a transaction; when the database connection fails (a restart), tried again every
    second for up to `give_up_after` seconds: the messages are already out, and recording them
    before their lease ends is what keeps a restart from sending them twice."""
    deadline = time.monotonic() + give_up_after
    while True:
        try:
            with session_scope(engine) as session:
                return write(session)
        except DBAPIError as exc:
            if not database_gone(exc) or time.monotonic() > deadline:
                raise
            log.warning("recording a sent batch failed (%s); trying again in 1 s",
                        str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            time.sleep(1.0)
