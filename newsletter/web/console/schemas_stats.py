"""The shapes of the statistics API (/api/v1/stats…), so its OpenAPI schema documents them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class IssueStatsOut(BaseModel):
    id: int
    week: str = Field(description="ISO week, YYYY-Www")
    subject: str
    state: str
    started_at: datetime | None
    recipients: int = Field(description="Deliveries enqueued for the issue, in any state")
    sent: int = Field(description="Accepted by the transport")
    failed: int = Field(description="Given up after every retry")
    skipped: int = Field(description="Not sent: the reader left or was suppressed after enqueue, or the issue was "
                                     "cancelled")
    pending: int = Field(description="Queued, sending or waiting for a retry")
    delivered: int = Field(description="Deliveries with a provider 'delivered' event")
    bounced: int = Field(description="Deliveries with a soft or hard bounce")
    complained: int = Field(description="Deliveries marked as spam by their reader")
    unsubscribed: int = Field(description="Readers of this issue who unsubscribed before the next issue started")
    opens: int = Field(description="Readers who opened it (0 unless [tracking] opens)")
    clicks: int = Field(description="Readers who clicked (0 unless [tracking] clicks)")
    votes: int = Field(description="Votes on the issue's comparisons")


class WeekGrowthOut(BaseModel):
    week: str
    start: datetime = Field(description="Monday 00:00 on the site's calendar, in UTC")
    joined: int = Field(description="Readers who confirmed or were imported that week")
    left: int = Field(description="Readers who unsubscribed that week")
    net: int


class StatsOut(BaseModel):
    issues: list[IssueStatsOut] = Field(description="The last issues that started sending, oldest first")
    weeks: list[WeekGrowthOut] = Field(description="The last 8 weeks, oldest first; the last is the current week")


class ToolVotesOut(BaseModel):
    slug: str
    name: str
    votes: int
    votes_this_week: int = Field(description="Cast or changed in the last 7 days")
    community: int | None = Field(description="Community %: share of all the comparison's votes; null without votes")
    panel: int | None = Field(description="Panel ship %; null without reviews")
    gap: int | None = Field(description="community - panel, in percentage points")
    change: int | None = Field(description="Community % now minus before this week's votes, in points")


class ComparisonDigestOut(BaseModel):
    id: int
    slug: str
    title: str
    published_at: datetime
    sample: int = Field(description="Every vote, passes included: the base of each Community %")
    votes_this_week: int
    passes: int
    tools: list[ToolVotesOut]


class IssueStatsDetailOut(BaseModel):
    issue: IssueStatsOut
    comparisons: list[ComparisonDigestOut] = Field(description="The vote digest of the issue's comparisons")


class DigestPage(BaseModel):
    items: list[ComparisonDigestOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page; null on the last page")
