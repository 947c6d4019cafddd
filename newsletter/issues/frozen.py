"""A sent issue is a record: when it starts sending, its view is frozen (issue_record), and from
then on everything that shows it (the workers, the web view, the archive, the feeds, the
tracking redirects) reads the frozen view, never the live store.

So an edited review, a re-import or new votes never change what an issue that went out says;
`changed_since` tells which of its verdicts have moved on, for the web view's note.
The site's own settings (name, address) are not frozen: they are not the verdict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sqlmodel import Session

from newsletter.config import Settings
from newsletter.db import insert_for
from newsletter.issues.dateline import issue_date
from newsletter.issues.models import Issue, IssueRecord
from newsletter.issues.view import ComparisonView, IssueView, QuoteView, ToolView, build_issue_view, site_view


def freeze(session: Session, settings: Settings, issue: Issue) -> IssueView:
    """The issue's frozen view, made now if it has none. A later call (a second worker, a
    resumed or restarted send) gets the first record, even when two race: the loser's insert
    does nothing and it reads the winner's row, so every reader gets the same verdicts."""
    record = session.get(IssueRecord, issue.id)
    if record is None:
        from newsletter.issues.changed import changes_to_freeze  # it reads earlier records through _thaw

        data = asdict(build_issue_view(session, settings, issue))
        for per_reader in ("site", "positions", "changed", "notice"):
            data.pop(per_reader, None)
        changed = changes_to_freeze(session, settings, issue, _thaw)
        statement = insert_for(session, IssueRecord).values(issue_id=issue.id, view=data, changed=changed)
        session.execute(statement.on_conflict_do_nothing(index_elements=["issue_id"]))
        record = session.get(IssueRecord, issue.id, populate_existing=True)
    return _dated(_thaw(record.view, settings), settings, issue)


def _dated(view: IssueView, settings: Settings, issue: Issue) -> IssueView:
    """A record frozen before the masthead's date was kept gets it from the issue (the day its
    send started, which never changes once set)."""
    return view if view.issue_date else replace(view, issue_date=issue_date(settings, issue).isoformat())


def _thaw(data: dict, settings: Settings) -> IssueView:
    comparisons = []
    for item in data["comparisons"]:
        tools = [ToolView(**{**tool, "quote": QuoteView(**tool["quote"]) if tool.get("quote") else None})
                 for tool in item["tools"]]
        comparisons.append(ComparisonView(**{**item, "tools": tools}))
    return IssueView(**{**data, "comparisons": comparisons, "site": site_view(settings),
                        "track_opens": settings.tracking.opens, "track_clicks": settings.tracking.clicks})


def frozen_changes(session: Session, issue_id: int) -> dict:
    """The "Verdicts that changed" frozen with the issue (issues/changed.py); empty before."""
    record = session.get(IssueRecord, issue_id)
    return (record.changed if record is not None else None) or {"entries": [], "carriers": {}}


def issue_view(session: Session, settings: Settings, issue: Issue) -> IssueView:
    """The frozen view of an issue that started sending; the live one of a draft (or of an
    issue sent before records were kept)."""
    record = session.get(IssueRecord, issue.id)
    if record is None:
        return build_issue_view(session, settings, issue)
    return _dated(_thaw(record.view, settings), settings, issue)


@dataclass(frozen=True)
class Changed:
    title: str
    url: str
    was: str  # the verdict line the readers got
    now: str


def changed_since(session: Session, settings: Settings, issue: Issue) -> list[Changed]:
    """The comparisons of a frozen issue whose verdict (or a tool's Panel ship %) differs now."""
    record = session.get(IssueRecord, issue.id)
    if record is None:
        return []
    frozen = _thaw(record.view, settings)
    live = {comparison.slug: comparison for comparison in build_issue_view(session, settings, issue).comparisons}
    found = []
    for then in frozen.comparisons:
        now = live.get(then.slug)
        ships = lambda view: [(tool.name, tool.panel_ship) for tool in view.tools]  # noqa: E731
        if now is not None and (now.verdict_line != then.verdict_line or ships(now) != ships(then)):
            found.append(Changed(then.title, then.url, then.verdict_line, now.verdict_line))
    return found
