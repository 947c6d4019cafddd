"""Values for a comparison's web page: both tools, the full four-lens scorecard, the figures."""

from __future__ import annotations

from sqlmodel import Session, select

from newsletter.content.models import LENS_LABELS, Comparison, ComparisonTool, Lens, Review, Tool
from newsletter.content.scores import community, format_percent, panel_ship


def comparison_page_values(session: Session, slug: str) -> dict | None:
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
    by_key = {(r.tool_id, r.lens): r for r in reviews}
    return {
        "title": comparison.title,
        "dek": comparison.dek,
        "category": comparison.category,
        "tools": [
            {"name": t.name, "tagline": t.tagline, "description": t.description, "entry_price": t.entry_price,
             "panel_ship": format_percent(ships.get((comparison.id, t.id))),
             "community": format_percent(votes.share(comparison.id, t.id))}
            for t in tools
        ],
        "lenses": [
            {"label": LENS_LABELS[lens],
             "reviews": [by_key.get((t.id, lens.value)) for t in tools]}
            for lens in Lens
        ],
        "tool_names": [t.name for t in tools],
    }
