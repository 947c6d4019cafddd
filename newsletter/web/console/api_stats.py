"""The statistics API: figures over time, one issue's figures, the vote digest (read scope).

The same numbers as the console's stats pages and `newsletter stats` (newsletter/reports).
"""

from dataclasses import asdict
from typing import Annotated

from fastapi import Path, Query

from newsletter.reports.audience import growth
from newsletter.reports.stats import issue_stats
from newsletter.reports.votes import vote_digest
from newsletter.web.console.api_base import Cursor, Limit_, Reading, api_router, decode_cursor, encode_cursor, \
    error
from newsletter.web.console.deps import Console
from newsletter.web.console.schemas import ErrorOut
from newsletter.web.console.schemas_stats import ComparisonDigestOut, DigestPage, IssueStatsDetailOut, \
    IssueStatsOut, StatsOut, WeekGrowthOut

router = api_router()


@router.get("/stats", response_model=StatsOut)
def stats(ctx: Console, _actor: Reading,
          last: Annotated[int, Query(ge=1, le=104, description="How many recent issues")] = 12) -> StatsOut:
    """The last issues' figures and readers joined and left per week."""
    weeks = [WeekGrowthOut(**asdict(w), net=w.net) for w in growth(ctx.engine, ctx.settings.site.zone)]
    return StatsOut(issues=[IssueStatsOut(**asdict(r)) for r in issue_stats(ctx.engine, last)], weeks=weeks)


@router.get("/stats/issues/{issue_id}", response_model=IssueStatsDetailOut, responses={404: {"model": ErrorOut}})
def issue(ctx: Console, _actor: Reading, issue_id: Annotated[int, Path(ge=1, le=2**31 - 1)]):
    """One issue's figures and the vote digest of its comparisons."""
    rows = issue_stats(ctx.engine, issue_id=issue_id)
    if not rows:
        return error(404, "not_found", f"Issue {issue_id} does not exist or has not started sending.",
                     {"issue_id": "no issue with figures"})
    digest = [ComparisonDigestOut(**asdict(c)) for c in vote_digest(ctx.engine, issue_id=issue_id)]
    return IssueStatsDetailOut(issue=IssueStatsOut(**asdict(rows[0])), comparisons=digest)


@router.get("/stats/comparisons", response_model=DigestPage)
def comparisons(ctx: Console, _actor: Reading, cursor: Cursor = "", limit: Limit_ = 50):
    """The vote digest per comparison, newest comparison first."""
    before = decode_cursor(cursor, "id", int) if cursor else None
    if before is not None and not 1 <= before <= 2**31:  # type: ignore[operator]
        return error(422, "invalid_request", "The cursor is not one this API gave out.",
                     {"cursor": "not a cursor from a previous page"})
    rows = vote_digest(ctx.engine, limit=limit + 1, before_id=before)  # type: ignore[arg-type]
    items = [ComparisonDigestOut(**asdict(c)) for c in rows[:limit]]
    return DigestPage(items=items, next_cursor=encode_cursor({"id": items[-1].id}) if len(rows) > limit else None)
