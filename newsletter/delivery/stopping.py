"""What a stop, a pause or a cancel leaves in an issue's outbox: rows a stopping worker gives
back, rows of a cancelled issue skipped; and the check that halts a batch mid-send (`Halt`).

Kept apart from outbox.py (the claims and records of a running send) as the two ends of a send
that is interrupted: a worker stopped before the transport answered gives its batch back, and a
cancelled issue's rows that nobody will claim again become `skipped`, so its counts settle.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, and_, bindparam, exists, false, or_, select, update
from sqlmodel import Session

from newsletter import tallies
from newsletter.delivery import claim_batch, queue, retry_side
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.issues.models import Issue
from newsletter.issues.states import IssueState

# How often, at most, a batch being sent asks whether its issue is still `sending`.
HALT_CHECK_SECONDS = 1.0


@dataclass
class Halt:
    """Asked by the transport before each message (Transport.halts): True once the issue is no
    longer `sending` (paused, cancelled). A pause used to take effect at the next claim, i.e. after
    the whole batch in hand: with the default 500 a list of up to 500 readers could not be stopped
    at all (outside trial). One indexed read a second at most, from whichever pool thread asks; the
    first a second after the batch's claim, which found the issue `sending` (a batch of 500 into
    a fast server is done before: no read at all)."""

    engine: Engine
    issue_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    checked_at: float = field(default_factory=time.monotonic)
    stopped: bool = False

    def __call__(self) -> bool:
        if self.stopped or time.monotonic() - self.checked_at < HALT_CHECK_SECONDS:
            return self.stopped
        with self.lock:
            if time.monotonic() - self.checked_at >= HALT_CHECK_SECONDS:
                with self.engine.connect() as connection:
                    state = connection.execute(select(Issue.state).where(Issue.id == self.issue_id)).scalar()
                self.stopped, self.checked_at = state != IssueState.sending.value, time.monotonic()
        return self.stopped


CANCELLED_REASON = "issue cancelled before this delivery was sent"
# A dead worker's batch: the server may have taken some of it before the worker died unrecorded.
ABANDONED_REASON = "issue cancelled while a worker that stopped held this delivery: it may have gone out"


def release(session: Session, worker_id: str, ids: list[int] | None = None) -> int:
    """Give rows this worker still holds (`sending`, claimed by it) back to the queue, e.g. when it
    stops before handing them to the transport. Rows it already recorded never match. Only issues
    that can hold a `sending` row are looked at (a sent issue has none: it became sent when none
    was pending): no index holds a row's state or worker (migration 0032), and every worker's exit
    scanned every issue's rows. A cancelled issue's rows become `skipped` instead: no worker
    claims that issue again, and given back they stayed `queued` for good (an outside review:
    a cancel, then the worker stopped at once mid-batch)."""
    live = _where_held(session, (IssueState.sending.value, IssueState.paused.value), ids)
    return _skip_held(session, worker_id, ids) + queue.release(session, Delivery, worker_id, ids, live)


def _where_held(session: Session, states: tuple[str, ...], ids: list[int] | None):
    """Where rows this process claimed of the issues in `states` can be. With `ids`, those rows of
    such issues. Without, a worker's exit: of each issue, the rows from the floor this process
    knows (claim_batch.known_floor: no pending row lies below it but the ones kept beside the walk)
    and the kept ones; an issue it never claimed from has no floor here and none of its rows. No
    index holds a row's state or worker (migration 0032): the exit read every row of the issue, a
    million when one worker left while the other was finishing the send (the backends' last tenth)."""
    if ids is not None:
        return Delivery.issue_id.in_(select(Issue.id).where(Issue.state.in_(states)))
    parts = []
    for issue_id in session.execute(select(Issue.id).where(Issue.state.in_(states))).scalars():
        floor = claim_batch.known_floor(session, issue_id)
        if floor is not None:
            parts.append(and_(Delivery.issue_id == issue_id,
                              or_(Delivery.id >= floor, Delivery.id.in_(retry_side.kept_ids(issue_id)))))
    return or_(false(), *parts)


def _skip_held(session: Session, worker_id: str, ids: list[int] | None) -> int:
    """The rows this worker holds of cancelled issues: `skipped`, counted in their issues' tallies."""
    if ids is not None and not ids:
        return 0
    table = Delivery.__table__
    statement = (update(table)
                 .where(table.c.state == DeliveryState.sending.value, table.c.claimed_by == worker_id,
                        _where_held(session, (IssueState.cancelled.value,), ids))
                 .values(state=DeliveryState.skipped.value, lease_until=None, claimed_by=None,
                         last_error=CANCELLED_REASON)
                 .returning(table.c.issue_id))
    if ids is not None:
        statement = statement.where(table.c.id.in_(ids))
    per_issue = Counter(session.execute(statement).scalars())
    tallies.add(session, {(issue_id, "skipped"): count for issue_id, count in per_issue.items()})
    return sum(per_issue.values())


def settle_cancelled(session: Session, now: datetime, stale: datetime) -> int:
    """Rows of cancelled issues still `sending` under a worker that is gone (its lease over, or no
    beat since `stale`: queue.due's test) become `skipped`. A live worker settles its own batch
    when it records it (sender._record); a killed one never does, and nobody claims a cancelled
    issue's rows, so they stayed `sending` and the issue's counts never settled (outside review).
    Only issues whose counters leave rows pending are looked at: the counters are a few rows per
    issue, the deliveries a scan of the issue's ids, paid only while something is left to settle."""
    cancelled = list(session.execute(select(Issue.id).where(Issue.state == IssueState.cancelled.value)).scalars())
    unsettled = [issue_id for issue_id, figures in tallies.read(session, cancelled).items()
                 if tallies.Deliveries.of(figures).pending > 0]
    per_issue: dict[tuple[int, str], int] = {}
    for issue_id in unsettled:
        statement = (update(Delivery)
                     .where(Delivery.issue_id == issue_id, Delivery.state == DeliveryState.sending.value,
                            queue.due(Delivery, now, stale))
                     .values(state=DeliveryState.skipped.value, lease_until=None, claimed_by=None,
                             last_error=ABANDONED_REASON)
                     .execution_options(synchronize_session=False))
        per_issue[(issue_id, "skipped")] = session.execute(statement).rowcount or 0
    tallies.add(session, per_issue)
    return sum(per_issue.values())


# Built once (see skip_cancelled): SQLAlchemy reuses its cache key and compiled form.
_SKIP_CANCELLED = (
    update(Delivery.__table__)
    .where(Delivery.__table__.c.issue_id == bindparam("issue"),
           exists().where(Issue.__table__.c.id == bindparam("issue"),
                          Issue.__table__.c.state == IssueState.cancelled.value),
           Delivery.__table__.c.state.in_((DeliveryState.queued.value, DeliveryState.retry.value)))
    .values(state=DeliveryState.skipped.value, next_attempt_at=None, last_error=bindparam("reason"))
)


def skip_cancelled(session: Session, issue_id: int, reason: str = CANCELLED_REASON, cancelled: bool = False) -> int:
    """Queued and retry deliveries of a cancelled issue become `skipped`, in one UPDATE (a no-op
    unless the issue is cancelled, so a worker can run it after every batch; built once: per batch
    it cost ~0.5 ms of a worker's CPU). When rows were skipped, or the caller knows the issue is
    `cancelled`, its entries beside the claims' walk (retry_side.py) go too: nothing claims it again."""
    skipped = session.connection().execute(_SKIP_CANCELLED, {"issue": issue_id, "reason": reason}).rowcount or 0
    tallies.add(session, {(issue_id, "skipped"): skipped})
    if skipped or cancelled:
        retry_side.forget(session, issue_id)
    return skipped
