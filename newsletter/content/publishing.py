"""An editor's changes to one comparison: create, edit (the import schema's upsert), unpublish
and republish, mark its facts checked, each returning the comparison's state before and after
for the audit log, and each kept as a revision (content/revisions.py) with its origin.

The console form and the REST API both end here, so a comparison an editor saves is exactly
what the same import file would have written (content/importer.py upsert_comparison).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from newsletter.content import revisions
from newsletter.content.importer import upsert_comparison
from newsletter.content.models import Comparison
from newsletter.content.snapshot import TOOL_FIELDS, as_import  # noqa: F401  (publishing.as_import, the form's fields)
from newsletter.content.revisions import Origin
from newsletter.content.schema import SLUG, ComparisonIn
from newsletter.db import utcnow
from newsletter.errors import UserError


class SlugTaken(UserError):
    """A new comparison may not silently replace an existing one with the same slug."""


class NoSuchComparison(UserError):
    """The slug names no comparison."""


def find(session: Session, slug: str) -> Comparison | None:
    """The comparison of that slug; None, without asking the database, for a string that cannot
    be a slug (a NUL byte from a URL reached PostgreSQL as an error, a 500)."""
    if not SLUG.fullmatch(slug):
        return None
    return session.exec(select(Comparison).where(Comparison.slug == slug)).first()


def state(session: Session, comparison: Comparison) -> dict:
    """The audit log's before/after: the import shape plus whether it is published."""
    unpublished = comparison.unpublished_at.isoformat() if comparison.unpublished_at else None
    return {**as_import(session, comparison), "unpublished_at": unpublished}


def save(session: Session, data: ComparisonIn, create: bool, origin: Origin) -> tuple[dict | None, dict]:
    """Write `data` through the importer's upsert. `create` refuses a slug that exists (a new
    comparison from the console must not overwrite another); an edit needs the slug to exist."""
    existing = find(session, data.slug)
    if create and existing is not None:
        raise SlugTaken(f"a comparison with the slug {data.slug!r} exists already: choose another slug")
    if not create and existing is None:
        raise NoSuchComparison(f"there is no comparison {data.slug!r}")
    before = state(session, existing) if existing is not None else None
    upsert_comparison(session, data, origin)
    after = find(session, data.slug)
    assert after is not None
    return before, state(session, after)


def set_published(session: Session, slug: str, published: bool, origin: Origin,
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
        revisions.record(session, [comparison.id], origin)
    return before, state(session, comparison)


def mark_checked(session: Session, slug: str, origin: Origin, at: datetime | None = None) -> Comparison:
    """Its facts were checked (now, or `at`): what the stale-verdict pre-send check reads."""
    comparison = find(session, slug)
    if comparison is None:
        raise NoSuchComparison(f"there is no comparison {slug!r}")
    comparison.checked_at = at or utcnow()
    session.add(comparison)
    revisions.record(session, [comparison.id], origin)
    return comparison
