"""`newsletter worker`: deliver every issue that is sending, in one or more OS processes.

Each process is a complete worker with its own engine, transport (SMTP pool) and worker id; they
coordinate only through the database: `outbox.claim` (FOR UPDATE SKIP LOCKED and a lease on
PostgreSQL) and the shared rate limiter. So `--processes N` on one host and workers on several
hosts are the same thing. SQLite allows one writer: there the worker always runs one process.

Stopping: SIGTERM or SIGINT sets a stop flag; the worker finishes and records the batch in hand,
gives back (`stopping.release`) any row it still holds, QUITs its SMTP sessions and exits 0. A second
signal stops at once: the transport starts no more messages (`abort`), and rows still held are
released on the way out (what the batch had sent is sent again, as after a crash). With `--processes N` the parent
forwards SIGTERM/SIGINT to its children and waits for them (pool.py: how they are started).

Heartbeat: each worker beats every `[delivery] heartbeat_seconds` from a small thread
(heartbeat.py); rows `sending` under a worker silent for 3 beats are claimed by the others at once
(a kill -9 costs seconds, not the 5-minute lease). `--until-idle` returns only when no row is
queued, held by any worker, or due for a retry.

Losing the database (PostgreSQL restarted, failed over, network cut), or any other error that
surfaces in the loop (a bug; every message's own failure is recorded on its row, never raised): it
is logged and the loop starts again after a short, growing pause (1 s doubling to 30 s),
until the database answers again; the engine's pool_pre_ping replaces the dead connections. A
batch that the transport accepted is recorded with retries (sender.record_results), so a restart
normally repeats nothing; if the database stays away longer, the batch's rows keep their lease and
are sent again after it expires (at most that batch twice, the same as after a crash).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from newsletter.config import Settings
from newsletter.db import session_scope, utcnow
from newsletter.delivery import claim_batch, outbox, queue, retry_side, stopping
from newsletter.delivery.heartbeat import Heartbeat
from newsletter.delivery import mailqueue, webhooks_out
from newsletter.delivery.mailqueue import send_queued
from newsletter.delivery.models import Delivery
from newsletter.delivery.ratelimit import SendRateLimiter
from newsletter.delivery.sender import DeliverReport, database_gone, deliver, worker_id
from newsletter.delivery.transports import make_transport
from newsletter.delivery.wakeup import Wakeup
from newsletter.issues.models import Issue
from newsletter.outgoing import WebhookDelivery
from newsletter.issues.render import warm_up
from newsletter.issues.states import IssueState
from newsletter.secret_key import load_secret_key
from newsletter.subscribers.models import TransactionalMail
from newsletter.text import first_line

log = logging.getLogger(__name__)


def sending_issues(engine: Engine) -> list[int]:
    with session_scope(engine) as session:
        return list(session.execute(
            select(Issue.id).where(Issue.state == IssueState.sending.value).order_by(Issue.id)
        ).scalars())


def _followup_modules():
    """The follow-up machinery (delivery/followup_outbox.py, followup_sender.py), imported when a
    pass first looks for follow-ups, after the sending issues, not with the worker: none of it is
    needed for an issue's first message, and its import (two SQLModel tables and the follow-up
    renderer, 30-40 ms of CPU) was on the way there (issue 18: a worker sending within 1 s of its
    start). Forked worker processes each import it then, after their first batch."""
    from newsletter.delivery import followup_outbox, followup_sender

    return followup_outbox, followup_sender


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM/SIGINT: finish the batch, then stop; a second signal: stop now."""

    def handler(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt(f"signal {signum} again: stopping now")
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _summary(report: DeliverReport) -> str:
    return (f"issue {report.issue_id}: {report.sent} sent, {report.retry} to retry, {report.failed} failed, "
            f"{report.skipped} skipped{' - finished' if report.finished else ''}")


def outstanding(engine: Engine, now) -> int:
    """Rows some worker could still work on now: queued, held (`sending`, by a live worker or a
    dead one) or retries due, of sending issues and of the transactional queue."""
    with session_scope(engine) as session:
        deliveries = 0
        # Issue by issue from the floor this process knows (claim_batch): no index holds a row's
        # state (migration 0032), and a count over every row of the sending issues, every beat
        # while the last batches were in flight, was most of the end of a send's database CPU.
        for issue_id in session.execute(select(Issue.id).where(Issue.state == IssueState.sending.value)).scalars():
            floor = claim_batch.known_floor(session, issue_id) or 0
            deliveries += session.execute(select(func.count()).where(
                Delivery.issue_id == issue_id, Delivery.id >= floor, queue.outstanding(Delivery, now))).scalar_one()
            if floor:  # below it, only the retries kept beside the walk (retry_side.py)
                deliveries += session.execute(select(func.count()).where(
                    *retry_side.pending_below(issue_id, floor), queue.outstanding(Delivery, now))).scalar_one()
        webhooks = session.execute(select(func.count()).where(queue.outstanding(WebhookDelivery, now))).scalar_one()
        followups = _followup_modules()[0].outstanding(session, now)
    return deliveries + webhooks + followups + mailqueue.outstanding(engine, now)


@dataclass
class _Worker:
    engine: Engine
    settings: Settings
    transport: object
    secret: str
    limiter: SendRateLimiter
    worker: str
    stop: threading.Event
    echo: Callable[[str], None]
    settled_at: float = float("-inf")  # time.monotonic() of the last _settle_cancelled


def _settle_cancelled(w: _Worker) -> None:
    """Every claim_batch.RESCAN_SECONDS at most: a killed worker's rows of a cancelled issue or
    follow-up become `skipped` once their lease or beat runs out (stopping.settle_cancelled,
    followup_outbox.settle_cancelled)."""
    if time.monotonic() - w.settled_at < claim_batch.RESCAN_SECONDS:
        return
    w.settled_at = time.monotonic()
    now = utcnow()
    stale = queue.stale_before(now, w.settings.delivery)
    with session_scope(w.engine) as session:
        settled = stopping.settle_cancelled(session, now, stale)
        followups = _followup_modules()[0].settle_cancelled(session, now, stale)
    if settled:
        w.echo(f"cancelled issues: {settled} rows of a stopped worker skipped")
    if followups:
        w.echo(f"cancelled follow-ups: {followups} rows of a stopped worker skipped")


def _one_pass(w: _Worker) -> bool:
    """Every sending issue, then the follow-ups and the transactional queue until they have
    nothing due; True when any row was handled."""
    worked = False
    for issue_id in sending_issues(w.engine):
        if w.stop.is_set():
            return worked
        try:
            report = deliver(w.engine, w.settings, w.transport, w.secret, issue_id, worker=w.worker, stop=w.stop,
                             limiter=w.limiter)
        except Exception as exc:
            if database_gone(exc):
                raise  # the loop's pause and retry (_trouble)
            # One issue's failure must not hold up the others, the follow-ups, the confirmations.
            log.exception("issue %s: its send failed this pass; the rest of the work goes on", issue_id)
            w.echo(f"issue {issue_id}: error: {first_line(exc)}; the rest of the work goes on")
            continue
        if report.sent or report.failed or report.retry or report.skipped:
            worked = True
            w.echo(_summary(report))
    _settle_cancelled(w)
    # Follow-ups (delivery/followup_sender.py): batch by batch, under the same rate limiter.
    followup_sender = _followup_modules()[1]
    while not w.stop.is_set():
        followups = followup_sender.send_batch(w.engine, w.settings, w.transport, w.secret, worker=w.worker,
                                               limiter=w.limiter)
        if not followups.worked:
            break
        worked = True
        w.echo(f"follow-ups: {followups.sent} sent, {followups.retry} to retry, {followups.failed} failed, "
               f"{followups.skipped} skipped")
    # Confirmation, welcome and goodbye mails queued by `serve --no-sender`; notices; test sends.
    while not w.stop.is_set():
        mails = send_queued(w.engine, w.settings, w.transport, w.secret, worker=w.worker)
        if not mails.worked:
            break
        worked = True
        w.echo(f"transactional: {mails.sent} sent, {mails.retry} to retry, {mails.failed} failed")
    # Outgoing webhooks (owners' URLs), the same claim idiom.
    while not w.stop.is_set():
        hooks = webhooks_out.send_due(w.engine, w.settings, worker=w.worker)
        if not hooks.worked:
            break
        worked = True
        w.echo(f"webhooks: {hooks.sent} delivered, {hooks.retry} to retry, {hooks.failed} failed")
    return worked


def _warm_up() -> bool:
    """Before the first idle wait: parse the issue templates, so the send this worker is woken for
    starts without that (a template error surfaces at the send, as before: only logged here)."""
    try:
        warm_up()
    except Exception as exc:
        log.warning("could not load the issue templates ahead of a send: %s", exc)
    return True


def _trouble(exc: Exception, pause: float, echo: Callable[[str], None]) -> float:
    """Log an error that surfaced in the loop; the next pause (1 s doubling to 30 s). The database
    away is expected (restarts); anything else is a bug, logged with its traceback, but the worker
    goes on: one bad row or one failed statement must not stop every send."""
    pause = min(max(pause * 2, 1.0), 30.0)
    first = first_line(exc)
    if database_gone(exc):
        log.warning("database unavailable (%s); trying again in %.0f s", first, pause)
        echo(f"database unavailable; retrying in {pause:.0f} s")
    else:
        log.exception("worker loop failed (%s); trying again in %.0f s", first, pause)
        echo(f"error: {first}; retrying in {pause:.0f} s")
    return pause


def run_worker(
    engine: Engine, settings: Settings, until_idle: bool = False, poll_seconds: float | None = None,
    echo: Callable[[str], None] = print, stop: threading.Event | None = None, worker: str | None = None,
) -> None:
    """The loop of one worker process: every sending issue, batch by batch, and the queued
    transactional mail, until stopped or, with `until_idle`, until nothing is left that a worker
    could do now: rows held by other workers are waited for (and taken over once their worker's
    heartbeat is stale); retries due later are not. Idle, it waits `poll_seconds` (default
    `[delivery] poll_seconds`) or, on PostgreSQL, until a NOTIFY says there is work (wakeup.py)."""
    stop = stop or threading.Event()
    worker = worker or worker_id()
    transport = make_transport(settings)
    w = _Worker(engine, settings, transport, load_secret_key(settings),
                SendRateLimiter.from_settings(engine, settings, transport.name), worker, stop, echo)
    beat = settings.delivery.heartbeat_seconds
    poll = settings.delivery.poll_seconds if poll_seconds is None else poll_seconds
    wakeup, warmed = Wakeup(engine, worker), False
    pause = 0.0  # after an error: 1 s, doubling up to 30 s; 0 once a pass succeeds
    try:
        with Heartbeat(engine, worker, beat):
            while not stop.is_set():
                try:
                    worked = _one_pass(w)
                    waiting = 0 if worked or not until_idle else outstanding(engine, utcnow())
                except Exception as exc:
                    pause = _trouble(exc, pause, echo)
                    stop.wait(pause)
                    continue
                pause = 0.0
                if until_idle and not worked and not waiting:
                    return
                if not worked:  # with until_idle: rows held elsewhere; look again a beat later
                    warmed = warmed or _warm_up()
                    wakeup.wait(beat if until_idle else poll, stop)
    finally:
        wakeup.close()
        _release(engine, worker, echo, transport)


def _release(engine: Engine, worker: str, echo: Callable[[str], None], transport) -> None:
    """On the way out: give back every row this worker still holds, in both queues. After a second
    signal a batch may still be on its way: its transport starts no more of it first (`abort`)."""
    abort = getattr(transport, "abort", None)
    if abort is not None:
        abort()
    try:
        with session_scope(engine) as session:
            released = (stopping.release(session, worker) + queue.release(session, TransactionalMail, worker)
                        + queue.release(session, WebhookDelivery, worker)
                        + _followup_modules()[0].release(session, worker))
        if released:
            echo(f"released {released} rows back to the queue")
    except Exception:
        log.warning("could not release this worker's rows; they are taken over when its heartbeat is stale",
                    exc_info=True)
    finally:
        transport.close()


# --- `issue send --wait`: deliver in the foreground with a progress bar ----------------------------

def deliver_in_foreground(engine: Engine, settings: Settings, issue_id: int, console) -> DeliverReport:
    """Deliver one issue in this process with a rich progress bar (sent, failed, rate, ETA).
    SIGINT/SIGTERM stop after the batch in hand, like the worker."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    with session_scope(engine) as session:
        total = outbox.pending(session, issue_id)
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    install_stop_handlers(stop)
    transport = make_transport(settings)
    started = time.monotonic()
    columns = (
        TextColumn("[bold]issue {task.fields[issue]}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[sent]} sent"), TextColumn("{task.fields[failed]} failed"),
        TextColumn("{task.fields[rate]:.1f}/s"), TextColumn("ETA"), TimeRemainingColumn(),
    )
    worker = worker_id()
    try:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("send", total=total, issue=issue_id, sent=0, failed=0, rate=0.0)

            def update(report: DeliverReport) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                bar.update(task, completed=report.sent + report.failed + report.skipped + report.retry,
                           sent=report.sent, failed=report.failed, rate=report.sent / elapsed)

            with Heartbeat(engine, worker, settings.delivery.heartbeat_seconds):
                report = deliver(engine, settings, transport, load_secret_key(settings), issue_id,
                                 progress=update, worker=worker, stop=stop)
            update(report)
    finally:
        try:
            with session_scope(engine) as session:
                stopping.release(session, worker)
        finally:
            transport.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return report
