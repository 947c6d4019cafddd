"""The content model of a comparison page (see docs/content-format.md).

Panel ship % and Community % are not stored: they are derived from reviews and
votes (newsletter.content.scores), so they can never disagree with them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, ForeignKey, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class Lens(StrEnum):
    developer_experience = "developer_experience"
    competition = "competition"
    thesis = "thesis"
    buyer = "buyer"

    @property
    def label(self) -> str:
        return LENS_LABELS[self]


LENS_LABELS = {
    Lens.developer_experience: "Developer experience",
    Lens.competition: "Competition",
    Lens.thesis: "Thesis",
    Lens.buyer: "Buyer",
}


class Verdict(StrEnum):
    ship = "ship"
    pass_ = "pass"


class Tool(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=120, unique=True)
    name: str = Field(max_length=120)
    category: str = Field(max_length=80)
    tagline: str = Field(max_length=200)
    description: str = Field(sa_column=Column(Text, nullable=False))
    entry_price: str = Field(max_length=60)
    updated_at: datetime = Field(default_factory=utcnow)


class Comparison(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(max_length=160, unique=True)
    title: str = Field(max_length=250)
    dek: str = Field(sa_column=Column(Text, nullable=False))
    category: str = Field(max_length=80, index=True)
    published_at: datetime = Field(index=True)
    updated_at: datetime = Field(default_factory=utcnow)
    # Set when an editor takes the comparison down: it leaves the public page and is never
    # selected into a new issue, but issues already sent keep it (their items still point here).
    unpublished_at: datetime | None = Field(default=None)
    # When the facts (prices, taglines, verdicts) were last checked: the pre-send checks warn
    # about a comparison older than [content] stale_after_days (content/revisions.py sets it).
    checked_at: datetime = Field(default_factory=utcnow)

    @property
    def is_published(self) -> bool:
        return self.unpublished_at is None


class ComparisonTool(SQLModel, table=True):
    """The tools of a comparison, in display order (position 0 is "A")."""

    __tablename__ = "comparison_tool"
    __table_args__ = (UniqueConstraint("comparison_id", "position"),)

    comparison_id: int = Field(
        sa_column=Column(Integer, ForeignKey("comparison.id", ondelete="CASCADE"), primary_key=True)
    )
    tool_id: int = Field(sa_column=Column(Integer, ForeignKey("tool.id"), primary_key=True))
    position: int


class Review(SQLModel, table=True):
    """One reviewer's verdict on one tool of one comparison through one lens."""

    __table_args__ = (UniqueConstraint("comparison_id", "tool_id", "lens"),)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(
        sa_column=Column(Integer, ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    tool_id: int = Field(sa_column=Column(Integer, ForeignKey("tool.id"), nullable=False))
    lens: str = Field(max_length=32)
    reviewer: str = Field(max_length=120)
    verdict: str = Field(max_length=8)
    quote: str = Field(sa_column=Column(Text, nullable=False))


class Vote(SQLModel, table=True):
    """A reader's pick in a comparison; tool_id None means "pass on both"."""

    __table_args__ = (UniqueConstraint("comparison_id", "subscriber_id"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(
        sa_column=Column(Integer, ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    subscriber_id: int = Field(
        sa_column=Column(Integer, ForeignKey("subscriber.id", ondelete="CASCADE"), nullable=False)
    )
    tool_id: int | None = Field(default=None, sa_column=Column(Integer, ForeignKey("tool.id"), nullable=True))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ContentRevision(SQLModel, table=True):
    """One saved state of a comparison (its text, its tools' facts, its reviews, when it was
    checked, whether it is published): written by content/revisions.py in the same transaction
    as every change, numbered 1, 2, ... per comparison, never updated or deleted."""

    __tablename__ = "content_revision"
    __table_args__ = (UniqueConstraint("comparison_id", "number"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(
        sa_column=Column(Integer, ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False)
    )
    number: int
    source: str = Field(max_length=16)  # import, console, api, pull, cli, migration
    actor: str = Field(max_length=300)  # the editor's address, the token's name, the CLI user
    created_at: datetime = Field(default_factory=utcnow)
    snapshot: dict = Field(sa_column=Column(JSON, nullable=False))


class FeedState(SQLModel, table=True):
    """The validators of the last good pull of a feed URL (ETag, Last-Modified), so the next
    pull is a conditional request and an unchanged feed costs a 304 and writes nothing."""

    __tablename__ = "content_feed"

    url: str = Field(max_length=2000, primary_key=True)
    etag: str | None = Field(default=None, max_length=300)
    last_modified: str | None = Field(default=None, max_length=100)
    fetched_at: datetime = Field(default_factory=utcnow)
