"""A comparison as data: the import schema's shape (what the form shows, the API returns and an
import file holds) and the revision snapshot (that, plus when its facts were checked and whether
it is published). Revisions compare snapshots, so "nothing changed" means exactly "equal dicts".
"""

from __future__ import annotations

from sqlmodel import Session, select

from newsletter.content.models import Comparison, ComparisonTool, Lens, Review, Tool

LENS_ORDER = {lens.value: index for index, lens in enumerate(Lens)}
TOOL_FIELDS = ("slug", "name", "category", "tagline", "description", "entry_price")


def as_import(session: Session, comparison: Comparison) -> dict:
    """The comparison in the JSON import schema (docs/content-format.md): what an editor sees
    in the form, what the API returns, and a value ComparisonIn validates back unchanged."""
    tools = session.exec(
        select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
        .where(ComparisonTool.comparison_id == comparison.id).order_by(ComparisonTool.position)
    ).all()
    position = {tool.id: index for index, tool in enumerate(tools)}
    slugs = {tool.id: tool.slug for tool in tools}
    reviews = sorted(session.exec(select(Review).where(Review.comparison_id == comparison.id)).all(),
                     key=lambda r: (position.get(r.tool_id, 99), LENS_ORDER.get(r.lens, 99)))
    return {
        "slug": comparison.slug, "title": comparison.title, "dek": comparison.dek,
        "published": comparison.published_at.isoformat(), "category": comparison.category,
        "tools": [{name: getattr(tool, name) for name in TOOL_FIELDS} for tool in tools],
        "reviews": [{"tool": slugs[r.tool_id], "lens": r.lens, "reviewer": r.reviewer, "verdict": r.verdict,
                     "quote": r.quote} for r in reviews if r.tool_id in slugs],
    }


def snapshot(session: Session, comparison: Comparison) -> dict:
    """What a revision keeps: the import shape, when the facts were checked, whether published."""
    unpublished = comparison.unpublished_at.isoformat() if comparison.unpublished_at else None
    return {**as_import(session, comparison), "checked_at": comparison.checked_at.isoformat(),
            "unpublished_at": unpublished}
