"""The weekly "Verdicts that changed" block: which verdicts of earlier issues have moved on
materially (issues/material.py, the one definition), frozen with the new issue when it starts
sending, so the block a reader got never moves afterwards.

What is frozen (issue_record.changed) is issue-wide:
- `entries`: one per (earlier issue, comparison) whose frozen verdict differs materially from the
  live one at this freeze, each with a one-line summary;
- `carriers`: for each comparison with an entry, every earlier issue (oldest first) that carried
  it, with its index there, so the sender can tell from the delivery ledger which issue last
  brought that comparison to a reader (delivery/variants.py).

A reader gets an entry when the earlier issue named in it is the last one that brought them the
comparison: they are told "what you read in issue W has changed", never about a verdict they
were never sent, and not when a later issue already showed them the new verdict. A change already
announced in an earlier issue's block (same earlier issue, comparison and summary) is not
announced again; when it moves again it is.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlmodel import Session, select

from newsletter.config import Settings
from newsletter.errors import UserError
from newsletter.issues.material import ToolChange, material_changes
from newsletter.issues.models import Issue, IssueRecord
from newsletter.issues.view import ChangedLine, IssueView, build_issue_view

# Earlier issues looked at: about half a year of weekly issues. Older verdicts are what the
# comparison pages and follow-ups are for; the block stays a few lines.
LOOKBACK = 26


def summary(changes: list[ToolChange]) -> str:
    """"GroqCloud: the panel now says ship (was pass); Together AI: entry price Free → $5"."""
    return "; ".join(f"{change.tool}: {', '.join(change.reasons)}" for change in changes)


def _earlier(session: Session, issue: Issue) -> list[tuple[IssueRecord, Issue]]:
    rows = session.exec(
        select(IssueRecord, Issue).join(Issue, Issue.id == IssueRecord.issue_id)
        .where(IssueRecord.issue_id != issue.id)
        .order_by(IssueRecord.frozen_at.desc(), IssueRecord.issue_id.desc()).limit(LOOKBACK)
    ).all()
    return list(reversed(rows))  # oldest first


def changes_to_freeze(session: Session, settings: Settings, issue: Issue,
                      thaw: Callable[[dict, Settings], IssueView]) -> dict:
    """What `issue`'s record freezes as its changes (see the module's docstring); `thaw` turns an
    earlier record's view into an IssueView (issues/frozen.py, which calls this)."""
    earlier = _earlier(session, issue)
    announced = {(entry["issue_id"], entry["slug"], entry["summary"])
                 for record, _issue in earlier for entry in (record.changed or {}).get("entries", [])}
    points = settings.content.material_ship_points
    entries, carriers = [], {}
    for record, other in earlier:
        try:
            live = {view.slug: view for view in build_issue_view(session, settings, other).comparisons}
        except UserError:  # its comparisons are gone from the store: nothing to compare
            live = {}
        for index, then in enumerate(thaw(record.view, settings).comparisons):
            carriers.setdefault(then.slug, []).append([other.id, index])
            now = live.get(then.slug)
            changes = material_changes(then, now, points) if now is not None else []
            line = summary(changes)
            if changes and (other.id, then.slug, line) not in announced:
                entries.append({"issue_id": other.id, "week": other.week, "slug": then.slug,
                                "title": then.title, "url": now.url, "summary": line})
    wanted = {entry["slug"] for entry in entries}
    return {"entries": entries, "carriers": {slug: found for slug, found in carriers.items() if slug in wanted}}


def changed_lines(frozen: dict | None, chosen: tuple[int, ...]) -> list[ChangedLine]:
    """The block's lines for a reader: the frozen entries at the indexes `chosen`."""
    entries = (frozen or {}).get("entries", [])
    return [ChangedLine(entries[i]["title"], entries[i]["url"], entries[i]["week"], entries[i]["summary"])
            for i in chosen]
