"""A tool's page: every published comparison it appears in, with its verdict history — the Panel
ship % and verdict each sent issue carried (read from the frozen records, issues/frozen.py) and
what the comparison says now.

Bounded reads whatever the archive's size: the issues are found through issue_item (only those
that carried one of the tool's comparisons, newest HISTORY_LIMIT), and only their records are
read. A record is the issue's whole view as JSON; the figures are picked out of it as stored,
never recomputed, so the page shows what readers were sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.content.models import Comparison, ComparisonTool, Tool
from newsletter.content.schema import SLUG
from newsletter.content.scores import community, community_text, format_percent, panel_ship
from newsletter.issues.models import Issue, IssueItem, IssueRecord
from newsletter.issues.states import IssueState
from newsletter.issues.view import comparison_url, issue_web_url, tool_verdict

PUBLIC_STATES = (IssueState.sending.value, IssueState.sent.value)
HISTORY_LIMIT = 100  # sent issues read per tool page (two years of weekly issues)


@dataclass(frozen=True)
class SentFigure:
    """The tool's figures in one sent issue, as its readers got them."""

    issue_id: int
    week: str
    sent_at: datetime  # when the issue started going out (UTC)
    url: str  # the issue's public web view
    panel_ship: int | None
    panel_ship_text: str
    verdict: str  # "ship", "split", "pass" or "" (view.tool_verdict)


@dataclass(frozen=True)
class ComparisonHistory:
    slug: str
    title: str
    category: str
    url: str
    panel_ship: int | None  # now
    panel_ship_text: str
    verdict: str
    community: str
    sent: list[SentFigure] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class ToolPage:
    slug: str
    name: str
    category: str
    tagline: str
    description: str
    entry_price: str
    updated_at: datetime
    comparisons: list[ComparisonHistory]


def tool_page(session: Session, settings: Settings, slug: str) -> ToolPage | None:
    """The tool's page, or None when no published comparison shows it (unknown or taken down)."""
    if not SLUG.fullmatch(slug):  # no such page; and PostgreSQL refuses a NUL in a query (a 500)
        return None
    tool = session.execute(select(Tool).where(Tool.slug == slug)).scalar_one_or_none()
    if tool is None:
        return None
    comparisons = list(session.execute(
        select(Comparison).join(ComparisonTool, ComparisonTool.comparison_id == Comparison.id)
        .where(ComparisonTool.tool_id == tool.id, Comparison.unpublished_at.is_(None))
        .order_by(Comparison.published_at.desc(), Comparison.id.desc())).scalars())
    if not comparisons:
        return None
    ids = [comparison.id for comparison in comparisons]
    ships, votes = panel_ship(session, ids), community(session, ids)
    sent = _sent_figures(session, settings, tool, {c.id: c.slug for c in comparisons})
    min_votes = settings.content.community_min_votes
    histories = []
    for comparison in comparisons:
        ship = ships.get((comparison.id, tool.id))
        histories.append(ComparisonHistory(
            comparison.slug, comparison.title, comparison.category, comparison_url(settings, comparison.slug),
            ship, format_percent(ship), tool_verdict(ship),
            community_text(votes.share(comparison.id, tool.id), votes.totals.get(comparison.id, 0), min_votes),
            sent.get(comparison.slug, [])))
    return ToolPage(tool.slug, tool.name, tool.category, tool.tagline, tool.description, tool.entry_price,
                    _aware(tool.updated_at), histories)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _sent_figures(session: Session, settings: Settings, tool: Tool,
                  slugs: dict[int, str]) -> dict[str, list[SentFigure]]:
    """comparison slug -> the tool's figures in each sent issue that carried it, newest first."""
    issues = session.execute(
        select(Issue.id, Issue.week, Issue.started_at, Issue.created_at)
        .where(Issue.state.in_(PUBLIC_STATES),
               Issue.id.in_(select(IssueItem.issue_id).where(IssueItem.comparison_id.in_(list(slugs)))))
        .order_by(Issue.id.desc()).limit(HISTORY_LIMIT)).all()
    if not issues:
        return {}
    records = dict(session.execute(select(IssueRecord.issue_id, IssueRecord.view)
                                   .where(IssueRecord.issue_id.in_([row.id for row in issues]))).all())
    wanted = set(slugs.values())
    found: dict[str, list[SentFigure]] = {}
    for row in issues:  # newest first; an issue sent before records were kept has no figures to show
        for item in (records.get(row.id) or {}).get("comparisons", []):
            if item.get("slug") not in wanted:
                continue
            frozen = _tool_in(item, tool)
            if frozen is not None:
                ship = frozen.get("panel_ship")
                found.setdefault(item["slug"], []).append(SentFigure(
                    row.id, row.week, _aware(row.started_at or row.created_at), issue_web_url(settings, row.id),
                    ship, format_percent(ship), tool_verdict(ship)))
    return found


def _tool_in(item: dict, tool: Tool) -> dict | None:
    """The tool as a frozen comparison showed it (records frozen before slugs name it only), or None."""
    for frozen in item.get("tools", []):
        if frozen.get("slug") == tool.slug or (not frozen.get("slug") and frozen.get("name") == tool.name):
            return frozen
    return None
