"""An editor's changes to one comparison: create, edit (the import schema's upsert), unpublish
and republish, each returning the comparison's state before and after for the audit log.

The console form and the REST API both end here, so a comparison an editor saves is exactly
what the same import file would have written (content/importer.py upsert_comparison).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from newsletter.content.importer import upsert_comparison
from newsletter.content.models import Comparison, ComparisonTool, Lens, Review, Tool
from newsletter.content.schema import ComparisonIn
from newsletter.db import utcnow
from newsletter.errors import UserError

LENS_ORDER = {lens.value: index for index, lens in enumerate(Lens)}
TOOL_FIELDS = ("slug", "name", "category", "tagline", "description", "entry_price")


class SlugTaken(UserError):
    """A new comparison may not silently replace an existing one with the same slug."""


class NoSuchComparison(UserError):
    """The slug names no comparison."""


def find(session: Session, slug: str) -> Comparison | None:
    return session.exec(select(Comparison).where(Comparison.slug == slug)).first()


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


def state(session: Session, comparison: Comparison) -> dict:
    """The audit log's before/after: the import shape plus whether it is published."""
    unpublished = comparison.unpublished_at.isoformat() if comparison.unpublished_at else None
    return {**as_import(session, comparison), "unpublished_at": unpublished}


def save(session: Session, data: ComparisonIn, create: bool) -> tuple[dict | None, dict]:
    """Write `data` through the importer's upsert. `create` refuses a slug that exists (a new
    comparison from the console must not overwrite another); an edit needs the slug to exist."""
    existing = find(session, data.slug)
    if create and existing is not None:
        raise SlugTaken(f"a comparison with the slug {data.slug!r} exists already: choose another slug")
    if not create and existing is None:
        raise NoSuchComparison(f"there is no comparison {data.slug!r}")
    before = state(session, existing) if existing is not None else None
    upsert_comparison(session, data)
    after = find(session, data.slug)
    assert after is not None
    return before, state(session, after)


def set_published(session: Session, slug: str, published: bool,
                  now: datetime | None = None) -> tuple[dict, dict]:
    """Unpublish (or republish) a comparison; doing it twice changes nothing the second time.
    Sent issues keep their items: only the public page and future selections change."""
    comparison = find(session, slug)
    if comparison is None:
        raise NoSuchComparison(f"there is no comparison {slug!r}")
    before = state(session, comparison)
    if published != comparison.is_published:
        comparison.unpublished_at = None if published else (now or utcnow())
        comparison.updated_at = utcnow()
        session.add(comparison)
        session.flush()
    return before, state(session, comparison)
