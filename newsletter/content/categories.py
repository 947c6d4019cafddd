"""The publication's categories: what a reader can choose as topics (signup, preferences, import)."""

from __future__ import annotations

from sqlalchemy import select, union
from sqlmodel import Session

from newsletter.content.models import Comparison, Tool


def publication_categories(session: Session) -> list[str]:
    """Every category a comparison or a tool has, sorted; an issue is matched to readers by them.
    One statement: every signup checks its topics against these (issue 18)."""
    return sorted(session.execute(union(select(Comparison.category), select(Tool.category))).scalars())
