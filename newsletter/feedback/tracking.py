"""Open and click events: one row per (issue, subscriber, kind, link), counted by the stats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class TrackingEvent(SQLModel, table=True):
    __tablename__ = "tracking_event"
    __table_args__ = (UniqueConstraint("issue_id", "subscriber_id", "kind", "link"), NEVER_REUSE_IDS)

    id: int | None = Field(default=None, primary_key=True)
    issue_id: int = Field(foreign_key="issue.id", index=True, ondelete="CASCADE")
    subscriber_id: int = Field(foreign_key="subscriber.id", ondelete="CASCADE")
    kind: str = Field(max_length=8)  # open | click
    link: int = -1  # the comparison index for clicks
    created_at: datetime = Field(default_factory=utcnow)
