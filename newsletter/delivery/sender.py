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

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Engine, and_, exists
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlmodel import Session

from newsletter import send_rate, tallies
from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import outbox, queue, retry_side, stopping
from newsletter.delivery.claim_batch import ClaimCursor
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.delivery.queue import worker_id
from newsletter.delivery.ratelimit import SendRateLimiter
from newsletter.delivery.start import StartResult, start_in, start_send  # noqa: F401 (re-exported)
from newsletter.delivery.transports.base import SendResult, Transport
from newsletter.delivery.variants import SendVariants
from newsletter.issues.links import IssueRecipient, issue_message
from newsletter.tokens import stamp_now
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState, transition
from newsletter.mail.dkim import signer_for
from newsletter.subscribers.service import suppress
from newsletter.text import first_line
from newsletter.wake import announce

log = logging.getLogger(__name__)
T = TypeVar("T")

# The first claim of each pass takes at most this many rows: the first message of a send leaves
# after 20 messages are built instead of 500 (~40 ms of CPU, seconds on a busy machine), and a
# worker that wakes for a send starts at once. The batches after it are full.
FIRST_BATCH = 20


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

    def add(self, sent: int, retry: int, failed: int, skipped: int) -> None:
        """One recorded batch."""
        self.sent, self.retry, self.failed = self.sent + sent, self.retry + retry, self.failed + failed
        self.skipped += skipped
        self.batches += 1


def _finish_if_done(session: Session, issue_id: int, now: datetime, floor: int | None = None) -> bool:
    """`sent` when no row is pending. `floor`: no row below it can be but the retries kept beside
    the walk (claim_batch.ClaimCursor, retry_side.py);
    from there the check skips the index entries the whole send left behind (a walk over every
    one of them at the end of each worker's send was a tenth of the last tenth's database CPU)."""
    pending = exists().where(Delivery.issue_id == issue_id, Delivery.state.in_(outbox.PENDING))
    none = ~pending
    if floor is not None:  # below the floor only kept rows can be pending
        none = and_(~pending.where(Delivery.id >= floor), ~exists().where(*retry_side.pending_below(issue_id, floor)))
    won = transition(session, issue_id, IssueState.sent, none, finished_at=now)
    if won:
        retry_side.forget(session, issue_id)
        # Workers that found nothing to claim while this send's last rows were held wait for them
        # (`--until-idle`: a heartbeat at a time): on commit they look again, and exit if all is done.
        announce(session)
    return won


@dataclass
class _Send:
    """What one worker needs through one issue's send: prepared once, before the first claim."""

    engine: Engine
    settings: Settings
    transport: Transport
    secret: str
    issue_id: int
    worker: str
    limiter: SendRateLimiter
    variants: SendVariants  # each reader's variant of the issue and its template (delivery/variants.py)
    signer: object
    mime: bool
    cursor: ClaimCursor  # where this worker's claims of the issue start (claim_batch.py)


def _prepare(engine: Engine, settings: Settings, transport: Transport, secret: str, issue_id: int,
             worker: str, limiter: SendRateLimiter | None, report: DeliverReport) -> _Send | None:
    """Compile the issue once; None (and the report filled in) when it is not sending."""
    with session_scope(engine) as session:
        issue = session.get(Issue, issue_id)
        if issue is None or issue.state != IssueState.sending.value:
            report.finished = issue is not None and issue.state == IssueState.sent.value
            report.counts = outbox.counts_of(session, issue_id, report.finished)
            return None
        variants = SendVariants.prepare(session, settings, issue)
    limiter = limiter if limiter is not None else SendRateLimiter.from_settings(engine, settings, transport.name)
    # The DKIM key is read once per send, not per message; JSON APIs take the fields, not MIME bytes.
    return _Send(engine, settings, transport, secret, issue_id, worker, limiter, variants, signer_for(settings),
                 getattr(transport, "needs_bytes", True), ClaimCursor(issue_id, worker))


def _claim(job: _Send, limit: int, now: datetime, report: DeliverReport) -> tuple[list, int]:
    """Claim up to `limit` due rows; returns the rows to send (id, attempts, subscriber id, email,
    name, token key, variant mask) and how many of the claim were skipped (unsubscribed or
    suppressed since enqueue)."""
    cfg = job.settings.delivery
    with session_scope(job.engine) as session:
        rows, skipped = job.cursor.claim(session, now, limit, timedelta(seconds=cfg.lease_seconds),
                                         queue.stale_before(now, cfg))
    report.skipped += skipped
    return rows, skipped


