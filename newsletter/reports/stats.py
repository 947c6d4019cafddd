"""What each issue did: recipients, sent, failed, delivered, bounced, complained, unsubscribed,
opens, clicks, votes.

The delivery and event figures (recipients, sent, failed, skipped, pending, delivered, bounced,
complained, opens, clicks) are the issues' counters (newsletter/tallies.py, migration 0029),
kept in the same transaction as the outbox, provider-event and tracking rows they count, so
they equal a count over those rows (tests/reports/test_tallies.py) at a few rows' cost instead
of an index scan over a million deliveries per figure (issue 18 point 4). Votes are one grouped
query; an unsubscribe belongs to the issue a reader got last before leaving (between this
issue's start and the next one's): one small query per issue, walking
ix_consent_event_kind_created.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, distinct, func, select
from sqlmodel import Session

from newsletter import tallies
from newsletter.content.models import Vote
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery
from newsletter.issues.models import Issue, IssueItem
from newsletter.reports.charts import bar_chart
from newsletter.subscribers.models import ConsentEvent

COLUMNS = ["recipients", "sent", "delivered", "bounced", "complained", "unsubscribed", "votes"]
# Every figure of an issue, in the order exports and the API list them.
FIGURES = ["recipients", "sent", "failed", "skipped", "pending", "delivered", "bounced", "complained",
           "unsubscribed", "opens", "clicks", "votes"]
BOUNCES = ("bounced_hard", "bounced_soft")


@dataclass
class IssueStats:
    id: int
    week: str
    subject: str
    state: str
    started_at: datetime | None
    recipients: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0  # unsubscribed or suppressed between enqueue and send, or the issue cancelled
    pending: int = 0  # queued, sending or waiting for a retry
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    votes: int = 0
    opens: int = 0  # only with [tracking] opens
    clicks: int = 0  # only with [tracking] clicks

    def rate(self, name: str) -> str:
        base = self.sent or 0
        return f"{100 * getattr(self, name) / base:.1f}%" if base else "—"


def _chosen(session: Session, limit: int, issue_id: int | None) -> tuple[list[Issue], dict[int, datetime | None]]:
    """The issues to report (newest `limit` that started, or just `issue_id`) and, for each, the
    start of the next issue that started after it (the end of its unsubscribe window)."""
    query = select(Issue).where(Issue.started_at.is_not(None))
    query = query.where(Issue.id == issue_id) if issue_id is not None else \
        query.order_by(Issue.started_at.desc()).limit(limit)
    issues = sorted(session.execute(query).scalars(), key=lambda i: i.started_at)
    until: dict[int, datetime | None] = {}
    for issue in issues:
        until[issue.id] = session.execute(
            select(func.min(Issue.started_at)).where(Issue.started_at > issue.started_at)).scalar_one()
    return issues, until


def _unsubscribed(session: Session, issue: Issue, until: datetime | None) -> int:
    window = [ConsentEvent.kind == "unsubscribed", ConsentEvent.created_at >= issue.started_at]
    if until is not None:
        window.append(ConsentEvent.created_at < until)
    got_it = select(Delivery.subscriber_id).where(Delivery.issue_id == issue.id)
    return session.execute(select(func.count(distinct(ConsentEvent.subscriber_id)))
                           .where(*window, ConsentEvent.subscriber_id.in_(got_it))).scalar_one()


def _figures(session: Session, ids: list[int]) -> dict[int, dict[str, int]]:
    """Every figure of the issues `ids`: {issue id: {figure: count}}. The delivery and event
    figures are the issues' counters (newsletter/tallies.py: a few rows, kept in the transactions
    that write the rows they count); pending is what is neither sent, failed nor skipped. Votes
    are one grouped query over the issues' comparisons (a vote belongs to a comparison, which
    several issues can carry)."""
    counted = tallies.read(session, ids)
    votes = dict(session.execute(select(IssueItem.issue_id, func.count()).select_from(Vote)
                                 .join(IssueItem, IssueItem.comparison_id == Vote.comparison_id)
                                 .where(IssueItem.issue_id.in_(ids)).group_by(IssueItem.issue_id)).all())
    figures: dict[int, dict[str, int]] = {}
    for issue_id in ids:
        row = {name: counted.get(issue_id, {}).get(name, 0) for name in tallies.NAMES}
        row["pending"] = row["recipients"] - row["sent"] - row["failed"] - row["skipped"]
        figures[issue_id] = {**row, "votes": votes.get(issue_id, 0)}
    return figures


def issue_stats(engine: Engine, limit: int = 12, issue_id: int | None = None) -> list[IssueStats]:
    """The last `limit` issues that started sending, oldest first (or just `issue_id`)."""
    with session_scope(engine) as session:
        issues, until = _chosen(session, limit, issue_id)
        ids = [issue.id for issue in issues]
        figures = _figures(session, ids) if ids else {}
        result = []
        for issue in issues:
            row = {**figures[issue.id], "unsubscribed": _unsubscribed(session, issue, until[issue.id])}
            result.append(IssueStats(id=issue.id, week=issue.week, subject=issue.subject, state=issue.state,
                                     started_at=issue.started_at, **row))
    return result


CHARTED = [("sent", "Sent"), ("delivered", "Delivered"), ("bounced", "Bounced"), ("complained", "Complained"),
           ("unsubscribed", "Unsubscribed"), ("votes", "Votes")]


def issue_charts(rows: list[IssueStats]) -> list[str]:
    """One bar chart per charted figure, a bar per issue (labelled by its week)."""
    labels = [row.week for row in rows]
    return [bar_chart(f"chart-{name}", f"{label} per issue", labels, [getattr(row, name) for row in rows],
                      "Issues oldest first, labelled by ISO week.") for name, label in CHARTED]


def html_report(rows: list[IssueStats], site_name: str) -> str:
    """A standalone page for `newsletter stats --html`: the table and the charts, no script."""
    head = "".join(f"<th>{c}</th>" for c in ["issue", "week", "subject", *COLUMNS])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                         [r.id, r.week, r.subject, *[getattr(r, c) for c in COLUMNS]]) + "</tr>"
        for r in rows
    )
    charts = "".join(f"<h2>{label}</h2>{chart}" for (_, label), chart in zip(CHARTED, issue_charts(rows)))
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(site_name)}: '
            f'issue statistics</title><style>body{{font:15px/1.5 -apple-system,Segoe UI,Roboto,Arial,sans-serif;'
            f'max-width:760px;margin:24px auto;padding:0 16px;color:#1c1b22}}table{{border-collapse:collapse}}'
            f'td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}}td:nth-child(3){{text-align:left}}'
            f'</style></head><body><h1>{html.escape(site_name)}: issue statistics</h1>'
            f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{charts}</body></html>')


def as_dicts(rows: list[IssueStats]) -> list[dict]:
    return [asdict(r) for r in rows]
