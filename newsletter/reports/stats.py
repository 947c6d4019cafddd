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

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.engine import Connection

from newsletter.engine import as_utc
from newsletter.reports.charts import bar_chart

COLUMNS = ["recipients", "sent", "delivered", "bounced", "complained", "unsubscribed", "votes"]
# Every figure of an issue, in the order exports and the API list them.
FIGURES = ["recipients", "sent", "failed", "skipped", "pending", "delivered", "bounced", "complained",
           "unsubscribed", "opens", "clicks", "votes"]
BOUNCES = ("bounced_hard", "bounced_soft")


def delivery_note(transport: str) -> str:
    """Why *delivered* reads 0 on this site, or "" where a provider reports deliveries. Only the
    providers' webhooks say a message reached the inbox; over SMTP (and into the file outbox)
    nothing does, and a column of zeros next to *sent* reads as "nothing arrived" unless said."""
    if transport == "smtp":
        where = "over SMTP, where nothing reports deliveries, so it stays 0: Sent means the relay accepted the message"
    elif transport == "file":
        where = "into the file outbox, so it stays 0: Sent means the message was written there"
    else:
        return ""
    return ("Delivered counts the deliveries a provider reports back through its webhook (Postmark, SendGrid, "
            f"Mailgun, Resend, SES). This site sends {where}.")


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


# Plain SQL over an engine's connection, not the ORM: the models, SQLModel and SQLAlchemy's ORM
# cost `newsletter stats` ~0.5 s of CPU to import, ten times the queries (issue 18 point 4).
_CHOSEN = ("SELECT i.id, i.week, i.subject, i.state, i.started_at, (SELECT min(n.started_at) FROM issue n "
           "WHERE n.started_at > i.started_at) AS until FROM issue i WHERE i.started_at IS NOT NULL")
_TALLIES = text("SELECT issue_id, name, sum(n) FROM issue_tally WHERE issue_id IN :ids GROUP BY issue_id, name"
                ).bindparams(bindparam("ids", expanding=True))
_VOTES = text("SELECT i.issue_id, count(*) FROM vote v JOIN issue_item i ON i.comparison_id = v.comparison_id "
              "WHERE i.issue_id IN :ids GROUP BY i.issue_id").bindparams(bindparam("ids", expanding=True))
_UNSUBSCRIBED = ("SELECT count(DISTINCT c.subscriber_id) FROM consent_event c WHERE c.kind = 'unsubscribed' "
                 "AND c.created_at >= :started {until}AND c.subscriber_id IN "
                 "(SELECT d.subscriber_id FROM delivery d WHERE d.issue_id = :id)")
# The figures the counters hold (newsletter/tallies.py NAMES; tests/reports/test_stats.py checks they agree).
TALLIED = ("recipients", "sent", "failed", "skipped", "delivered", "complained", "bounced", "opens", "clicks")


def _chosen(connection: Connection, limit: int, issue_id: int | None) -> list:
    """The issues to report (newest `limit` that started, or just `issue_id`), oldest first, each
    with the start of the next issue that started after it (the end of its unsubscribe window).
    Timestamps stay as the database returned them, to be bound back unchanged."""
    if issue_id is not None:
        rows = connection.execute(text(_CHOSEN + " AND i.id = :id"), {"id": issue_id}).all()
    else:
        rows = connection.execute(text(_CHOSEN + " ORDER BY i.started_at DESC LIMIT :limit"), {"limit": limit}).all()
    return sorted(rows, key=lambda row: as_utc(row.started_at))


def _unsubscribed(connection: Connection, issue_id: int, started: object, until: object) -> int:
    """Readers who got this issue and unsubscribed between its start and the next issue's."""
    statement = text(_UNSUBSCRIBED.format(until="" if until is None else "AND c.created_at < :until "))
    params = {"id": issue_id, "started": started, **({} if until is None else {"until": until})}
    return connection.execute(statement, params).scalar_one()


def _figures(connection: Connection, ids: list[int]) -> dict[int, dict[str, int]]:
    """Every figure of the issues `ids`: {issue id: {figure: count}}. The delivery and event
    figures are the issues' counters (newsletter/tallies.py: a few rows, kept in the transactions
    that write the rows they count); pending is what is neither sent, failed nor skipped. Votes
    are one grouped query over the issues' comparisons (a vote belongs to a comparison, which
    several issues can carry)."""
    counted: dict[int, dict[str, int]] = {}
    for issue_id, name, total in connection.execute(_TALLIES, {"ids": ids}):
        counted.setdefault(issue_id, {})[name] = int(total)
    votes = dict(connection.execute(_VOTES, {"ids": ids}).all())
    figures: dict[int, dict[str, int]] = {}
    for issue_id in ids:
        row = {name: counted.get(issue_id, {}).get(name, 0) for name in TALLIED}
        row["pending"] = row["recipients"] - row["sent"] - row["failed"] - row["skipped"]
        figures[issue_id] = {**row, "votes": votes.get(issue_id, 0)}
    return figures


def issue_stats(engine: Engine, limit: int = 12, issue_id: int | None = None) -> list[IssueStats]:
    """The last `limit` issues that started sending, oldest first (or just `issue_id`)."""
    with engine.connect() as connection:
        issues = _chosen(connection, limit, issue_id)
        ids = [issue.id for issue in issues]
        figures = _figures(connection, ids) if ids else {}
        result = []
        for issue in issues:
            row = {**figures[issue.id], "unsubscribed": _unsubscribed(connection, issue.id, issue.started_at,
                                                                      issue.until)}
            result.append(IssueStats(id=issue.id, week=issue.week, subject=issue.subject, state=issue.state,
                                     started_at=as_utc(issue.started_at), **row))
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