def _send(job: _Send, rows: list, now: datetime) -> list[tuple[tuple, SendResult]]:
    """Build each message in isolation (one that cannot be built gets its own retry result, the
    others go on) and hand the built ones to the transport; a transport that raises instead of
    answering per message gets a retry result for each of them. Returns (meta, result) per row,
    meta = (delivery id, attempts, Message-ID, email)."""
    built, answered = [], []
    # one template per claimed row, by its reader's variant (delivery/variants.py)
    templates = job.variants.templates_for(job.engine, [(row[0], row[2], row[6]) for row in rows])
    for failed in {id(t): t for t in templates.values() if isinstance(t, Exception)}.values():
        log.warning("issue %s: a variant could not be compiled, its readers' messages are not built: %r",
                    job.issue_id, failed)
    stamp = stamp_now()  # the batch's tokens share one signing time
    for delivery_id, attempts, subscriber_id, email, name, key, _mask in rows:
        template = templates[delivery_id]
        if isinstance(template, Exception):  # its variant could not be compiled (variants.py)
            answered.append(((delivery_id, attempts, None, email), queue.unbuildable(template)))
            continue
        recipient = IssueRecipient(email, name, subscriber_id, f"i{job.issue_id}-d{delivery_id}", key)
        try:
            # The template's builder (made once and kept on it, issue_mail) is looked up inside the
            # isolation: one that cannot be made (settings a header refuses) fails its own messages.
            message, msg_id = issue_message(job.settings, job.secret, template, recipient, now,
                                            signer=job.signer, mime=job.mime, stamp=stamp)
        except Exception as exc:
            log.warning("delivery %s: the message could not be built: %r", delivery_id, exc)
            answered.append(((delivery_id, attempts, None, email), queue.unbuildable(exc)))
            continue
        built.append(((delivery_id, attempts, msg_id, email), message))
    messages = [message for _meta, message in built]
    try:
        if not built:
            results = []
        elif getattr(job.transport, "halts", False):
            results = job.transport.send(messages, halt=stopping.Halt(job.engine, job.issue_id))
        else:
            results = job.transport.send(messages)
    except Exception as exc:
        log.exception("issue %s: the transport raised for a batch of %d", job.issue_id, len(built))
        results = [queue.transport_raised(exc, job.transport.name)] * len(built)
    return answered + [(meta, result) for (meta, _message), result in zip(built, results)]


# While a send runs, a young collection waits for this many new objects instead of 700: a batch
# (500 messages and their pieces, ~3,000 objects that live until it is recorded) then no longer
# sets off four young collections that walk it and pass it on to the older generations.
YOUNG_THRESHOLD = 20_000
_gc_lock = threading.Lock()


@dataclass
class _Collector:
    """The collector's state across the sends running in this process (threads may run several)."""

    sends: int = 0  # sends running now
    thresholds: tuple[int, ...] = (0, 0, 0)  # before the first of them began
    inherited: bool = False  # objects were frozen then (a forked worker): they stay frozen


_gc = _Collector()


@contextmanager
def _long_lived_frozen() -> Iterator[None]:
    """The cyclic garbage collector kept out of a send's way, for its duration.

    What is alive when the send starts (modules, SQLAlchemy's mappers, the compiled issue) is
    exempt from its passes (gc.freeze): a batch keeps 500 messages alive while it is built and
    sent, they survived the young collections, and every few batches that set off a full pass over
    every object of the process (py-spy --native: gc_collect_main under the message builder, ~15 us
    of a worker's CPU per message). And young collections wait for YOUNG_THRESHOLD new objects.
    Both are process-wide: undone when the last send running in the process ends (threads may run
    several), so cycles made before a send are still collected afterwards. A worker process forked
    from a warmed-up parent (delivery/pool.py) starts with the parent's objects frozen, so its
    collections neither scan nor copy them: those stay frozen (unfreezing would move them back
    into the passes, and a full pass would copy every inherited page)."""
    with _gc_lock:
        if _gc.sends == 0:
            _gc.thresholds, _gc.inherited = gc.get_threshold(), gc.get_freeze_count() > 0
            gc.freeze()
            gc.set_threshold(max(_gc.thresholds[0], YOUNG_THRESHOLD), *_gc.thresholds[1:])
        _gc.sends += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc.sends -= 1
            if _gc.sends == 0:
                gc.set_threshold(*_gc.thresholds)
                if not _gc.inherited:
                    gc.unfreeze()


def _finish(job: _Send, report: DeliverReport, clock: Callable[[], datetime]) -> None:
    """Move the issue to `sent` when nothing is pending (exactly one worker wins) and queue the
    editors' notice; fill in the report. A cancelled issue gets its remaining retries skipped once
    more: a batch whose transaction was already past its own skip when the cancel committed left
    its retries pending (the cancel's skip could not see them yet), and this runs after that
    batch's commit, in a transaction of its own."""
    with session_scope(job.engine) as session:
        won = _finish_if_done(session, job.issue_id, clock(), job.cursor.floor)
        state = session.get(Issue, job.issue_id).state
        if state == IssueState.cancelled.value:
            stopping.skip_cancelled(session, job.issue_id, cancelled=True)
        report.finished = won or state == IssueState.sent.value
        report.counts = outbox.counts_of(session, job.issue_id, report.finished, job.cursor.floor)
    if won:
        from newsletter.delivery.notices import notify_finished

        try:
            notify_finished(job.engine, job.settings, job.issue_id, report.counts, transport=job.transport,
                            secret=job.secret)
        except Exception:  # a notice must never undo or block a finished send
            log.exception("issue %s finished, but the editors' notice failed", job.issue_id)


