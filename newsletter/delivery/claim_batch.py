"""A worker's claim of one issue's batch: the rows, the readers behind them, in as few reads as can be.

On PostgreSQL a batch is ONE statement: it claims the lowest due ids (FOR UPDATE SKIP LOCKED, as
queue.claim), joins each with its reader and returns what a message needs: (delivery id, attempts,
subscriber id, email, name, token key, variant mask) and whether the reader left (unsubscribed or
suppressed since enqueue); only when some did, a second statement moves their rows to `skipped`.
Before, every batch cost three more statements, each reading every claimed row again by its id:
the eligibility UPDATE (outbox.skip_ineligible), the row read joined with the readers
(outbox.claimed_rows) and the variant masks (variants.templates_for): 7.7 of 38 µs of the
database's CPU per message (BENCHMARKS.md). SQLite keeps that portable path: one writer, no
backends to spare.

Where the scan starts is the `ClaimCursor`'s business. A claim walks the issue's rows in id
order (ix_delivery_issue_id, or the primary key: one issue's ids are consecutive) and checks each
row's state on the row itself: no index holds the state, so that PostgreSQL updates the row in
place (HOT) at the claim and at the result (migration 0032: ~9 index writes per message before).
A scan that starts at the queue's first id would step over every finished row, and the rescan
from the start every few seconds that finds retries below the previous claim would grow with the
send (PostgreSQL's CPU per message rose 1.8× from the first tenth of a 200,000-reader send to the
last when it did). The cursor starts from the lowest id that is not final (its floor, found again
at each rescan), so a claim steps over the rows finished since the last rescan at most: the cost
stays flat. A retry is kept beside the walk (retry_side.py) and does not count for the floor: a
retry due in an hour far below the claims held the floor there, and each rescan walked every row
sent since; the claims now take the kept rows by their due time, at each rescan and whenever the
walk runs short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select, text, update
from sqlmodel import Session

from newsletter import tallies
from newsletter.delivery import heartbeat, outbox, retry_side
from newsletter.delivery.models import PENDING_SQL, Delivery, DeliveryState

# The cursor's floor is found again this often: the longest a retry, an expired lease or a row of a
# worker gone silent waits when it lies below where the claims start (they are found at once when
# the claims from the cursor's hint run short: the end of the queue).
RESCAN_SECONDS = 10.0
GONE_REASON = "unsubscribed or suppressed before sending"

_WHEN = Delivery.__table__.c.lease_until.type  # the columns' own type: aware UTC in, as the ORM binds it

# Which pending rows are due is queue.due written out (one CASE, see outbox.claim), checked on each
# row the walk of the issue's ids from `floor` reads.
# The shape keeps every plan, generic ones included (psycopg prepares a statement run 5 times), to
# index lookups of the claimed rows: `id = ANY(ARRAY(…))` is a key lookup per id, and the readers
# are joined to an UPDATE estimated at a few rows. A plain join of the picked ids with `delivery`
# and `subscriber` got, under a generic plan's guess of the LIMIT, hash joins over both whole
# tables: 100 ms per claim of 500 at 50,000 readers, growing with the list.
# Which rows a claim looks at: the walk of the issue's ids from `floor`, or the rows kept beside
# it (retry_side.py) whose entry is due: an index range of the entries, then a lookup per id.
_WALK = "p.id >= :floor"
_KEPT = ("p.id = ANY(ARRAY(SELECT r.delivery_id FROM delivery_retry AS r "
         "WHERE r.issue_id = :issue AND r.due_at <= :now))")
_CLAIM_PG_TEXT = f"""
    WITH claimed AS (
        UPDATE delivery AS d SET state = 'sending', lease_until = :lease_until, attempts = d.attempts + 1,
                                 claimed_by = :worker
        WHERE d.id = ANY(ARRAY(
            SELECT p.id FROM delivery AS p
            WHERE p.issue_id = :issue AND p.{PENDING_SQL} AND {{where}}
              AND EXISTS (SELECT 1 FROM issue WHERE issue.id = :issue AND issue.state = 'sending')
              AND CASE WHEN p.state = 'retry' THEN p.next_attempt_at <= :now
                       WHEN p.state = 'sending' THEN p.lease_until < :now OR p.claimed_by IN
                            (SELECT h.worker_id FROM worker_heartbeat AS h WHERE h.beat_at < :stale)
                       ELSE p.state = 'queued' END
            ORDER BY p.id LIMIT :limit
            FOR UPDATE OF p SKIP LOCKED))
        RETURNING d.id, d.attempts, d.subscriber_id, d.variant_mask
    )
    SELECT c.id, c.attempts, s.id, s.email, s.name, s.token_key, c.variant_mask,
           s.status <> 'active' OR EXISTS (SELECT 1 FROM suppression AS x WHERE x.email = s.email) AS gone
    FROM claimed AS c JOIN subscriber AS s ON s.id = c.subscriber_id
