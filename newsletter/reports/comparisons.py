"""Comparisons for editors: search and filters with keyset pages, and one comparison's figures
(votes per tool, Community %, Panel ship %, the issues that carried it).

Here rather than in content/ because the "in which issue" filter reads issues, and content
knows nothing of issues (issues build on content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select, tuple_
from sqlmodel import Session

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter.content.scores import community, panel_ship
from newsletter.issues.models import Issue, IssueItem
from newsletter.weeks import week_bounds


class Status(StrEnum):
    any = "any"
    published = "published"
    unpublished = "unpublished"


@dataclass(frozen=True)
class Filters:
    """What an editor narrows the list by; every field empty means every comparison."""

    q: str = ""                        # in the title, the slug, a tool's name or slug (case-insensitive)
    week: str = ""                     # ISO week (site time zone) of publication, like 2026-W48
    published_from: date | None = None  # first day of publication (site time zone), inclusive
    published_to: date | None = None    # last day, inclusive
    category: str = ""
    issue: int | None = None           # carried by this issue
    min_votes: int = 0                 # at least this many reader votes (1: "has votes")
    status: Status = Status.any


@dataclass(frozen=True)
class Key:
    """A row's place in the list (newest publication first, then id), for keyset pages."""

    published_at: datetime
    id: int


@dataclass
class Row:
    id: int
    slug: str
    title: str
    category: str
    published_at: datetime
    unpublished_at: datetime | None
    votes: int
    tools: list[str] = field(default_factory=list)        # names, in display order
    issues: list[tuple[int, str]] = field(default_factory=list)  # (issue id, week)

    @property
    def key(self) -> Key:
        return Key(self.published_at, self.id)


def _day(value: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(value, time(), tzinfo=zone)


def _where(query, filters: Filters, zone: ZoneInfo, votes):
    """The filters as SQL conditions; LIKE wildcards an editor types are taken literally."""
    needle = filters.q.strip().lower()
    if needle:
        tools = (select(ComparisonTool.comparison_id).join(Tool, Tool.id == ComparisonTool.tool_id)
                 .where(or_(func.lower(Tool.name).contains(needle, autoescape=True),
                            Tool.slug.contains(needle, autoescape=True))))
        query = query.where(or_(func.lower(Comparison.title).contains(needle, autoescape=True),
                                Comparison.slug.contains(needle, autoescape=True), Comparison.id.in_(tools)))
    if filters.week:
        start, end = week_bounds(filters.week, zone)
        query = query.where(Comparison.published_at >= start, Comparison.published_at < end)
    if filters.published_from:
        query = query.where(Comparison.published_at >= _day(filters.published_from, zone))
    if filters.published_to:
        query = query.where(Comparison.published_at < _day(filters.published_to + timedelta(days=1), zone))
    if filters.category:
        query = query.where(Comparison.category == filters.category)
    if filters.issue is not None:
        query = query.where(Comparison.id.in_(select(IssueItem.comparison_id)
                                              .where(IssueItem.issue_id == filters.issue)))
    if filters.min_votes > 0:
        query = query.where(votes >= filters.min_votes)
    if filters.status == Status.published:
        query = query.where(Comparison.unpublished_at.is_(None))
    elif filters.status == Status.unpublished:
        query = query.where(Comparison.unpublished_at.is_not(None))
    return query


def search(session: Session, filters: Filters, zone: ZoneInfo, after: Key | None = None,
           limit: int = 50) -> tuple[list[Row], Key | None]:
    """One page of matching comparisons, newest publication first, and the key of the next
    page (None on the last). Keyset, not OFFSET: a page costs the same deep in the list."""
    votes = (select(func.count(Vote.id)).where(Vote.comparison_id == Comparison.id)
             .correlate(Comparison).scalar_subquery())
    query = _where(select(Comparison, votes.label("votes")), filters, zone, votes)
    if after is not None:
        query = query.where(tuple_(Comparison.published_at, Comparison.id) < tuple_(after.published_at, after.id))
    query = query.order_by(Comparison.published_at.desc(), Comparison.id.desc()).limit(limit + 1)
    found = session.execute(query).all()
    rows = [Row(c.id, c.slug, c.title, c.category, c.published_at, c.unpublished_at, int(n or 0))
            for c, n in found[:limit]]
    _decorate(session, rows)
    return rows, (rows[-1].key if len(found) > limit else None)


def _decorate(session: Session, rows: list[Row]) -> None:
    """Tool names and issues of a page's rows, in two queries for the whole page."""
    by_id = {row.id: row for row in rows}
    if not by_id:
        return
    for comparison_id, name in session.execute(
            select(ComparisonTool.comparison_id, Tool.name).join(Tool, Tool.id == ComparisonTool.tool_id)
            .where(ComparisonTool.comparison_id.in_(by_id)).order_by(ComparisonTool.position)):
        by_id[comparison_id].tools.append(name)
    for comparison_id, issue_id, week in session.execute(
            select(IssueItem.comparison_id, Issue.id, Issue.week).join(Issue, Issue.id == IssueItem.issue_id)
            .where(IssueItem.comparison_id.in_(by_id)).order_by(Issue.week, Issue.id)):
        by_id[comparison_id].issues.append((issue_id, week))


@dataclass
class ToolFigures:
    slug: str
    name: str
    votes: int
    community_percent: int | None  # None ("—") while the comparison has no votes
    panel_ship_percent: int | None  # None while the tool has no reviews


@dataclass
class Figures:
    """What readers and the panel think of one comparison."""

    votes_total: int
    votes_pass: int
    tools: list[ToolFigures]
    issues: list[tuple[int, str, str]]  # (issue id, week, state) of every issue that carries it


def figures(session: Session, comparison: Comparison) -> Figures:
    tools = session.execute(
        select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
        .where(ComparisonTool.comparison_id == comparison.id).order_by(ComparisonTool.position)
    ).scalars().all()
    votes = community(session, [comparison.id])
    ships = panel_ship(session, [comparison.id])
    total = votes.totals.get(comparison.id, 0)
    per_tool = [ToolFigures(tool.slug, tool.name, votes.counts.get((comparison.id, tool.id), 0),
                            votes.share(comparison.id, tool.id), ships.get((comparison.id, tool.id)))
                for tool in tools]
    issues = session.execute(
        select(Issue.id, Issue.week, Issue.state).join(IssueItem, IssueItem.issue_id == Issue.id)
        .where(IssueItem.comparison_id == comparison.id).order_by(Issue.week, Issue.id)).all()
    return Figures(total, total - sum(t.votes for t in per_tool), per_tool,
                   [(i, week, issue_state) for i, week, issue_state in issues])


def categories(session: Session) -> list[str]:
    """The categories comparisons use, for the filter's choices."""
    return sorted(set(session.execute(select(Comparison.category)).scalars()))


def recent_issues(session: Session, limit: int = 60) -> list[tuple[int, str, str]]:
    """(id, week, subject) of the newest issues, for the "in which issue" filter's choices."""
    return [tuple(row) for row in session.execute(
        select(Issue.id, Issue.week, Issue.subject).order_by(Issue.week.desc(), Issue.id.desc()).limit(limit))]
