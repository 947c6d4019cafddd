"""A week-to-week story the web page tests and the screenshots share: an issue goes out, a review
changes, a second issue carries the same comparison again; some readers vote."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import select

from newsletter.content.models import Comparison, ComparisonTool, Review, Tool, Vote
from newsletter.db import session_scope
from newsletter.delivery.sender import start_send
from newsletter.issues.drafting import draft_issue
from newsletter.issues.models import Issue, IssueItem
from newsletter.subscribers.models import Subscriber

GROQ = "groqcloud-vs-together-ai"


def send_again(engine, settings, slug: str, week: str, when: datetime) -> int:
    """An issue of `week` carrying the comparison `slug`, started (and so frozen) at `when`."""
    with session_scope(engine) as session:
        comparison_id = session.exec(select(Comparison.id).where(Comparison.slug == slug)).one()
        issue = Issue(week=week, subject=f"Issue {week}", preheader="Second look", state="draft")
        session.add(issue)
        session.flush()
        session.add(IssueItem(issue_id=issue.id, comparison_id=comparison_id, position=0))
        issue_id = issue.id
    start_send(engine, issue_id, now=when, settings=settings)
    return issue_id


def flip_review(engine, comparison: str, tool: str, lens: str, verdict: str) -> None:
    with session_scope(engine) as session:
        review = session.exec(select(Review).join(Comparison, Comparison.id == Review.comparison_id)
                              .join(Tool, Tool.id == Review.tool_id)
                              .where(Comparison.slug == comparison, Tool.slug == tool, Review.lens == lens)).one()
        review.verdict = verdict


def add_votes(engine, slug: str, picks: list[str | None]) -> None:
    """One reader per pick (a tool slug, or None for "pass on both")."""
    with session_scope(engine) as session:
        comparison_id = session.exec(select(Comparison.id).where(Comparison.slug == slug)).one()
        tools = dict(session.exec(select(Tool.slug, Tool.id).join(ComparisonTool, ComparisonTool.tool_id == Tool.id)
                                  .where(ComparisonTool.comparison_id == comparison_id)).all())
        start = len(session.exec(select(Subscriber.id)).all())
        for n, pick in enumerate(picks):
            reader = Subscriber(email=f"voter{start + n}@example.com", status="active",
                                confirmed_at=datetime.now(timezone.utc))
            session.add(reader)
            session.flush()
            session.add(Vote(comparison_id=comparison_id, subscriber_id=reader.id,
                             tool_id=tools[pick] if pick else None))


def two_sends(engine, settings) -> tuple[int, int]:
    """W48 goes out (GroqCloud: Panel ship 100%, the panel ships it); its competition and thesis
    reviewers then pass on GroqCloud (50%: split); W49 carries the comparison again. Returns both
    issue ids."""
    first = draft_issue(engine, settings, "2026-W48").issue.id
    start_send(engine, first, now=datetime(2026, 11, 26, 8, tzinfo=timezone.utc), settings=settings)
    flip_review(engine, GROQ, "groqcloud", "competition", "pass")
    flip_review(engine, GROQ, "groqcloud", "thesis", "pass")
    second = send_again(engine, settings, GROQ, "2026-W49", datetime(2026, 12, 3, 8, tzinfo=timezone.utc))
    return first, second