"""
_CLAIM_PG = {kept: text(_CLAIM_PG_TEXT.format(where=_KEPT if kept else _WALK)).bindparams(
    bindparam("now", type_=_WHEN), bindparam("stale", type_=_WHEN), bindparam("lease_until", type_=_WHEN))
    for kept in (False, True)}


def claim_rows(session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta, worker: str,
               floor: int | None, stale: datetime | None, kept: bool = False) -> tuple[list[tuple], int]:
    """Claim up to `limit` due rows of the issue with ids from `floor` (None: all), or with
    `kept` the rows kept beside the walk whose entry is due (retry_side.py), while the issue
    is `sending`; returns the rows to send, lowest id first, as (delivery id, attempts, subscriber
    id, email, name, token key, variant mask), and how many claimed rows were skipped instead
    (their reader left). The worker's heartbeat moves to `now` first (queue.claim says why)."""
    if limit <= 0:
        return [], 0
    if session.get_bind().dialect.name != "postgresql":
        return _claim_portable(session, issue_id, now, limit, lease, worker, floor, stale, kept)
    heartbeat.refresh(session, worker, now)
    result = session.connection().execute(_CLAIM_PG[kept], {
        "issue": issue_id, "floor": floor or 0, "now": now, "limit": limit, "worker": worker,
        "stale": stale if stale is not None else now - timedelta(days=36500),  # None: leases only
        "lease_until": now + lease})
    rows, gone = [], []
    for row in result:
        (gone if row[7] else rows).append(row[0] if row[7] else tuple(row[:7]))
    skipped = _skip(session, gone, worker) if gone else 0  # rare: a second statement only then
    tallies.add(session, {(issue_id, "skipped"): skipped})
    rows.sort()
    return rows, skipped


def _skip(session: Session, ids: list[int], worker: str) -> int:
    """The claimed rows whose reader left since the send started become `skipped`, not sent."""
    d = Delivery.__table__.c
    statement = (update(Delivery.__table__)
                 .where(outbox.among(session, d.id, ids), d.state == DeliveryState.sending.value, d.claimed_by == worker)
                 .values(state=DeliveryState.skipped.value, lease_until=None, last_error=GONE_REASON))
    return session.connection().execute(statement).rowcount or 0


def _claim_portable(session: Session, issue_id: int, now: datetime, limit: int, lease: timedelta, worker: str,
                    floor: int | None, stale: datetime | None, kept: bool) -> tuple[list[tuple], int]:
    """The same in the statements any database runs: claim, skip the readers who left, read the
    rest with their readers and variant masks."""
    ids = outbox.claim(session, issue_id, now, limit, lease, worker, from_id=floor, stale=stale, kept=kept)
    skipped = outbox.skip_ineligible(session, ids, issue_id)
    rows = outbox.claimed_rows(session, ids)
    if not rows:
        return [], skipped
    masks = dict(session.execute(select(Delivery.id, Delivery.variant_mask)
                                 .where(outbox.among(session, Delivery.id, [row[0] for row in rows]))).all())
    return [(*row, masks.get(row[0])) for row in rows], skipped


