"""The vote digest: per comparison, what readers voted, how many, how far the Community %
stands from the Panel ship %, and how this week moved it.

"This week" is the last 7 days before `now`, read from Vote.updated_at (a vote is stamped
again when a reader changes it): the Community % "before" counts only votes untouched for
7 days, so the change is what the week's new and changed votes did. Counted in three grouped
queries for a page of comparisons, whatever the number of votes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, case, func, select
from sqlmodel import Session

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.content.scores import panel_ship, percent
from newsletter.db import session_scope, utcnow
from newsletter.issues.models import IssueItem

RECENT = timedelta(days=7)


@dataclass
class ToolVotes:
    slug: str
    name: str
    votes: int
    votes_this_week: int
    community: int | None  # % of all votes of the comparison (passes included); None without votes
    panel: int | None  # Panel ship %; None without reviews
    gap: int | None  # community - panel, in points
    change: int | None  # community now - community before this week, in points


@dataclass
class ComparisonDigest:
    id: int
    slug: str
    title: str
    published_at: datetime
    sample: int  # every vote, passes included: the base of each Community %
    votes_this_week: int
    passes: int
    tools: list[ToolVotes] = field(default_factory=list)


def _minus(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a - b


def _counts(session: Session, ids: list[int], since: datetime) -> dict[tuple[int, int | None], tuple[int, int]]:
    """(comparison id, tool id or None for a pass) -> (votes, of them new or changed since `since`)."""
    recent = func.sum(case((Vote.updated_at >= since, 1), else_=0))
    rows = session.execute(select(Vote.comparison_id, Vote.tool_id, func.count(), recent)
                           .where(Vote.comparison_id.in_(ids)).group_by(Vote.comparison_id, Vote.tool_id)).all()
    return {(c, t): (int(total), int(new or 0)) for c, t, total, new in rows}


def _digest(comparison: Comparison, tools: list[Tool], panel: dict, counts: dict) -> ComparisonDigest:
    mine = {tool: value for (cid, tool), value in counts.items() if cid == comparison.id}
    sample = sum(total for total, _ in mine.values())
    recent = sum(new for _, new in mine.values())
    before = sample - recent
    row = ComparisonDigest(comparison.id, comparison.slug, comparison.title, comparison.published_at, sample,
                           recent, mine.get(None, (0, 0))[0])
    for tool in tools:
        votes, new = mine.get(tool.id, (0, 0))
        now_share = percent(votes, sample)
        ship = panel.get((comparison.id, tool.id))
        row.tools.append(ToolVotes(tool.slug, tool.name, votes, new, now_share, ship, _minus(now_share, ship),
                                   _minus(now_share, percent(votes - new, before))))
    return row


def vote_digest(engine: Engine, now: datetime | None = None, limit: int | None = None,
                before_id: int | None = None, issue_id: int | None = None) -> list[ComparisonDigest]:
    """Comparisons newest first (by id; keyset: those with id < `before_id`), or those of one issue
    in its order, each with its tools in display order."""
    since = (now or utcnow()) - RECENT
    with session_scope(engine) as session:
        query = select(Comparison)
        if issue_id is not None:
            query = query.join(IssueItem, IssueItem.comparison_id == Comparison.id) \
                .where(IssueItem.issue_id == issue_id).order_by(IssueItem.position)
        else:
            query = query.order_by(Comparison.id.desc())
        if before_id is not None:
            query = query.where(Comparison.id < before_id)
        comparisons = list(session.execute(query.limit(limit) if limit else query).scalars())
        ids = [c.id for c in comparisons]
        tools: dict[int, list[Tool]] = {}
        for comparison_id, tool in session.execute(
                select(ComparisonTool.comparison_id, Tool).join(Tool, Tool.id == ComparisonTool.tool_id)
                .where(ComparisonTool.comparison_id.in_(ids)).order_by(ComparisonTool.position)).all():
            tools.setdefault(comparison_id, []).append(tool)
        panel, counts = panel_ship(session, ids), _counts(session, ids, since)
        return [_digest(c, tools.get(c.id, []), panel, counts) for c in comparisons]


def as_dict(row: ComparisonDigest) -> dict:
    return asdict(row)
