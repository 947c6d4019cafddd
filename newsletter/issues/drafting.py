"""Creating the week's issue. One issue per ISO week: the unique week column decides races."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.content.models import Comparison
from newsletter.db import session_scope
from newsletter.errors import UserError
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.selection import select_for_week
from newsletter.weeks import parse_week


@dataclass
class DraftResult:
    issue: Issue
    created: bool
    comparisons: list[Comparison]


def subject_for(settings: Settings, comparisons: list[Comparison]) -> str:
    lead = comparisons[0].title
    more = len(comparisons) - 1
    suffix = f" + {more} more" if more else ""
    subject = f"{lead}{suffix}"
    return subject[:200]


def preheader_for(comparisons: list[Comparison]) -> str:
    text = "This week's verdicts: " + "; ".join(c.title for c in comparisons)
    return text if len(text) <= 150 else text[:149].rstrip() + "…"


def issue_for_week(engine: Engine, week: str) -> Issue | None:
    with session_scope(engine) as session:
        return session.exec(select(Issue).where(Issue.week == week)).first()


def draft_issue(engine: Engine, settings: Settings, week: str,
                on_created: Callable[[Session, Issue], None] | None = None) -> DraftResult:
    """Return the week's issue, drafting it from the selection rule when there is none.
    `on_created` runs in the drafting transaction (the console and API audit the draft there)."""
    parse_week(week)
    existing = issue_for_week(engine, week)
    if existing is not None:
        return DraftResult(existing, False, [])
    with session_scope(engine) as session:
        comparisons = select_for_week(session, week, settings.site.zone, settings.issue.max_comparisons)
    if not comparisons:
        raise UserError(
            f"week {week}: no comparisons published that week (in {settings.site.timezone}) "
            "that an earlier issue has not already sent"
        )
    try:
        with session_scope(engine) as session:
            issue = Issue(week=week, subject=subject_for(settings, comparisons),
                          preheader=preheader_for(comparisons))
            session.add(issue)
            session.flush()
            for position, comparison in enumerate(comparisons):
                session.add(IssueItem(issue_id=issue.id, comparison_id=comparison.id, position=position))
            if on_created is not None:
                session.flush()
                on_created(session, issue)
    except IntegrityError:
        # Another process drafted the same week between our check and insert.
        existing = issue_for_week(engine, week)
        if existing is None:
            raise
        return DraftResult(existing, False, [])
    return DraftResult(issue, True, comparisons)
