"""Reader votes: which tool a choice code names, and one changeable vote per reader and comparison.

The rules live with the content they are about, apart from the HTTP routes in
newsletter/web/votes.py (which only read the link and show the pages).
"""

from __future__ import annotations

from sqlmodel import Session, select

from newsletter.content.models import Comparison, ComparisonTool, Tool, Vote
from newsletter import outgoing
from newsletter.db import insert_for, utcnow

CHOICES = "abcd"
PUBLIC_VOTE_TOKEN = "web"  # what the public web view puts where a reader's own token would be


def resolve_choice(session: Session, slug: str, choice: str) -> tuple[Comparison, Tool | None] | None:
    """The comparison and the tool a choice names (None for "pass"), or None if invalid.

    Links name the tool by its slug, so re-ordering a comparison's tools never moves a vote.
    A single letter a-d (links in mails sent before slugs) still names a position: those
    mails came out before any re-ordering could be recorded, so the position is all they carry."""
    comparison = session.exec(select(Comparison).where(Comparison.slug == slug)).first()
    if comparison is None:
        return None
    if choice == "pass":
        return comparison, None
    in_comparison = select(Tool).join(ComparisonTool, ComparisonTool.tool_id == Tool.id).where(
        ComparisonTool.comparison_id == comparison.id)
    tool = session.exec(in_comparison.where(Tool.slug == choice)).first()
    if tool is None and len(choice) == 1 and choice in CHOICES:
        tool = session.exec(in_comparison.where(ComparisonTool.position == CHOICES.index(choice))).first()
    return (comparison, tool) if tool else None


def record_vote(session: Session, comparison_id: int, subscriber_id: int, tool_id: int | None) -> None:
    """Insert or change the subscriber's vote in one statement (safe against double clicks)."""
    insert = insert_for(session, Vote.__table__)
    now = utcnow()
    statement = insert.values(comparison_id=comparison_id, subscriber_id=subscriber_id, tool_id=tool_id,
                              created_at=now, updated_at=now)
    session.execute(statement.on_conflict_do_update(
        index_elements=["comparison_id", "subscriber_id"],
        set_={"tool_id": statement.excluded.tool_id, "updated_at": statement.excluded.updated_at},
    ))
    comparison, tool = session.get(Comparison, comparison_id), session.get(Tool, tool_id) if tool_id else None
    outgoing.emit(session, "vote.recorded", {
        "comparison": comparison.slug if comparison else None, "tool": tool.slug if tool else None,
        "reader_id": subscriber_id}, now)
