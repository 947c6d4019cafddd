"""The publication's categories: what a reader can choose as topics (signup, preferences, import)."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from newsletter.content.models import Comparison, Tool


def publication_categories(session: Session) -> list[str]:
    """Every category a comparison or a tool has, sorted; an issue is matched to readers by them."""
    return sorted(set(session.execute(select(Comparison.category)).scalars()) |
                  set(session.execute(select(Tool.category)).scalars()))
