"""Drafting and editing an issue, each change audited with before and after in its own transaction."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlmodel import Session

from newsletter.config import Settings
from newsletter.content.models import Comparison
from newsletter.db import session_scope
from newsletter.editors import audit
from newsletter.errors import UserError
from newsletter.issues import editing
from newsletter.issues.drafting import draft_issue
from newsletter.issues.errors import IssueError
from newsletter.issues.models import Issue, IssueItem
from newsletter.weeks import current_week


@dataclass
class ComparisonRef:
    slug: str
    title: str
    category: str


@dataclass
class IssueDetail:
    id: int
    week: str
    subject: str
    preheader: str
    intro: str
    state: str
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    comparisons: list[ComparisonRef] = field(default_factory=list)
    subject_follows_reader: bool = False  # issues/variants.py: the subject follows each reader's first comparison
    overrides: list[str] = field(default_factory=list)  # failing checks the schedule goes ahead despite

    @property
    def editable(self) -> bool:
        return self.state in editing.EDITABLE


def snapshot(session: Session, issue: Issue) -> dict:
    """The editable content as the audit log keeps it."""
    return {"subject": issue.subject, "preheader": issue.preheader, "intro": issue.intro, "state": issue.state,
            "subject_follows_reader": issue.subject_follows_reader,
            "comparisons": editing.slugs_of(session, issue.id)}


def detail(engine: Engine, issue_id: int) -> IssueDetail:
    with session_scope(engine) as session:
        issue = editing.get_issue(session, issue_id)
        rows = session.execute(select(Comparison.slug, Comparison.title, Comparison.category)
                               .join(IssueItem, IssueItem.comparison_id == Comparison.id)
                               .where(IssueItem.issue_id == issue_id)
                               .order_by(IssueItem.position)).all()
        return IssueDetail(issue.id, issue.week, issue.subject, issue.preheader, issue.intro, issue.state,
                           issue.created_at, issue.scheduled_at, issue.started_at, issue.finished_at,
                           [ComparisonRef(*row) for row in rows], issue.subject_follows_reader,
                           editing.overrides_of(issue))


def create_draft(engine: Engine, settings: Settings, actor: audit.Actor, week: str | None) -> tuple[int, bool]:
    """The week's issue (this week in the site's zone by default): (id, created)."""
    week = (week or current_week(settings.site.zone)).strip()

    def record(session: Session, issue: Issue) -> None:
        audit.record(session, actor, "issue.draft", f"issue:{issue.id}", None, snapshot(session, issue))

    try:
        result = draft_issue(engine, settings, week, on_created=record)
    except IssueError:
        raise
    except UserError as exc:  # a malformed week, or nothing published that week
        raise IssueError(str(exc), "week")
    return result.issue.id, result.created


def change(engine: Engine, actor: audit.Actor, issue_id: int, action: str,
           apply: Callable[[Session], object]) -> None:
    """Run one edit and audit it with the content before and after, in one transaction."""
    with session_scope(engine) as session:
        before = snapshot(session, editing.editable_issue(session, issue_id))
        apply(session)
        issue = editing.get_issue(session, issue_id)
        audit.record(session, actor, action, f"issue:{issue_id}", before, snapshot(session, issue))


def update(engine: Engine, actor: audit.Actor, issue_id: int, subject: str | None = None,
           preheader: str | None = None, intro: str | None = None, follow_reader: bool | None = None) -> None:
    change(engine, actor, issue_id, "issue.edit",
           lambda session: editing.edit_in(session, issue_id, subject, preheader, intro, follow_reader))


def set_comparisons(engine: Engine, actor: audit.Actor, issue_id: int, slugs: list[str]) -> None:
    change(engine, actor, issue_id, "issue.comparisons",
           lambda session: editing.set_comparisons_in(session, issue_id, slugs))


def add_comparison(engine: Engine, actor: audit.Actor, issue_id: int, slug: str) -> None:
    change(engine, actor, issue_id, "issue.comparisons",
           lambda session: editing.add_in(session, issue_id, slug.strip()))


def remove_comparison(engine: Engine, actor: audit.Actor, issue_id: int, slug: str) -> None:
    change(engine, actor, issue_id, "issue.comparisons",
           lambda session: editing.remove_in(session, issue_id, slug))


def move_to(engine: Engine, actor: audit.Actor, issue_id: int, ref: str, position: int) -> None:
    """To a 1-based position (the CLI's `issue move`)."""
    change(engine, actor, issue_id, "issue.comparisons",
           lambda session: editing.move_in(session, issue_id, ref, position))


def move_comparison(engine: Engine, actor: audit.Actor, issue_id: int, slug: str, step: int) -> None:
    """One place up (step -1) or down (+1); the ends stay where they are."""
    def apply(session: Session) -> None:
        slugs = editing.slugs_of(session, issue_id)
        if slug not in slugs:
            raise IssueError(f"{slug} is not in issue {issue_id}", "comparisons")
        target = min(max(slugs.index(slug) + 1 + step, 1), len(slugs))
        editing.move_in(session, issue_id, slug, target)

    change(engine, actor, issue_id, "issue.comparisons", apply)


def candidates(engine: Engine, issue_id: int, limit: int = 50) -> list[ComparisonRef]:
    """Comparisons not in the issue, newest first: what the console offers to add."""
    with session_scope(engine) as session:
        taken = set(editing.slugs_of(session, issue_id))
        rows = session.execute(select(Comparison.slug, Comparison.title, Comparison.category)
                               .order_by(Comparison.published_at.desc()).limit(limit + len(taken))).all()
    return [ComparisonRef(*row) for row in rows if row[0] not in taken][:limit]