def _wait(stop: threading.Event | None, seconds: float) -> None:
    if stop is not None:
        stop.wait(seconds)
    else:
        time.sleep(seconds)


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
    limiter: SendRateLimiter | None = None,
) -> DeliverReport:
    """Send every due delivery of a sending issue; returns when none is due any more, when the
    issue stops being `sending` (paused, cancelled), or when `stop` is set (after the batch in
    hand is recorded). Steps: prepare (compile once), then per batch: permits from the shared rate
    limiter, claim at most that many rows, send (each message built in isolation), record every
    result in one transaction; finish. Claims scan from the previous claim's lowest id, and from
    the lowest unfinished id every claim_batch.RESCAN_SECONDS: a retry that comes due below waits
    at most that long."""
    report = DeliverReport(issue_id)
    job = _prepare(engine, settings, transport, secret, issue_id, worker or worker_id(), limiter, report)
    if job is None:
        return report
    with _long_lived_frozen():
        _batches(job, report, clock, progress, stop)
    _finish(job, report, clock)
    return report


def _batches(job: _Send, report: DeliverReport, clock: Callable[[], datetime],
             progress: Callable[[DeliverReport], None] | None, stop: threading.Event | None) -> None:
    """`deliver`'s loop: batch after batch until none is due, the issue stops sending or `stop`."""
    cfg = job.settings.delivery
    while True:
        if stop is not None and stop.is_set():
            report.stopped = True
            break
        grant = job.limiter.acquire(min(cfg.batch_size, FIRST_BATCH) if report.batches == 0 else cfg.batch_size)
        if grant.count == 0:  # the window is used up by all workers together: wait for the next
            _wait(stop, grant.wait_seconds)
            continue
        now = clock()
        rows, skipped = _claim(job, grant.count, now, report)
        job.limiter.refund(grant, grant.count - len(rows))
        if not rows:
            if skipped:  # the whole batch was skipped: more may be due
                continue
            break
        try:
            outcomes = _send(job, rows, now)
        except BaseException:
            # Stopped at once (a second signal): nothing was recorded for this batch; give its
            # rows back instead of waiting for the lease (they carry the same Message-ID).
            with session_scope(job.engine) as session:
                stopping.release(session, job.worker, [row[0] for row in rows])
            raise
        done = clock()
        counted = record_results(job.engine, lambda session: _record(session, outcomes, done, job.transport.name,
                                                                     cfg, job.issue_id, job.worker),
                                 give_up_after=cfg.lease_seconds / 2)
        report.add(*counted)
        if progress:
            progress(report)


def _record(session: Session, outcomes: list[tuple[tuple, SendResult]], done: datetime, transport_name: str,
            cfg, issue_id: int, worker: str | None = None) -> tuple[int, int, int, int]:
    """Every result of one batch, in the caller's transaction (all of them or none); returns the
    numbers of rows it moved to sent, retry and failed, and skipped. Only rows `worker` still holds move (outbox.record),
    and the issue's counters add what moved, in the same transaction (newsletter/tallies.py)."""
    sent: list[tuple[int, str, str | None]] = []
    retries: list[tuple[int, datetime, str]] = []
    failures: list[tuple[int, str]] = []
    halted = [delivery_id for (delivery_id, *_meta), result in outcomes if result.not_started]
    for (delivery_id, attempts, msg_id, email), result in outcomes:
        if result.not_started:
            continue  # given back below: the issue was paused or cancelled mid-batch
        state, next_at = queue.settle(result, attempts, cfg, done)
        if state == DeliveryState.sent.value:
            sent.append((delivery_id, msg_id, result.provider_id))
        elif state == DeliveryState.retry.value:
            retries.append((delivery_id, next_at, result.error or ""))
        else:
            failures.append((delivery_id, result.error or "failed"))
            if result.hard_bounce:
                suppress(session, email, "hard_bounce", transport_name, result.error or "")
    moved = outbox.record(session, done, sent, retries, failures, worker)
    if halted and worker is not None:  # paused: queued again; cancelled: skipped (stopping.release)
        stopping.release(session, worker, halted)
    tallies.add(session, {(issue_id, "sent"): moved[DeliveryState.sent.value],
                          (issue_id, "failed"): moved[DeliveryState.failed.value]})
    send_rate.add(session, issue_id, done, moved[DeliveryState.sent.value])  # the progress page's rate
    skipped = stopping.skip_cancelled(session, issue_id)  # cancelled meanwhile: no retries
    # What moved, not what was tried: a row another worker took over meanwhile is its to count.
    return (moved[DeliveryState.sent.value], moved[DeliveryState.retry.value], moved[DeliveryState.failed.value],
            skipped)


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
            log.warning("recording a sent batch failed (%s); trying again in 1 s", first_line(exc))
            time.sleep(1.0)
