"""What each issue did: recipients, sent, delivered, bounced, complained, unsubscribed, votes.

Counted from the outbox (deliveries), the provider and bounce-mailbox events
(webhook_event), consent events and votes: nothing is kept as a separate
counter that could drift. An unsubscribe belongs to the issue a reader got
last before leaving (between this issue's start and the next one's).
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, distinct, func, select

from newsletter.content.models import Vote
from newsletter.db import session_scope
from newsletter.delivery.models import Delivery, DeliveryState
from newsletter.issues.models import Issue, IssueItem
from newsletter.feedback.models import TrackingEvent
from newsletter.feedback.models import WebhookEvent
from newsletter.subscribers.models import ConsentEvent

COLUMNS = ["recipients", "sent", "delivered", "bounced", "complained", "unsubscribed", "votes"]


@dataclass
class IssueStats:
    id: int
    week: str
    subject: str
    state: str
    started_at: datetime | None
    recipients: int = 0
    sent: int = 0
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


def _events(session, issue_id: int, kinds: tuple[str, ...]) -> int:
    return session.execute(
        select(func.count(distinct(WebhookEvent.delivery_id)))
        .join(Delivery, Delivery.id == WebhookEvent.delivery_id)
        .where(Delivery.issue_id == issue_id, WebhookEvent.kind.in_(kinds))
    ).scalar_one()


def issue_stats(engine: Engine, limit: int = 12, issue_id: int | None = None) -> list[IssueStats]:
    """The last `limit` issues that started sending, oldest first (or just `issue_id`)."""
    with session_scope(engine) as session:
        query = select(Issue).where(Issue.started_at.is_not(None)).order_by(Issue.started_at.desc())
        issues = list(session.execute(query).scalars())
        starts = sorted((i.started_at for i in issues))
        chosen = [i for i in issues if i.id == issue_id] if issue_id is not None else issues[:limit]
        result = []
        for issue in sorted(chosen, key=lambda i: i.started_at):
            later = [s for s in starts if s > issue.started_at]
            until = later[0] if later else None
            states = dict(session.execute(
                select(Delivery.state, func.count()).where(Delivery.issue_id == issue.id).group_by(Delivery.state)
            ).all())
            window = [ConsentEvent.created_at >= issue.started_at]
            if until is not None:
                window.append(ConsentEvent.created_at < until)
            unsubscribed = session.execute(
                select(func.count(distinct(ConsentEvent.subscriber_id)))
                .where(ConsentEvent.kind == "unsubscribed", *window,
                       ConsentEvent.subscriber_id.in_(select(Delivery.subscriber_id)
                                                      .where(Delivery.issue_id == issue.id)))
            ).scalar_one()
            votes = session.execute(
                select(func.count()).select_from(Vote)
                .join(IssueItem, and_(IssueItem.comparison_id == Vote.comparison_id, IssueItem.issue_id == issue.id))
            ).scalar_one()
            tracked = dict(session.execute(
                select(TrackingEvent.kind, func.count(distinct(TrackingEvent.subscriber_id)))
                .where(TrackingEvent.issue_id == issue.id).group_by(TrackingEvent.kind)
            ).all())
            result.append(IssueStats(
                id=issue.id, week=issue.week, subject=issue.subject, state=issue.state, started_at=issue.started_at,
                recipients=sum(states.values()), sent=states.get(DeliveryState.sent.value, 0),
                delivered=_events(session, issue.id, ("delivered",)),
                bounced=_events(session, issue.id, ("bounced_hard", "bounced_soft")),
                complained=_events(session, issue.id, ("complained",)),
                unsubscribed=unsubscribed, votes=votes,
                opens=tracked.get("open", 0), clicks=tracked.get("click", 0),
            ))
    return result


def _bars(rows: list[IssueStats], name: str, colour: str) -> str:
    """A small inline SVG bar chart: no script, no external file."""
    width, height, gap = 560, 160, 8
    peak = max((getattr(r, name) for r in rows), default=0) or 1
    bar = (width - gap * (len(rows) + 1)) / max(len(rows), 1)
    parts = [f'<svg role="img" aria-label="{html.escape(name)} per issue" width="{width}" height="{height + 30}" '
             f'viewBox="0 0 {width} {height + 30}" xmlns="http://www.w3.org/2000/svg">']
    for index, row in enumerate(rows):
        value = getattr(row, name)
        h = height * value / peak
        x = gap + index * (bar + gap)
        parts.append(f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                     f'<title>{html.escape(row.week)}: {value}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height + 14}" font-size="11" text-anchor="middle">'
                     f'{html.escape(row.week[-3:])}</text>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{max(height - h - 4, 10):.1f}" font-size="11" '
                     f'text-anchor="middle">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def html_report(rows: list[IssueStats], site_name: str) -> str:
    head = "".join(f"<th>{c}</th>" for c in ["issue", "week", "subject", *COLUMNS])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                         [r.id, r.week, r.subject, *[getattr(r, c) for c in COLUMNS]]) + "</tr>"
        for r in rows
    )
    charts = "".join(f"<h2>{name.capitalize()}</h2>{_bars(rows, name, colour)}" for name, colour in
                     [("sent", "#1d6b43"), ("delivered", "#2d5f8a"), ("bounced", "#8a1c22"),
                      ("complained", "#8a1c22"), ("unsubscribed", "#55525e"), ("votes", "#6a4c93")])
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(site_name)}: '
            f'issue statistics</title><style>body{{font:15px/1.5 -apple-system,Segoe UI,Roboto,Arial,sans-serif;'
            f'max-width:760px;margin:24px auto;padding:0 16px;color:#1c1b22}}table{{border-collapse:collapse}}'
            f'td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right}}td:nth-child(3){{text-align:left}}'
            f'</style></head><body><h1>{html.escape(site_name)}: issue statistics</h1>'
            f'<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{charts}</body></html>')


def as_dicts(rows: list[IssueStats]) -> list[dict]:
    return [asdict(r) for r in rows]
