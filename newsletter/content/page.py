"""Values for a comparison's web page: its tools side by side with their figures, and the
reviewer scorecard as a grid (rows: the four lenses, columns: the tools)."""

from __future__ import annotations

from sqlmodel import Session, select

from newsletter.content.models import LENS_LABELS, Comparison, ComparisonTool, Lens, Review, Tool
from newsletter.content.schema import SLUG
from newsletter.content.scores import community, community_text, format_percent, panel_ship

# What each lens looks at, as the publication's scorecard puts it (docs/content-format.md).
LENS_HINTS = {
    Lens.developer_experience: "The primitive, the moment of truth",
    Lens.competition: "Direct competitors, where it breaks",
    Lens.thesis: "What it bets on, second-order effects",
    Lens.buyer: "Who pays, the moat",
}


def comparison_page_values(session: Session, slug: str, min_votes: int) -> dict | None:
    """Everything the page shows, or None when there is no such published comparison (404).
    Community % is shown with its number of votes, and as a count only below `min_votes`."""
    if not SLUG.fullmatch(slug):  # no such page; and PostgreSQL refuses a NUL in a query (a 500)
        return None
    comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
    if comparison is None or not comparison.is_published:  # an unpublished page is gone (404)
        return None
    tools = session.exec(
        select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
        .where(ComparisonTool.comparison_id == comparison.id).order_by(ComparisonTool.position)
    ).all()
    reviews = session.exec(select(Review).where(Review.comparison_id == comparison.id)).all()
    ships = panel_ship(session, [comparison.id])
    votes = community(session, [comparison.id])
    total = votes.totals.get(comparison.id, 0)
    by_key = {(r.tool_id, r.lens): r for r in reviews}
    return {
        "slug": comparison.slug,
        "title": comparison.title,
        "dek": comparison.dek,
        "category": comparison.category,
        "votes": total,
        "tools": [
            {"slug": t.slug, "name": t.name, "category": t.category, "tagline": t.tagline,
             "description": t.description, "entry_price": t.entry_price,
             "ship": ships.get((comparison.id, t.id)),
             "panel_ship": format_percent(ships.get((comparison.id, t.id))),
             "community": community_text(votes.share(comparison.id, t.id), total, min_votes)}
            for t in tools
        ],
        "lenses": [
            {"label": LENS_LABELS[lens], "hint": LENS_HINTS[lens],
             "reviews": [by_key.get((t.id, lens.value)) for t in tools]}
            for lens in Lens
        ],
    }
