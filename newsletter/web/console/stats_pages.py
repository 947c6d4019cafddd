"""The console's statistics: /admin/stats (issues over time and readers per week, with
charts), /admin/stats/issues/{id} (one issue), /admin/stats/comparisons (the vote digest) and
their CSV exports. Read-only, so every signed-in role may see them; the figures come from
newsletter/reports (the CLI's `newsletter stats` and the API share them).
"""

from typing import Annotated

from fastapi import Path, Query
from fastapi.responses import HTMLResponse, Response

from newsletter.reports.audience import growth
from newsletter.reports.charts import bar_chart, hbar_chart
from newsletter.reports.export import digest_csv, issues_csv
from newsletter.reports.stats import CHARTED, IssueStats, delivery_note, issue_charts, issue_stats
from newsletter.reports.votes import vote_digest
from newsletter.web.console.deps import Console
from newsletter.web.console.views import Reader, console_router, message, page

router = console_router()
DIGEST_PAGE = 50
Last = Annotated[int, Query(ge=1, le=104, description="How many recent issues")]
IssueId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def csv_response(body: str, filename: str) -> Response:
    """A download, never shown inline (and never cached: it holds readers' aggregate figures)."""
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


def funnel_chart(row: IssueStats, tracking) -> str:
    """One issue's figures side by side (opens and clicks only when they are tracked)."""
    names = ["sent", "delivered", "failed", "bounced", "complained", "unsubscribed", "votes"]
    names += (["opens"] if tracking.opens else []) + (["clicks"] if tracking.clicks else [])
    labels = [n.capitalize() for n in names]
    return hbar_chart("chart-issue", f"Issue {row.week}", labels, [getattr(row, n) for n in names],
                     "Deliveries and what readers did with them.")


@router.get("/stats", response_class=HTMLResponse)
def stats_overview(ctx: Console, me: Reader, last: Last = 12) -> HTMLResponse:
    rows = issue_stats(ctx.engine, last)
    weeks = growth(ctx.engine, ctx.settings.site.zone)
    labels = [w.week for w in weeks]
    readers = [("Joined", bar_chart("chart-joined", "Readers joined per week", labels, [w.joined for w in weeks])),
               ("Unsubscribed", bar_chart("chart-left", "Readers unsubscribed per week", labels,
                                          [w.left for w in weeks]))]
    return page(ctx, "stats.html", me=me, title="Stats", current="stats", rows=rows, last=last, weeks=weeks,
                issue_charts=list(zip([label for _, label in CHARTED], issue_charts(rows))), reader_charts=readers,
                tracking=ctx.settings.tracking, delivery_note=delivery_note(ctx.settings.mail.transport))


@router.get("/stats/issues.csv")
def stats_csv(ctx: Console, _me: Reader, last: Last = 12) -> Response:
    return csv_response(issues_csv(issue_stats(ctx.engine, last)), "issue-stats.csv")


@router.get("/stats/issues/{issue_id}", response_class=HTMLResponse)
def issue_page(ctx: Console, me: Reader, issue_id: IssueId) -> HTMLResponse:
    rows = issue_stats(ctx.engine, issue_id=issue_id)
    if not rows:
        return message(ctx, "No figures for this issue", f"Issue {issue_id} does not exist or has not started "
                       "sending, so it has no figures yet.", 404, [("All stats", "/admin/stats")])
    row = rows[0]
    return page(ctx, "stats_issue.html", me=me, title=f"Stats of issue {row.week}", current="stats", row=row,
                chart=funnel_chart(row, ctx.settings.tracking), tracking=ctx.settings.tracking,
                digest=vote_digest(ctx.engine, issue_id=issue_id),
                delivery_note=delivery_note(ctx.settings.mail.transport))


@router.get("/stats/comparisons", response_class=HTMLResponse)
def comparisons_page(ctx: Console, me: Reader,
                     before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> HTMLResponse:
    rows = vote_digest(ctx.engine, limit=DIGEST_PAGE + 1, before_id=before)
    more = rows[DIGEST_PAGE - 1].id if len(rows) > DIGEST_PAGE else None
    return page(ctx, "stats_comparisons.html", me=me, title="Vote digest", current="stats",
                rows=rows[:DIGEST_PAGE], more=more, paged=before is not None)


@router.get("/stats/comparisons.csv")
def comparisons_csv(ctx: Console, _me: Reader) -> Response:
    return csv_response(digest_csv(vote_digest(ctx.engine)), "vote-digest.csv")
