"""Derived figures of a comparison page: panel ship % and community %.

They are computed from reviews and votes on every read, so an edited review or
a new vote shows up in the next issue without any bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import case, func
from sqlmodel import Session, select

from newsletter.content.models import Review, Verdict, Vote


def percent(part: int, whole: int) -> int | None:
    """Rounded half up, so 1 of 8 shows as 13 % as a reader would round it."""
    if whole <= 0:
        return None
    return (200 * part + whole) // (2 * whole)


def format_percent(value: int | None) -> str:
    return "—" if value is None else f"{value}%"


def panel_ship(session: Session, comparison_ids: list[int]) -> dict[tuple[int, int], int | None]:
    """(comparison id, tool id) -> share of that tool's reviews whose verdict is ship."""
    rows = session.exec(
        select(
            Review.comparison_id,
            Review.tool_id,
            func.count(),
            func.sum(case((Review.verdict == Verdict.ship.value, 1), else_=0)),
        )
        .where(Review.comparison_id.in_(comparison_ids))
        .group_by(Review.comparison_id, Review.tool_id)
    ).all()
    return {(c, t): percent(int(ships or 0), total) for c, t, total, ships in rows}


@dataclass(frozen=True)
class Community:
    """Reader votes of some comparisons: totals per comparison, counts per (comparison, tool)."""

    totals: dict[int, int]
    counts: dict[tuple[int, int], int]

    def share(self, comparison_id: int, tool_id: int) -> int | None:
        """None ("—") while the comparison has no votes, else the tool's share (0 with none)."""
        total = self.totals.get(comparison_id, 0)
        return percent(self.counts.get((comparison_id, tool_id), 0), total) if total else None


def community(session: Session, comparison_ids: list[int]) -> Community:
    """Votes for a pass count in the total but for no tool."""
    rows = session.exec(
        select(Vote.comparison_id, Vote.tool_id, func.count())
        .where(Vote.comparison_id.in_(comparison_ids))
        .group_by(Vote.comparison_id, Vote.tool_id)
    ).all()
    totals: dict[int, int] = defaultdict(int)
    counts: dict[tuple[int, int], int] = {}
    for comparison_id, tool_id, count in rows:
        totals[comparison_id] += count
        if tool_id is not None:
            counts[(comparison_id, tool_id)] = count
    return Community(dict(totals), counts)


def community_counts(session: Session, slug: str, min_votes: int) -> dict | None:
    """A comparison's reader votes for the publication's site: per tool slug its votes and its
    share, the share None below `min_votes` votes in all (so one vote never reads "100%").
    None when there is no such comparison."""
    from newsletter.content.models import Comparison, ComparisonTool, Tool
    from newsletter.content.schema import SLUG

    if not SLUG.fullmatch(slug):  # no such comparison; and PostgreSQL refuses a NUL in a query (a 500)
        return None
    comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
    if comparison is None:
        return None
    tools = session.exec(select(Tool.id, Tool.slug).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                         .where(ComparisonTool.comparison_id == comparison.id)
                         .order_by(ComparisonTool.position)).all()
    votes = community(session, [comparison.id])
    total = votes.totals.get(comparison.id, 0)
    shown = total >= min_votes
    return {"comparison": slug, "votes": total, "min_votes": min_votes,
            "tools": {tool_slug: {"votes": votes.counts.get((comparison.id, tool_id), 0),
                                  "percent": votes.share(comparison.id, tool_id) if shown else None}
                      for tool_id, tool_slug in tools}}


def community_text(share: int | None, votes: int, min_votes: int) -> str:
    """Community % as a reader should read it: with the number of votes behind it, and no
    percentage at all below `min_votes` votes ("3 votes so far"), since one vote is not "100%"."""
    if votes <= 0:
        return "no votes yet"
    if votes < min_votes or share is None:
        return f"{votes} vote{'s' if votes != 1 else ''} so far"
    return f"{share}% of {votes} vote{'s' if votes != 1 else ''}"