def lowest_pending(session: Session, issue_id: int, floor: int | None) -> int | None:
    """The lowest id of the issue's rows that are not final (queued, sending or retry, due or not)
    and not kept beside the walk (retry_side.py) from `floor` on; past the issue's last row when
    none is left (the walk from `floor` was every row to its end: the next one starts after it).
    No final row ever becomes pending again, a kept row stays kept until it is final, and new rows
    get higher ids: the walks from here and the kept rows find all there is to find."""
    statement = (select(Delivery.id)
                 .where(Delivery.issue_id == issue_id, text(f"delivery.{PENDING_SQL}"), retry_side.not_kept())
                 .order_by(Delivery.id).limit(1))
    if floor is not None:
        statement = statement.where(Delivery.id >= floor)
    found = session.execute(statement).scalar()
    if found is not None:
        return found
    last = session.execute(select(func.max(Delivery.id)).where(Delivery.issue_id == issue_id)).scalar()
    return last + 1 if last is not None and last + 1 > (floor or 0) else floor


# The floor this process last found per (database, issue): a worker starts a new cursor for every
# round of its loop (`deliver` per sending issue), and a first floor found from the issue's first id
# walks every row finished so far (no index holds the state, migration 0032): at the end of a send,
# a worker polling while the other's last batch was in flight walked the whole issue each time
# (PostgreSQL's CPU per message of the last tenth 4x the first's, 200,000 readers). A floor stays
# true for good: no final row becomes pending again, and new rows get higher ids.
_FLOORS: dict[tuple[str, int], int] = {}


def _floor_key(session: Session, issue_id: int) -> tuple[str, int]:
    return session.get_bind().url.render_as_string(hide_password=True), issue_id


def known_floor(session: Session, issue_id: int) -> int | None:
    """The floor this process last found for the issue (None: none yet): no row below it is pending."""
    return _FLOORS.get(_floor_key(session, issue_id))


@dataclass
class ClaimCursor:
    """Where one worker's claims of one issue start. `floor`: the lowest id not final and not kept
    beside the walk (retry_side.py) at the last rescan; below it only kept rows can be due.
    `hint`: the lowest id the walk took at the previous claim; the rows between the two are mostly
    finished, so a claim starts at the hint, and at the floor when that found too few (the
    queue's end) or at a rescan, every RESCAN_SECONDS, when the floor is found again. The kept
    rows whose due time came are claimed at each rescan (first) and whenever the walk runs short.
    An expired lease below the hint is taken within RESCAN_SECONDS, or as soon as the queue above
    it runs dry."""

    issue_id: int
    worker: str
    floor: int | None = None
    hint: int | None = None
    rescan_at: float = 0.0

    def _rescan(self, session: Session, now: datetime) -> None:
        """The floor found again (from the highest this process knows), the kept rows that are
        final swept."""
        key = _floor_key(session, self.issue_id)
        known = max(self.floor or 0, _FLOORS.get(key, 0)) or None
        self.floor = lowest_pending(session, self.issue_id, known)
        if self.floor is not None:
            _FLOORS[key] = max(self.floor, _FLOORS.get(key, 0))
        retry_side.sweep(session, self.issue_id, now)
        self.hint, self.rescan_at = None, time.monotonic() + RESCAN_SECONDS

    def claim(self, session: Session, now: datetime, limit: int, lease: timedelta,
              stale: datetime | None) -> tuple[list[tuple], int]:
        """claim_rows from the hint (or the floor), and of the kept rows; returns the rows and how
        many were skipped."""
        rescan = time.monotonic() >= self.rescan_at
        rows: list[tuple] = []
        skipped = 0

        def take(start: int | None, kept: bool = False) -> list[tuple]:
            nonlocal rows, skipped
            more, more_skipped = claim_rows(session, self.issue_id, now, limit - len(rows) - skipped, lease,
                                            self.worker, start, stale, kept)
            rows, skipped = sorted(rows + more), skipped + more_skipped
            return more

        if rescan:
            self._rescan(session, now)
            take(None, kept=True)
        walked = take(self.hint if self.hint is not None else self.floor)
        if self.hint is not None and len(rows) + skipped < limit:  # the first's are taken now
            if not rescan:
                # The queue's end: the floor found again before walking from it. From a floor up
                # to RESCAN_SECONDS old, every short claim, the finishing check and the final
                # counts each walked the rows sent since (the last tenth's extra database CPU).
                self._rescan(session, now)
            walked += take(self.floor)
        if not rescan and len(rows) + skipped < limit:
            take(None, kept=True)
        # The hint follows the walk alone: a kept row's id would start the next walk far below.
        self.hint = min(row[0] for row in walked) if walked else None
        return rows, skipped
