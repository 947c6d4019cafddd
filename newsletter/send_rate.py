"""An issue's messages sent per 10 seconds, over the last few minutes: the send's rate, read from a few rows.

Why: the console's send progress (every second while someone watches it) showed "sent per minute
over the last 5 minutes" from a count of the issue's rows sent since then: an index range over
every row of the issue, each read to check its state and sent_at (no index may name either: every
claim and result then updates the row in place, migration 0032). A million-reader send read up to a
million rows a second for it. Here each recorded batch adds its messages sent to the row of its
10-second bucket (same transaction as the rows it counts: sender._record), and the rate is a sum
over at most 32 buckets per shard.

A ring, not a log: bucket b of an issue lives in slot b mod SLOTS (32 slots: 320 s, more than the
window), a slot holding an older bucket is overwritten; the table stays SLOTS x SHARDS rows per
issue however long the send. Shards as in tallies.py (one per process and thread): concurrent
workers do not queue on one row. The figure is the count over the rows to within the 10-second
bucket the window starts in (that one is counted in proportion to the part of it inside the
window, from the send's start at the earliest).

A top-level module: delivery/ writes here, workflow/ reads it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, SmallInteger, Text, case, column, func, select, table
from sqlmodel.sql.sqltypes import UTCDateTime
from sqlmodel import Field, Session, SQLModel

from newsletter.db import insert_for
from newsletter.tallies import writer_shard

BUCKET_SECONDS = 10
SLOTS = 32  # 320 s: the 5-minute window and the bucket it starts in


class IssueSendRate(SQLModel, table=True):
    __tablename__ = "issue_send_rate"

    issue_id: int = Field(sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True))
    slot: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    bucket: int = Field(sa_column=Column(BigInteger, nullable=False))  # epoch seconds // BUCKET_SECONDS
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


# `delivery` as far as `rebuild` reads it: this module knows only the tables (delivery/ writes here).
_delivery = table("delivery", column("issue_id", Integer), column("state", Text), column("sent_at", UTCDateTime()))


def _bucket(when: datetime) -> int:
    return int(when.timestamp()) // BUCKET_SECONDS


_ADD: dict[str, object] = {}  # dialect name -> the upsert, built once


def _upsert(session: Session):
    """INSERT … ON CONFLICT DO UPDATE that adds to the slot's bucket or starts it anew when the slot
    still holds an older one; built once per dialect and run with the values as parameters (built
    per recorded batch it was ~1 ms of a worker's CPU: ~2 us a message, as tallies.py found)."""
    dialect = session.get_bind().dialect.name
    if dialect not in _ADD:
        table = IssueSendRate.__table__
        statement = insert_for(session, table)
        newer = statement.excluded.bucket > table.c.bucket
        _ADD[dialect] = statement.on_conflict_do_update(
            index_elements=["issue_id", "slot", "shard"],
            set_={"n": case((statement.excluded.bucket == table.c.bucket, table.c.n + statement.excluded.n),
                            (newer, statement.excluded.n), else_=table.c.n),
                  "bucket": case((newer, statement.excluded.bucket), else_=table.c.bucket)})
    return _ADD[dialect]


def add(session: Session, issue_id: int, when: datetime, sent: int, shard: int | None = None) -> None:
    """`sent` messages of the issue recorded at `when`, in the caller's transaction."""
    if not sent:
        return
    bucket = _bucket(when)
    session.execute(_upsert(session), {"issue_id": issue_id, "slot": bucket % SLOTS, "bucket": bucket, "n": sent,
                                       "shard": writer_shard() if shard is None else shard})


def sent_since(session: Session, issue_id: int, since: datetime, now: datetime,
               started: datetime | None = None) -> float:
    """Messages of the issue sent from `since` to `now` (`started`: the send's start, before
    which nothing was sent); the bucket `since` falls in counts for its part inside the window."""
    first, last = _bucket(since), _bucket(now)
    table = IssueSendRate.__table__
    rows = session.execute(select(table.c.bucket, func.sum(table.c.n))
                           .where(table.c.issue_id == issue_id, table.c.bucket >= first, table.c.bucket <= last)
                           .group_by(table.c.bucket)).all()
    total = 0.0
    for bucket, n in rows:
        if bucket == first and bucket != last:
            end = (bucket + 1) * BUCKET_SECONDS
            begins = max(bucket * BUCKET_SECONDS, started.timestamp() if started else 0.0)
            total += int(n) * max(0.0, min(1.0, (end - since.timestamp()) / max(end - begins, 1e-9)))
        else:
            total += int(n)
    return total


def rebuild(session: Session, issue_ids: list[int]) -> None:
    """The ring recounted from the issues' sent rows of their last SLOTS buckets (for data written
    around `add`: tallies.rebuild)."""
    table = IssueSendRate.__table__
    for issue_id in issue_ids:
        session.execute(table.delete().where(table.c.issue_id == issue_id))
        sent = (_delivery.c.issue_id == issue_id, _delivery.c.state == "sent")
        latest = session.execute(select(func.max(_delivery.c.sent_at)).where(*sent)).scalar()
        if latest is None:
            continue
        counts: dict[int, int] = defaultdict(int)
        since = latest - timedelta(seconds=SLOTS * BUCKET_SECONDS)
        for (sent_at,) in session.execute(select(_delivery.c.sent_at).where(*sent, _delivery.c.sent_at >= since)):
            counts[_bucket(sent_at)] += 1
        for bucket, n in sorted(counts.items()):
            if bucket > _bucket(latest) - SLOTS:
                add(session, issue_id, datetime.fromtimestamp(bucket * BUCKET_SECONDS, tz=UTC), n, shard=0)
