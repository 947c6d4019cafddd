"""Revisions: every change to a comparison, its tools' facts or its reviews is kept.

`record` is the one mechanism every writer calls (the importer's upsert, which the console
form, the API and the feed pull go through; unpublish and "mark checked") in the same
transaction as the change: it snapshots each comparison it is given and writes a new numbered
revision only when the snapshot differs from the latest one. So a re-import of the same file
writes nothing, and a tool's new tagline becomes a revision of every comparison that shows it.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from newsletter.content.diff import describe
from newsletter.content.models import Comparison, ComparisonTool, ContentRevision
from newsletter.content.snapshot import snapshot

SOURCES = ("import", "console", "api", "pull", "cli", "migration")


@dataclass(frozen=True)
class Origin:
    """Where a change came from (one of SOURCES) and who made it (an editor's address, an API
    token's name, the operating-system user of the command line)."""

    source: str
    actor: str

    @classmethod
    def command_line(cls, source: str = "cli") -> "Origin":
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name (a container without /etc/passwd entry)
            user = ""
        return cls(source, user or "cli")


def latest(session: Session, comparison_id: int) -> ContentRevision | None:
    return session.exec(select(ContentRevision).where(ContentRevision.comparison_id == comparison_id)
                        .order_by(ContentRevision.number.desc()).limit(1)).first()


def record(session: Session, comparison_ids: Iterable[int], origin: Origin) -> list[ContentRevision]:
    """A revision for each of these comparisons whose snapshot changed since its latest one.
    Call it after the change, before the commit. Two writers on one comparison take turns: each
    locks the comparison's row here (in id order; SQLite serialises writers anyway), so the second
    waits for the first's commit, then reads the store afresh, snapshots both changes and numbers
    its revision after the first's (the unique (comparison, number) stays the last guard)."""
    session.flush()
    ids = sorted(set(comparison_ids))
    for comparison_id in ids:
        session.execute(select(Comparison.id).where(Comparison.id == comparison_id).with_for_update())
    session.expire_all()  # everything flushed: read what the store holds now, a waited-for writer's too
    written = []
    for comparison_id in ids:
        comparison = session.get(Comparison, comparison_id)
        if comparison is None:
            continue
        now = snapshot(session, comparison)
        last = latest(session, comparison_id)
        if last is not None and last.snapshot == now:
            continue
        revision = ContentRevision(comparison_id=comparison_id, number=(last.number + 1) if last else 1,
                                   source=origin.source[:16], actor=origin.actor[:300], snapshot=now)
        session.add(revision)
        written.append(revision)
    session.flush()
    return written


def sharing_tools(session: Session, tool_ids: Iterable[int]) -> set[int]:
    """The comparisons that show any of these tools (a tool's facts are part of each of them)."""
    ids = list(set(tool_ids))
    if not ids:
        return set()
    return set(session.exec(select(ComparisonTool.comparison_id).where(ComparisonTool.tool_id.in_(ids))))


def history(session: Session, comparison_id: int, before: int | None = None,
            limit: int = 50) -> list[ContentRevision]:
    """Revisions newest first; `before` a revision number (keyset paging)."""
    query = select(ContentRevision).where(ContentRevision.comparison_id == comparison_id)
    if before is not None:
        query = query.where(ContentRevision.number < before)
    return list(session.exec(query.order_by(ContentRevision.number.desc()).limit(limit)))


def count(session: Session, comparison_id: int) -> int:
    return session.exec(select(func.count()).select_from(ContentRevision)
                        .where(ContentRevision.comparison_id == comparison_id)).one()


@dataclass(frozen=True)
class Entry:
    """One revision as the history shows it: when, where from, who, and what changed."""

    number: int
    created_at: datetime
    source: str
    actor: str
    changes: list[str]
    snapshot: dict


def entries(session: Session, comparison_id: int, before: int | None = None, limit: int = 50) -> list[Entry]:
    """The history newest first, each revision with its diff against the one before it."""
    rows = history(session, comparison_id, before, limit + 1)
    shown = rows[:limit]
    if not shown:
        return []
    chain = rows  # one more than shown when there is an older revision: the last one's "before"
    found = []
    for n, row in enumerate(shown):
        changes = describe(chain[n + 1].snapshot if n + 1 < len(chain) else None, row.snapshot)
        if row.source == "migration":  # not made then: the state the store had when revisions began
            changes = [line.replace("created: ", "as it was when revisions began: ", 1) for line in changes]
        found.append(Entry(row.number, row.created_at, row.source, row.actor, changes, row.snapshot))
    return found
