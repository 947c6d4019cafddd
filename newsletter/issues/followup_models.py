"""A follow-up: a short mail that tells the readers of a verdict that it has changed materially.

It is a record like a sent issue: the comparison as the readers got it (`then`, from the frozen
view of the latest issue that carried it), as it was when the follow-up was drafted (`now`), and
the material changes between the two (issues/material.py) are stored with the draft, so its
preview, every copy sent and every later look at it say the same thing whatever is edited
afterwards. Its deliveries are rows of delivery/followup_models.py (one per follow-up and reader).

States: draft -> sending -> sent; draft or sending -> cancelled. Moves are conditional UPDATEs
(issues/followups.py), so two senders or a restart never start it twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

from newsletter.db import NEVER_REUSE_IDS, utcnow


class FollowupState(StrEnum):
    draft = "draft"
    sending = "sending"
    sent = "sent"
    cancelled = "cancelled"


class Followup(SQLModel, table=True):
    __tablename__ = "followup"
    __table_args__ = (NEVER_REUSE_IDS,)

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(sa_column=Column(Integer, ForeignKey("comparison.id"), nullable=False, index=True))
    # The issue whose frozen view is `then` (the latest that carried the comparison).
    issue_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("issue.id", ondelete="SET NULL"), nullable=True))
    subject: str = Field(max_length=200)
    preheader: str = Field(default="", max_length=200)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))  # Markdown (issues/note.py)
    # {"slug", "title", "url", "week", "then": ComparisonView, "now": ComparisonView, "changes": [ToolChange]}
    view: dict = Field(sa_column=Column(JSON, nullable=False))
    forced: bool = False  # drafted although nothing changed materially (--force)
    state: str = Field(default=FollowupState.draft.value, max_length=16, index=True)
    created_by: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
