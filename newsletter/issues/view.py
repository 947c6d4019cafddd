"""The data an issue template sees: plain values read once per issue from the store."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.content.models import Comparison, ComparisonTool, Lens, Review, Tool, Verdict
from newsletter.content.scores import community, community_text, format_percent, panel_ship
from newsletter.errors import UserError
from newsletter.issues.dateline import issue_date
from newsletter.issues.models import Issue, IssueItem

LENS_ORDER = [lens.value for lens in Lens]


@dataclass
class QuoteView:
    lens: str
    lens_label: str
    reviewer: str
    verdict: str
    quote: str


@dataclass
class ToolView:
    name: str
    category: str
    tagline: str
    description: str
    entry_price: str
    panel_ship: int | None
    panel_ship_text: str
    community: int | None
    community_text: str
    quote: QuoteView | None
    slug: str = ""  # what vote links name (empty only in records frozen before slugs were kept)
    votes: int = 0  # reader votes for this tool (records frozen before counts were kept: 0)


@dataclass
class ComparisonView:
    slug: str
    title: str
    dek: str
    category: str
    url: str
    verdict_line: str
    tools: list[ToolView] = field(default_factory=list)
    community_votes: int = 0  # the sample behind each tool's Community %
    # False below [content] community_min_votes: the tools' community_text is then "3 votes so far",
    # not a percentage. Records frozen before the rule was kept showed their shares: True.
    community_shown: bool = True


@dataclass
class SiteView:
    name: str
    base_url: str
    postal_address: str
    language: str


@dataclass
class ChangedLine:
    """One line of the "Verdicts that changed" block (issues/changed.py): a comparison the reader
    received in issue `week`, what moved since, and where to read it now."""

    title: str
    url: str
    week: str
    summary: str


@dataclass
class IssueView:
    id: int
    week: str
    subject: str
    preheader: str
    intro: str
    web_url: str
    site: SiteView
    comparisons: list[ComparisonView]
    track_opens: bool = False
    track_clicks: bool = False
    # The issue's date (ISO, the site's calendar) that the masthead spells out in words: see
    # newsletter/issues/dateline.py for which date. Empty in records frozen before it was kept.
    issue_date: str = ""
    # A reader's variant (issues/variants.py): the index in the whole issue of each comparison
    # (None: all of them, in order), the changes the reader must hear of, and the line that marks
    # the latest issue sent to a new reader. The whole issue (web view, records) has none.
    positions: list[int] | None = None
    changed: list[ChangedLine] = field(default_factory=list)
    notice: str = ""


def comparison_url(settings: Settings, slug: str) -> str:
    return f"{settings.site.base_url}/compare/{slug}"


def issue_web_url(settings: Settings, issue_id: int) -> str:
    return f"{settings.site.base_url}/issues/{issue_id}"


def site_view(settings: Settings) -> SiteView:
    site = settings.site
    return SiteView(site.name, site.base_url, site.postal_address, site.language)


SHIPS_AT, PASSES_AT = 75, 25  # Panel ship % from which the panel ships a tool, up to which it passes


def tool_verdict(ship: int | None) -> str:
    """One tool's panel verdict, by the thresholds of `verdict_line`: "ship", "split", "pass" or ""."""
    if ship is None:
        return ""
    return "ship" if ship >= SHIPS_AT else "pass" if ship <= PASSES_AT else "split"


def verdict_line(tools: list[ToolView]) -> str:
    """"The panel ships B; split on A": 75 % or more ships, 25 % or less passes, else split."""
    ships = [t.name for t in tools if tool_verdict(t.panel_ship) == "ship"]
    passes = [t.name for t in tools if tool_verdict(t.panel_ship) == "pass"]
    split = [t.name for t in tools if tool_verdict(t.panel_ship) == "split"]
    parts = []
    for verb, names in (("ships", ships), ("split on", split), ("passes on", passes)):
        if names:
            joined = "both" if len(names) == 2 == len(tools) else " and ".join(names)
            parts.append(f"{verb} {joined}")
    if not parts:
        return "No panel verdict yet."
    return "The panel " + "; ".join(parts) + "."


def _highlight(reviews: list[Review], ship: int | None) -> Review | None:
    """The quote that speaks for the majority: first lens whose verdict matches it."""
    if not reviews:
        return None
    majority = Verdict.ship.value if (ship or 0) >= 50 else Verdict.pass_.value
    ordered = sorted(reviews, key=lambda r: LENS_ORDER.index(r.lens))
    return next((r for r in ordered if r.verdict == majority), ordered[0])


def build_issue_view(session: Session, settings: Settings, issue: Issue) -> IssueView:
    items = session.exec(
        select(IssueItem, Comparison)
        .join(Comparison, Comparison.id == IssueItem.comparison_id)
        .where(IssueItem.issue_id == issue.id)
        .order_by(IssueItem.position)
    ).all()
    if not items:
        raise UserError(f"issue {issue.id} has no comparisons")
    ids = [comparison.id for _item, comparison in items]
    min_votes = settings.content.community_min_votes
    ships = panel_ship(session, ids)
    votes = community(session, ids)
    tool_rows = session.exec(
        select(ComparisonTool, Tool)
        .join(Tool, Tool.id == ComparisonTool.tool_id)
        .where(ComparisonTool.comparison_id.in_(ids))
        .order_by(ComparisonTool.comparison_id, ComparisonTool.position)
    ).all()
    reviews = session.exec(select(Review).where(Review.comparison_id.in_(ids))).all()
    by_tool: dict[tuple[int, int], list[Review]] = {}
    for review in reviews:
        by_tool.setdefault((review.comparison_id, review.tool_id), []).append(review)
    tools_of: dict[int, list[ToolView]] = {}
    for link, tool in tool_rows:
        key = (link.comparison_id, tool.id)
        ship = ships.get(key)
        share = votes.share(link.comparison_id, tool.id)
        total = votes.totals.get(link.comparison_id, 0)
        quote = _highlight(by_tool.get(key, []), ship)
        tools_of.setdefault(link.comparison_id, []).append(ToolView(
            name=tool.name, slug=tool.slug, category=tool.category, tagline=tool.tagline,
            description=tool.description, entry_price=tool.entry_price,
            panel_ship=ship, panel_ship_text=format_percent(ship),
            community=share, votes=votes.counts.get(key, 0),
            community_text=community_text(share, total, min_votes),
            quote=QuoteView(quote.lens, Lens(quote.lens).label, quote.reviewer, quote.verdict, quote.quote)
            if quote else None,
        ))
    comparisons = []
    for _item, comparison in items:
        tools = tools_of.get(comparison.id, [])
        comparisons.append(ComparisonView(
            slug=comparison.slug, title=comparison.title, dek=comparison.dek,
            category=comparison.category, url=comparison_url(settings, comparison.slug),
            verdict_line=verdict_line(tools), tools=tools, community_votes=votes.totals.get(comparison.id, 0),
            community_shown=votes.totals.get(comparison.id, 0) >= min_votes,
        ))
    return IssueView(
        id=issue.id, week=issue.week, subject=issue.subject, preheader=issue.preheader,
        intro=issue.intro, web_url=issue_web_url(settings, issue.id), site=site_view(settings),
        comparisons=comparisons, track_opens=settings.tracking.opens, track_clicks=settings.tracking.clicks,
        issue_date=issue_date(settings, issue).isoformat(),
    )
