"""Readers joined and left per 15-minute slot (issue 18 point 4): the audience's growth per week
read from a few hundred rows instead of counted over every consent event on each view.

The counting is done by the database: triggers on consent_event (migration 0031) add one to the
slot of each "confirmed" or "subscribed" event (joined) and each "unsubscribed" one (left), and
take it off again when the event is deleted (a forgotten reader) or moved. No Python write path
can forget it: the web, the API, the CLI, row and bulk imports (COPY), the demo and the tests all
insert consent events, and a trigger sees each. A rolled-back transaction takes its counts with
it, so the tally is always the count over the events (`count_events`, the definition the tests
compare it with, in newsletter/reports/audience.py). Shards: on PostgreSQL each backend writes its own (pid mod 16), so concurrent
unsubscribes do not wait for each other's row lock; readers sum them.

Why 15 minutes: every time zone's offset from UTC is a multiple of it, so a week on the site's
calendar (newsletter/weeks.py) is always a whole number of slots.

Why a top-level module: newsletter/models.py lists it with the other tables, and reports/ reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, SmallInteger, Text, case, func, select
from sqlmodel import Field, Session, SQLModel

SLOT_SECONDS = 900
JOINED = ("confirmed", "subscribed")  # the signup link, or an import / `subscribers add`
LEFT = ("unsubscribed",)


class AudienceTally(SQLModel, table=True):
    __tablename__ = "audience_tally"

    slot: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))  # epoch s // 900
    side: str = Field(sa_column=Column(Text, primary_key=True))  # "joined" or "left"
    shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


def slot_of(moment: datetime) -> int | None:
    """The slot that starts at `moment`, or None if `moment` is not on a slot boundary."""
    seconds = moment.astimezone(UTC).timestamp()
    return int(seconds) // SLOT_SECONDS if seconds % SLOT_SECONDS == 0 else None


def count_slots(session: Session, bounds: list[tuple[int, int]]) -> dict[tuple[int, str], int]:
    """{(index in `bounds`, side): readers} for each [first slot, end slot) in `bounds` (in order,
    not overlapping): one statement over the tally rows of those slots."""
    table = AudienceTally.__table__
    span = case(*[(table.c.slot < end, n) for n, (_start, end) in enumerate(bounds)])
    rows = session.execute(select(span, table.c.side, func.sum(table.c.n))
                           .where(table.c.slot >= bounds[0][0], table.c.slot < bounds[-1][1])
                           .group_by(span, table.c.side))
    return {(n, side): int(total) for n, side, total in rows}
