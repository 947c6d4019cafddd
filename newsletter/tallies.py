"""Per-issue counters (issue 18 point 4): the statistics' big figures read from a few rows instead
of counted over a million deliveries and their events on every page view.

Why counters, and why exact: an issue's recipients, sent, failed, skipped, delivered, bounced,
complained, opens and clicks were each an index scan over every delivery or event of the issue
(0.6-2.5 s per issue at a million readers, more while a send dirties the pages). Each is now a row
`issue_tally (issue_id, name, shard)` incremented in the same transaction as the change it counts,
by the one function that makes that change: `outbox.enqueue` (recipients), `sender._record` (sent,
failed and the cancelled remainder skipped), `outbox.skip_ineligible`/`stopping.skip_cancelled` and `stopping.release` (skipped),
`feedback.rules.apply_event` (a delivery's first event of a kind), `web.tracking.record` (a
reader's first open or click of the issue), and `untally_subscribers` before a reader's rows are
deleted (forget, purge). A rolled-back change takes its increment with it, so a figure is always
the count over the raw rows (`raw_counts`, the definition; tests/reports/test_tallies.py compares
the two after a real send). No nightly job: the counters are current at every commit.

Why shards: every worker records its batches into the same issue's "sent" row; one row would
serialise their transactions on its lock. Each process and thread writes its own shard (16),
and readers sum them. Rows of one transaction are always written in (issue, name, shard) order,
so two transactions never wait for each other in a cycle.

Why a top-level module: delivery/, feedback/, web/ and subscribers/ all write here, and
subscribers/ must not import the others (tests/test_layout.py); this module knows only the tables.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, SmallInteger, Text, func, select, text
from sqlmodel import Field, Session, SQLModel

from newsletter.db import insert_for

SHARDS = 16
DELIVERY_FIGURES = ("recipients", "sent", "failed", "skipped")
EVENT_FIGURES = {"delivered": ("delivered",), "complained": ("complained",),
                 "bounced": ("bounced_hard", "bounced_soft")}  # a soft then a hard bounce: one bounced delivery
TRACKING_FIGURES = {"open": "opens", "click": "clicks"}
NAMES = (*DELIVERY_FIGURES, *EVENT_FIGURES, *TRACKING_FIGURES.values())


class IssueTally(SQLModel, table=True):
    __tablename__ = "issue_tally"

    issue_id: int = Field(sa_column=Column(Integer, ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True))
    name: str = Field(sa_column=Column(Text, primary_key=True))
    shard: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))
    n: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


def writer_shard() -> int:
    """The shard this process and thread write (also send_rate.py's): concurrent workers add to
    different rows instead of queueing on one."""
    return (os.getpid() * 31 + threading.get_ident()) % SHARDS


_ADD: dict[str, object] = {}  # dialect name -> the upsert, built once


def _upsert(session: Session):
    """INSERT … ON CONFLICT DO UPDATE n = n + excluded.n for one row per parameter set, built once
    per dialect: built per call (a multi-row VALUES made for each batch) it cost ~0.6 ms of a
    worker's CPU per recorded batch."""
    dialect = session.get_bind().dialect.name
    if dialect not in _ADD:
        statement = insert_for(session, IssueTally.__table__)
        _ADD[dialect] = statement.on_conflict_do_update(
            index_elements=["issue_id", "name", "shard"], set_={"n": IssueTally.__table__.c.n + statement.excluded.n})
    return _ADD[dialect]


def add(session: Session, changes: dict[tuple[int, str], int], shard: int | None = None) -> None:
    """Add each (issue id, figure name) -> delta, in the caller's transaction."""
    rows = [{"issue_id": issue_id, "name": name, "shard": writer_shard() if shard is None else shard, "n": delta}
            for (issue_id, name), delta in sorted(changes.items()) if delta]
    if not rows:
        return
    session.execute(_upsert(session), rows[0] if len(rows) == 1 else rows)  # autoflush: an issue added just now


def read(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """{issue id: {figure: count}} for the issues `ids` (a figure never counted is absent: 0)."""
    result: dict[int, dict[str, int]] = defaultdict(dict)
    if ids:
        table = IssueTally.__table__
        for issue_id, name, total in session.execute(
                select(table.c.issue_id, table.c.name, func.sum(table.c.n)).where(table.c.issue_id.in_(ids))
                .group_by(table.c.issue_id, table.c.name)):
            result[issue_id][name] = int(total)
    return result


@dataclass(frozen=True)
class Deliveries:
    """An issue's deliveries as its counters give them; `pending` (queued, sending or retry: not
    final yet) is what the recipients leave after the final states, so nobody counts rows by
    state for it (no index holds a delivery's state, migration 0032)."""

    recipients: int
    sent: int
    failed: int
    skipped: int

    @classmethod
    def of(cls, figures: dict[str, int]) -> Deliveries:
        """From one issue's entry of `read` (a figure never counted is 0)."""
        return cls(*(figures.get(name, 0) for name in DELIVERY_FIGURES))

    @property
    def pending(self) -> int:
        return self.recipients - self.sent - self.failed - self.skipped


def final_counts(session: Session, issue_id: int) -> dict[str, int]:
    """The issue's deliveries in a final state, {state: count} for sent, failed and skipped
    (those never counted left out): the counters' part of a count by state."""
    figures = read(session, [issue_id]).get(issue_id, {})
    return {state: figures[state] for state in ("sent", "failed", "skipped") if figures.get(state)}


def serialise(session: Session, *key: object) -> None:
    """On PostgreSQL, wait for any other transaction counting the same thing (`key`) to end, so that
    "is this the first event of its kind?" sees that transaction's row. SQLite has one writer."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": "tally:" + ":".join(str(part) for part in key)})


def count_first_event(session: Session, event_id: int, delivery_id: int | None, issue_id: int | None,
                      kind: str) -> None:
    """After webhook_event row `event_id` was inserted: +1 to its figure when it is the delivery's
    first event of that figure (delivered, complained, or either bounce)."""
    figure = next((name for name, kinds in EVENT_FIGURES.items() if kind in kinds), None)
    if figure is None or delivery_id is None or issue_id is None:
        return
    serialise(session, "event", delivery_id, figure)
    kinds = EVENT_FIGURES[figure]
    earlier = session.execute(text(
        "SELECT 1 FROM webhook_event WHERE delivery_id = :d AND id <> :e AND kind IN ("
        + ", ".join(f"'{k}'" for k in kinds) + ") LIMIT 1"), {"d": delivery_id, "e": event_id}).first()
    if earlier is None:
        add(session, {(issue_id, figure): 1})


def count_first_tracking(session: Session, issue_id: int, subscriber_id: int, kind: str, link: int) -> None:
    """After a tracking_event row was inserted: +1 opens or clicks when it is the reader's first of
    that kind for the issue (a reader clicking two links is one click)."""
    figure = TRACKING_FIGURES.get(kind)
    if figure is None:
        return
    serialise(session, "tracking", issue_id, subscriber_id, kind)
    earlier = session.execute(text(
        "SELECT 1 FROM tracking_event WHERE issue_id = :i AND subscriber_id = :s AND kind = :k AND link <> :l "
        "LIMIT 1"), {"i": issue_id, "s": subscriber_id, "k": kind, "l": link}).first()
    if earlier is None:
        add(session, {(issue_id, figure): 1})


def _subscriber_figures(session: Session, where: str, params: dict) -> dict[tuple[int, str], int]:
    """What the readers matched by `where` (on alias d, their deliveries; t, their tracking
    events) contribute to each issue's counters: the same definitions as raw_counts."""
    found: dict[tuple[int, str], int] = defaultdict(int)
    for issue_id, state, count in session.execute(text(
            f"SELECT d.issue_id, d.state, count(*) FROM delivery d WHERE {where.format(a='d')} "
            "GROUP BY d.issue_id, d.state"), params):
        found[(issue_id, "recipients")] += count
        if state in DELIVERY_FIGURES:
            found[(issue_id, state)] += count
    for figure, kinds in EVENT_FIGURES.items():
        for issue_id, count in session.execute(text(
                "SELECT e.issue_id, count(DISTINCT e.delivery_id) FROM webhook_event e JOIN delivery d ON "
                f"d.id = e.delivery_id WHERE {where.format(a='d')} AND e.issue_id IS NOT NULL AND e.kind IN ("
                + ", ".join(f"'{k}'" for k in kinds) + ") GROUP BY e.issue_id"), params):
            found[(issue_id, figure)] += count
    for issue_id, kind, count in session.execute(text(
            "SELECT issue_id, kind, count(DISTINCT subscriber_id) FROM tracking_event t "
            f"WHERE {where.format(a='t')} GROUP BY issue_id, kind"), params):
        if kind in TRACKING_FIGURES:
            found[(issue_id, TRACKING_FIGURES[kind])] += count
    return found


def untally_subscribers(session: Session, subscriber_ids: list[int]) -> None:
    """Before the readers `subscriber_ids` are deleted (their deliveries and tracking events go by
    ON DELETE CASCADE, their provider events lose the delivery): take their part off the counters."""
    for start in range(0, len(subscriber_ids), 500):
        ids = [int(i) for i in subscriber_ids[start:start + 500]]
        where = "{a}.subscriber_id IN (" + ", ".join(str(i) for i in ids) + ")"
        if session.get_bind().dialect.name == "postgresql":  # a worker recording one of them now waits
            session.execute(text(f"SELECT id FROM delivery d WHERE {where.format(a='d')} FOR UPDATE"))
        found = _subscriber_figures(session, where, {})
        add(session, {key: -count for key, count in found.items()})


def raw_counts(session: Session, issue_id: int) -> dict[str, int]:
    """Every counted figure of one issue, counted over the raw rows: the definition the counters
    keep to (used to fill them, by the migration and `rebuild`, and by the tests to check them)."""
    figures = _subscriber_figures(session, "{a}.issue_id = :issue", {"issue": issue_id})
    return {name: figures.get((issue_id, name), 0) for name in NAMES}


def rebuild(session: Session, issue_ids: list[int] | None = None) -> None:
    """Counters recounted from the raw rows (all issues, or `issue_ids`): for data written around
    the functions above (a bulk load, a restore of some tables)."""
    table = IssueTally.__table__
    if issue_ids is None:
        issue_ids = [row[0] for row in session.execute(text("SELECT id FROM issue"))]
    for issue_id in issue_ids:
        session.execute(table.delete().where(table.c.issue_id == issue_id))
        add(session, {(issue_id, name): count for name, count in raw_counts(session, issue_id).items()}, shard=0)
