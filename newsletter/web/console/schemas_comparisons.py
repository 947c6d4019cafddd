"""The shapes the comparisons API answers with (so the OpenAPI schema documents them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ComparisonSummaryOut(BaseModel):
    slug: str
    title: str
    category: str
    published: datetime
    is_published: bool = Field(description="False once an editor unpublished it")
    unpublished_at: datetime | None
    tools: list[str] = Field(description="Tool names, in display order")
    votes: int = Field(description="Reader votes, passes included")
    issues: list[int] = Field(description="Ids of the issues that carry it")


class ComparisonPage(BaseModel):
    items: list[ComparisonSummaryOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= (with the same filters) for the next page; "
                                                "null on the last page")


class ToolOut(BaseModel):
    slug: str
    name: str
    category: str
    tagline: str
    description: str
    entry_price: str


class ReviewOut(BaseModel):
    tool: str
    lens: str
    reviewer: str
    verdict: str
    quote: str


class ToolFiguresOut(BaseModel):
    slug: str
    name: str
    votes: int
    community_percent: int | None = Field(description="Share of all votes, rounded half up; null while "
                                                      "the comparison has no votes")
    panel_ship_percent: int | None = Field(description="Share of the tool's reviews that say ship; null "
                                                       "without reviews")


class CommunityOut(BaseModel):
    slug: str
    votes_total: int
    votes_pass: int = Field(description="Votes for none of the tools")
    tools: list[ToolFiguresOut]


class IssueRefOut(BaseModel):
    id: int
    week: str
    state: str


class ComparisonOut(BaseModel):
    """The comparison in the import schema (what PUT takes), with its state and figures."""

    slug: str
    title: str
    dek: str
    published: datetime
    category: str
    tools: list[ToolOut]
    reviews: list[ReviewOut]
    is_published: bool
    unpublished_at: datetime | None
    updated_at: datetime
    checked_at: datetime = Field(description="When its facts were last checked (see GET .../revisions)")
    community: CommunityOut
    issues: list[IssueRefOut]


class PublicationOut(BaseModel):
    slug: str
    is_published: bool
    unpublished_at: datetime | None
    changed: bool = Field(description="False when it already was in the state asked for")


class RevisionOut(BaseModel):
    """One saved state of a comparison: when, from where, by whom, what changed since the one before."""

    number: int = Field(description="1 for the first revision, counting up per comparison")
    created_at: datetime
    source: str = Field(description="import, console, api, pull, cli or migration")
    actor: str = Field(description="The editor's address, the API token's name or the command line's user")
    changes: list[str] = Field(description='Readable diff lines, like "Review Ada/thesis on GroqCloud: verdict '
                                           'pass → ship"')
    snapshot: dict = Field(description="The comparison as it was (import schema, plus checked_at and "
                                       "unpublished_at)")


class RevisionPage(BaseModel):
    items: list[RevisionOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for older revisions; null on the last page")
