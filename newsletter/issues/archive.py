"""The public archive: the issues that went out, newest first, as the web index, the feeds and
the sitemap read them.

Only issues that started sending are public (a draft or a scheduled issue is not news yet).
Pages are keyset pages on the issue id, so a new issue going out while a reader pages does
not shift what they see. Each entry's content is the issue's public web view in brief: the
editor's note and each comparison's verdict with its tools' figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.content.models import Comparison, ComparisonTool, Tool
from newsletter.issues.models import Issue, IssueItem
from newsletter.issues.states import IssueState
from newsletter.issues.frozen import issue_view
from newsletter.issues.view import IssueView, issue_web_url

PUBLIC_STATES = (IssueState.sending.value, IssueState.sent.value)


@dataclass(frozen=True)
class ArchiveEntry:
    id: int
    week: str
    subject: str
    preheader: str
    sent_at: datetime  # when it started going out (UTC)
    url: str
    comparisons: list[tuple[str, str]]  # (slug, title) in the issue's order


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def sent_issues(session: Session, settings: Settings, limit: int, before_id: int | None = None) -> list[ArchiveEntry]:
    """Up to `limit` public issues older than `before_id`, newest first."""
    query = select(Issue).where(Issue.state.in_(PUBLIC_STATES)).order_by(Issue.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(Issue.id < before_id)
    issues = list(session.execute(query).scalars())
    titles = _titles(session, [issue.id for issue in issues])
    return [ArchiveEntry(issue.id, issue.week, issue.subject, issue.preheader,
                         _aware(issue.started_at or issue.created_at), issue_web_url(settings, issue.id),
                         titles.get(issue.id, [])) for issue in issues]


def _titles(session: Session, issue_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    if not issue_ids:
        return {}
    rows = session.execute(select(IssueItem.issue_id, Comparison.slug, Comparison.title)
                           .join(Comparison, Comparison.id == IssueItem.comparison_id)
                           .where(IssueItem.issue_id.in_(issue_ids))
                           .order_by(IssueItem.issue_id, IssueItem.position)).all()
    found: dict[int, list[tuple[str, str]]] = {}
    for issue_id, slug, title in rows:
        found.setdefault(issue_id, []).append((slug, title))
    return found


def entry_views(session: Session, settings: Settings, entries: list[ArchiveEntry]) -> list[IssueView]:
    """The full view of each entry (for the feeds' content) as readers got it, in order."""
    return [issue_view(session, settings, session.get(Issue, entry.id)) for entry in entries]


def published_comparisons(session: Session) -> list[tuple[str, datetime]]:
    """(slug, published) of every comparison with a public page (not taken down), for the sitemap."""
    rows = session.execute(select(Comparison.slug, Comparison.published_at)
                           .where(Comparison.unpublished_at.is_(None)).order_by(Comparison.slug)).all()
    return [(slug, _aware(published)) for slug, published in rows]


def published_tools(session: Session) -> list[tuple[str, datetime]]:
    """(slug, last change) of every tool a published comparison shows, for the sitemap: a tool
    only in comparisons taken down has no page."""
    shown = select(ComparisonTool.tool_id).join(Comparison, Comparison.id == ComparisonTool.comparison_id) \
        .where(Comparison.unpublished_at.is_(None))
    rows = session.execute(select(Tool.slug, Tool.updated_at).where(Tool.id.in_(shown)).order_by(Tool.slug)).all()
    return [(slug, _aware(updated)) for slug, updated in rows]
